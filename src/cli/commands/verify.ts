import type { GlobalOptions, Prepared } from '../prepare.js';
import { connectAndPlan } from '../prepare.js';
import { closeAll } from '../../engine/hosts.js';
import { connect } from '../../ssh/session.js';
import { probeTarget } from '../../ssh/targets.js';
import { runChecks } from '../../verify/run.js';
import type { CheckResult } from '../../verify/checks.js';
import type { HostSession } from '../../ssh/types.js';
import { formatChecks, green, red } from '../output.js';
import { EXIT } from '../../util/errors.js';
import { revertNotes } from '../reverted.js';

/** Run the checks on connected hosts (plus the probe host, connected here). */
export async function verifyHosts(prep: Prepared, _opts: GlobalOptions): Promise<CheckResult[]> {
  const sessions = new Map<string, HostSession>();
  for (const h of prep.hosts) if (h.session) sessions.set(h.target.name, h.session);
  const pt = probeTarget(prep.inv);
  let probe: HostSession | undefined;
  try {
    if (pt) probe = await connect(pt).catch(() => undefined);
    if (probe) sessions.set('probe', probe);
    return await runChecks(prep.inv, sessions);
  } finally {
    await probe?.close();
  }
}

export async function verifyCommand(file: string, opts: GlobalOptions): Promise<number> {
  const prep = await connectAndPlan(file, opts, false);
  try {
    const checks = await verifyHosts(prep, opts);
    const errors = [...prep.errors].map(([host, e]) => ({ host, error: e.message }));
    // a host that reverted by itself is not in the applied state, whatever the pings say
    const reverted = revertNotes(prep.hosts);
    const ok = checks.every((c) => c.ok) && errors.length === 0 && reverted.length === 0;
    if (opts.json) process.stdout.write(JSON.stringify({ command: 'verify', ok, checks, errors, reverted, exitCode: ok ? 0 : 1 }, null, 2) + '\n');
    else if (!opts.quiet) {
      for (const r of reverted) console.log(red(`  REVERTED ${r}`));
      console.log(formatChecks(checks));
      for (const e of errors) console.log(red(`  FAIL ${e.host}: ${e.error}`));
      console.log(ok ? green('Verification passed.') : red(`Verification failed: ${checks.filter((c) => !c.ok).length + errors.length} check(s)${reverted.length ? `, ${reverted.length} host(s) reverted by their dead-man's switch` : ''}.`));
    }
    return ok ? EXIT.ok : EXIT.failedRolledBack;
  } finally {
    await closeAll(prep.hosts);
  }
}
