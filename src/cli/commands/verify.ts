import type { GlobalOptions } from '../progress.js';
import { listrRunner } from '../progress.js';
import { verify } from '../../engine/verify.js';
import { formatChecks, green, red } from '../output.js';
import { print } from '../terminal.js';
import { writeReport } from '../report.js';
import { verifyReport } from '../../report/documents.js';

export async function verifyCommand(file: string, opts: GlobalOptions): Promise<number> {
  const r = await verify(file, { runner: listrRunner(opts), ...(opts.concurrency ? { concurrency: opts.concurrency } : {}) });
  if (opts.json) writeReport(verifyReport(r));
  else if (!opts.quiet) {
    for (const line of r.reverted) print(red(`  REVERTED ${line}`));
    print(formatChecks(r.checks));
    for (const [host, e] of r.errors) print(red(`  FAIL ${host}: ${e.message}`));
    print(r.ok ? green('Verification passed.') : red(`Verification failed: ${r.checks.filter((c) => !c.ok).length + r.errors.size} check(s)${r.reverted.length ? `, ${r.reverted.length} host(s) reverted a run that was never confirmed (dead-man's switch or boot-time revert: REVERTED above)` : ''}.`));
    for (const l of r.notApplied) print(red(l));
  }
  return r.exitCode;
}
