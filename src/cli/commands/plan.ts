import type { GlobalOptions } from '../progress.js';
import { listrRunner } from '../progress.js';
import { plan } from '../../engine/plan.js';
import { formatPlan, red } from '../output.js';
import { summarizeHostErrors } from '../host-errors.js';
import { print, printErr } from '../terminal.js';
import { writeReport } from '../report.js';
import { planReport } from '../../report/documents.js';

export interface PlanOptions extends GlobalOptions {
  detailedExitcode?: boolean;
}

export async function planCommand(file: string, opts: PlanOptions): Promise<number> {
  const r = await plan(file, { runner: listrRunner(opts), ...(opts.concurrency ? { concurrency: opts.concurrency } : {}) });
  const report = planReport(r, !!opts.detailedExitcode);
  const code = report.exitCode;
  if (opts.json) {
    writeReport(report);
  } else {
    const unplanned = r.hosts.filter((h) => !r.plans.some((p) => p.host === h.host));
    const unread = unplanned.filter((h) => !h.read).map((h) => h.host);
    const refused = unplanned.filter((h) => h.read).map((h) => h.host);
    if (!opts.quiet) print('\n' + formatPlan(r.plans, { commands: true, unread, refused }) + '\n' + r.verification.map((l) => `Verification: ${l}`).join('\n'));
    for (const line of summarizeHostErrors(r.errors, r.hosts.map((h) => h.host))) printErr(red(line));
  }
  return code;
}
