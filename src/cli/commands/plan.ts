import type { GlobalOptions } from '../prepare.js';
import { connectAndPlan, hostMessage, preflightExit } from '../prepare.js';
import { closeAll } from '../../engine/hosts.js';
import { formatPlan, planJson, red } from '../output.js';
import { summarizeHostErrors } from '../host-errors.js';
import { EXIT } from '../../util/errors.js';
import type { HostPlan } from '../../plan/types.js';
import { print, printErr } from '../terminal.js';
import { writeReport, hostErrors } from '../report.js';
import { describeVerification } from '../../verify/checks.js';

export interface PlanOptions extends GlobalOptions {
  detailedExitcode?: boolean;
}

export async function planCommand(file: string, opts: PlanOptions): Promise<number> {
  const prep = await connectAndPlan(file, opts);
  try {
    const plans = prep.hosts.map((h) => h.plan).filter((p): p is HostPlan => !!p);
    const failed = [...prep.errors].map(([host, e]) => ({ host, error: hostMessage(host, e) }));
    const unread = prep.hosts.filter((h) => !h.plan).map((h) => h.target.name);
    const pending = plans.some((p) => p.changes.length > 0);
    const code = failed.length ? preflightExit([...prep.errors.values()]) : opts.detailedExitcode && pending ? EXIT.changesPending : EXIT.ok;
    if (opts.json) {
      writeReport({
        command: 'plan',
        result: failed.length ? 'failed' : pending ? 'changes-pending' : 'no-changes',
        ok: code === EXIT.ok || code === EXIT.changesPending,
        exitCode: code,
        mode: prep.inv.mode,
        changes: plans.reduce((n, p) => n + p.changes.length, 0),
        verification: describeVerification(prep.inv),
        errors: hostErrors(prep.errors),
        hosts: plans.map((p) => planJson(p, 'RUN')),
      });
    } else {
      if (!opts.quiet) print('\n' + formatPlan(plans, { commands: true, unread }) + '\n' + describeVerification(prep.inv).map((l) => `Verification: ${l}`).join('\n'));
      for (const line of summarizeHostErrors(prep.errors, prep.hosts.map((h) => h.target.name))) printErr(red(line));
    }
    return code;
  } finally {
    await closeAll(prep.hosts);
  }
}
