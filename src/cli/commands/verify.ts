import type { GlobalOptions, Prepared } from '../prepare.js';
import { connectAndPlan } from '../prepare.js';
import { closeAll } from '../../engine/hosts.js';
import { runChecks } from '../../verify/run.js';
import type { CheckResult } from '../../verify/checks.js';
import type { HostSession } from '../../ssh/types.js';
import { formatChecks, green, red } from '../output.js';
import { EXIT } from '../../util/errors.js';
import { revertNotes } from '../reverted.js';
import { print } from '../terminal.js';
import { writeReport } from '../report.js';
import { planHost } from '../../plan/plan-host.js';
import { notAppliedLines } from '../../verify/not-applied.js';

/** Failing checks on hosts whose plan still has changes: say that the mode is not applied there. */
function notApplied(prep: Prepared, file: string): string[] {
  const hosts = prep.hosts
    .filter((h) => h.facts)
    .map((h) => {
      let pending: number | undefined;
      try {
        pending = planHost(prep.inv, prep.pb, h.target, h.facts!).changes.length;
      } catch {
        pending = undefined; // a host that cannot be planned says why in plan
      }
      return { host: h.target.name, pending, lastRun: h.facts!.dsrctl.journal?.trim() || null };
    });
  return notAppliedLines(prep.inv.mode, file, hosts);
}

/** Run the checks on connected hosts and the probe host (connected by connectAndPlan). */
export async function verifyHosts(prep: Prepared, _opts: GlobalOptions, epilogues?: Map<string, string>): Promise<CheckResult[]> {
  const sessions = new Map<string, HostSession>();
  for (const h of prep.hosts) if (h.session) sessions.set(h.target.name, h.session);
  if (prep.probe) sessions.set('probe', prep.probe);
  const results = await runChecks(prep.inv, sessions, epilogues);
  const probeError = prep.errors.get('probe');
  return probeError ? results.map((r) => (r.host === 'probe' ? { ...r, detail: `cannot reach the probe host: ${probeError.message}` } : r)) : results;
}

export async function verifyCommand(file: string, opts: GlobalOptions): Promise<number> {
  const prep = await connectAndPlan(file, opts, false, undefined, true);
  try {
    const checks = await verifyHosts(prep, opts);
    const errors = [...prep.errors].filter(([host]) => host !== 'probe').map(([host, e]) => ({ host, error: e.message }));
    // a host that reverted by itself is not in the applied state, whatever the pings say
    const reverted = revertNotes(prep.hosts);
    const ok = checks.every((c) => c.ok) && errors.length === 0 && reverted.length === 0;
    const why = ok ? [] : notApplied(prep, file);
    if (opts.json)
      writeReport({
        command: 'verify',
        result: ok ? 'passed' : 'failed',
        ok,
        exitCode: ok ? EXIT.ok : EXIT.failedRolledBack,
        mode: prep.inv.mode,
        warnings: [...reverted, ...why],
        errors: errors.map((e) => ({ host: e.host, message: e.error })),
        hosts: prep.hosts.map((h) => ({ host: h.target.name, role: h.target.role, read: !!h.facts, ...(prep.errors.has(h.target.name) ? { error: prep.errors.get(h.target.name)!.message } : {}) })),
        checks,
        reverted,
      });
    else if (!opts.quiet) {
      for (const r of reverted) print(red(`  REVERTED ${r}`));
      print(formatChecks(checks));
      for (const e of errors) print(red(`  FAIL ${e.host}: ${e.error}`));
      print(ok ? green('Verification passed.') : red(`Verification failed: ${checks.filter((c) => !c.ok).length + errors.length} check(s)${reverted.length ? `, ${reverted.length} host(s) reverted by their dead-man's switch` : ''}.`));
      for (const l of why) print(red(l));
    }
    return ok ? EXIT.ok : EXIT.failedRolledBack;
  } finally {
    await closeAll([...prep.hosts, { session: prep.probe }]);
  }
}
