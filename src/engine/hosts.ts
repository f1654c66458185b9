import type { Inventory } from '../inventory/schema.js';
import type { Playbook } from '../playbook/load.js';
import type { HostSession, ConnectTarget } from '../ssh/types.js';
import type { HostFacts } from '../facts/types.js';
import type { HostPlan } from '../plan/types.js';
import type { HostTarget } from '../plan/desired.js';
import { connect } from '../ssh/session.js';
import { buildFactsScript } from '../facts/script.js';
import { parseFacts } from '../facts/parse.js';
import { factsRequest } from '../plan/desired.js';
import { planHost } from '../plan/plan-host.js';

/** Everything dsrctl knows about one host during a run. */
export interface HostState {
  target: HostTarget;
  ssh: ConnectTarget;
  session?: HostSession;
  facts?: HostFacts;
  plan?: HostPlan;
}

export async function connectHost(h: HostState): Promise<void> {
  h.session = await connect(h.ssh);
}

export async function gatherFacts(h: HostState, inv: Inventory, pb: Playbook): Promise<HostFacts> {
  const res = await h.session!.exec(buildFactsScript(factsRequest(inv, pb, h.target)), { timeoutMs: 30_000 });
  if (res.code !== 0) throw new Error(`${h.target.name}: reading facts failed (exit ${res.code}): ${res.stderr.trim()}`);
  h.facts = parseFacts(res.stdout);
  return h.facts;
}

export function planFor(h: HostState, inv: Inventory, pb: Playbook): HostPlan {
  h.plan = planHost(inv, pb, h.target, h.facts!);
  return h.plan;
}

export async function closeAll(hosts: { session?: HostSession }[]): Promise<void> {
  await Promise.allSettled(hosts.map((h) => h.session?.close()));
}
