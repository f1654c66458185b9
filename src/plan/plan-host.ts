import type { Inventory } from '../inventory/schema.js';
import type { Playbook } from '../playbook/load.js';
import type { HostFacts } from '../facts/types.js';
import type { HostPlan } from './types.js';
import { RESOURCE_KINDS } from '../resources/index.js';
import { planContext, type HostTarget } from './desired.js';
import { pruneChanges } from './prune.js';

/** desired × Facts -> the changes of one host, in playbook order. Pure. */
export function planHost(inv: Inventory, pb: Playbook, target: HostTarget, facts: HostFacts): HostPlan {
  const ctx = planContext(inv, pb, target);
  // leftovers of earlier runs go first: a new mode must not start with the old one's rules in place
  const changes = pruneChanges(target.desired, facts);
  for (const d of target.desired) {
    const change = RESOURCE_KINDS[d.kind]!.plan(d.spec, facts, ctx);
    if (change) changes.push(change);
  }
  const notes: string[] = [...ctx.notes];
  if (target.role === 'proxy' && pb.health_checks === 'active')
    notes.push('DSR: nginx never sees the replies, so passive health checks cannot work; run `dsrctl verify` on a schedule for active checks.');
  if (facts.uid !== 0 && changes.length > 0) notes.push(`connected as uid ${facts.uid}: the changes need root (set ssh.sudo: true, or log in as root)`);
  return { host: target.name, role: target.role, changes, notes };
}
