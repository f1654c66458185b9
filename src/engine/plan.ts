import type { Inventory } from '../inventory/schema.js';
import type { HostPlan } from '../plan/types.js';
import { describeVerification } from '../verify/checks.js';
import { EXIT } from '../util/errors.js';
import { closeAll } from './hosts.js';
import { describeRevert } from './reverted.js';
import { connectAndPlan, preflightExit } from './prepare.js';
import { hostSummaries, type HostSummary } from './host-summary.js';
import { eventRunner, type StepRunner } from './steps.js';
import type { Connector } from './connector.js';

export interface PlanResult {
  inventory: Inventory;
  /** the plans of the hosts that could be read, in inventory order */
  plans: HostPlan[];
  hosts: HostSummary[];
  /** per host: why it could not be read or planned */
  errors: Map<string, Error>;
  changes: number;
  /** what verification will prove after apply, one line each */
  verification: string[];
  /** 0 when every host was planned; 2 when every error is bad input; else 1 */
  exitCode: number;
}

/** Read every host and say what apply would change. Read-only: no lock, nothing written. */
export async function plan(inventoryFile: string, opts: { runner?: StepRunner; connect?: Connector; concurrency?: number } = {}): Promise<PlanResult> {
  const prep = await connectAndPlan(inventoryFile, opts.runner ?? eventRunner(), { plan: true, ...(opts.concurrency ? { concurrency: opts.concurrency } : {}), ...(opts.connect ? { connect: opts.connect } : {}) });
  try {
    // a run reverted by a host itself (dead-man's switch, boot-time revert) is news the plan gives too
    const plans = prep.hosts
      .map((h) => (h.plan && h.facts?.dsrctl.reverted ? { ...h.plan, notes: [describeRevert(h.facts.dsrctl.reverted), ...h.plan.notes] } : h.plan))
      .filter((p): p is HostPlan => !!p);
    return {
      inventory: prep.inv,
      plans,
      hosts: hostSummaries(prep.hosts, prep.errors),
      errors: prep.errors,
      changes: plans.reduce((n, p) => n + p.changes.length, 0),
      verification: describeVerification(prep.inv),
      exitCode: prep.errors.size ? preflightExit([...prep.errors.values()]) : EXIT.ok,
    };
  } finally {
    await closeAll(prep.hosts);
  }
}
