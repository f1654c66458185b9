import type { Inventory } from '../inventory/schema.js';
import type { ExecResult, HostSession } from '../ssh/types.js';
import { runChecks } from '../verify/run.js';
import type { CheckResult } from '../verify/checks.js';
import { EXIT } from '../util/errors.js';
import { closeAll } from './hosts.js';
import { connectAndPlan, type Prepared } from './prepare.js';
import { revertNotes } from './reverted.js';
import { hostSummaries, type HostSummary } from './host-summary.js';
import { eventRunner, type StepRunner } from './steps.js';
import type { Connector } from './connector.js';
import { planHost } from '../plan/plan-host.js';
import { notAppliedLines } from '../verify/not-applied.js';

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

/**
 * Run the checks on connected hosts and the probe host (connected by connectAndPlan). `already`:
 * take the results of checks that ran in the facts execs (and the probe's, run when it connected)
 * instead of running them again; a host whose checks did not run there runs them now.
 */
export async function verifyHosts(prep: Prepared, epilogues?: Map<string, string>, already = false, via?: Map<string, (script: string) => Promise<ExecResult>>): Promise<CheckResult[]> {
  const sessions = new Map<string, HostSession>();
  for (const h of prep.hosts) if (h.session) sessions.set(h.target.name, h.session);
  if (prep.probe) sessions.set('probe', prep.probe);
  const ran = new Map<string, string>();
  if (already) {
    for (const h of prep.hosts) if (h.checkOutput !== undefined) ran.set(h.target.name, h.checkOutput);
    const probe = await prep.probeChecks?.catch(() => undefined);
    if (probe !== undefined) ran.set('probe', probe);
  }
  const results = await runChecks(prep.inv, sessions, epilogues, ran, via);
  const probeError = prep.errors.get('probe');
  return probeError ? results.map((r) => (r.host === 'probe' ? { ...r, detail: `cannot reach the probe host: ${probeError.message}` } : r)) : results;
}

export interface VerifyResult {
  inventory: Inventory;
  ok: boolean;
  exitCode: number;
  checks: CheckResult[];
  hosts: HostSummary[];
  /** per host (not the probe): why it could not be read */
  errors: Map<string, Error>;
  /** hosts whose dead-man's switch reverted a run by itself: not in the applied state */
  reverted: string[];
  /** when checks fail on hosts that still have changes to make: the mode is not applied there */
  notApplied: string[];
}

/** The guide's checks, read-only: pings, each upstream's service, the probe through the proxy. */
export async function verify(inventoryFile: string, opts: { runner?: StepRunner; connect?: Connector; concurrency?: number } = {}): Promise<VerifyResult> {
  const prep = await connectAndPlan(inventoryFile, opts.runner ?? eventRunner(), {
    probe: true,
    checks: true,
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
    ...(opts.connect ? { connect: opts.connect } : {}),
  });
  try {
    const checks = await verifyHosts(prep, undefined, true);
    const errors = new Map([...prep.errors].filter(([host]) => host !== 'probe'));
    const reverted = revertNotes(prep.hosts);
    const ok = checks.every((c) => c.ok) && errors.size === 0 && reverted.length === 0;
    const why = ok ? [] : notApplied(prep, inventoryFile);
    return { inventory: prep.inv, ok, exitCode: ok ? EXIT.ok : EXIT.failedRolledBack, checks, hosts: hostSummaries(prep.hosts, prep.errors), errors, reverted, notApplied: why };
  } finally {
    await closeAll([...prep.hosts, { session: prep.probe }]);
  }
}
