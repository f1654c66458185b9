import type { Inventory } from '../inventory/schema.js';
import type { Playbook } from '../playbook/load.js';
import type { HostFacts } from '../facts/types.js';
import type { HostPlan } from './types.js';
import { RESOURCE_KINDS } from '../resources/index.js';
import { planContext, type HostTarget } from './desired.js';
import { pruneChanges } from './prune.js';
import { unsafeDir } from '../resources/nginx-files.js';
import { PlanError } from '../resources/types.js';
import { unreachableMessage, unreachableUpstreams } from './upstream-reach.js';
import { healthSettings } from '../health/settings.js';
import { planPersistence } from '../persist/plan.js';

/** desired × Facts -> the changes of one host, in playbook order. Pure. */
export function planHost(inv: Inventory, pb: Playbook, target: HostTarget, facts: HostFacts): HostPlan {
  const ctx = planContext(inv, pb, target);
  if (target.role === 'proxy') {
    const reach = unreachableUpstreams(facts, inv.proxy.private_interface, inv.upstreams);
    if (reach?.outside.length) throw new PlanError(target.name, unreachableMessage(inv.proxy.private_interface, reach), { usage: true });
  }
  // leftovers of earlier runs go first: a new mode must not start with the old one's rules in place
  const changes = pruneChanges(target.desired, facts);
  for (const d of target.desired) {
    const change = RESOURCE_KINDS[d.kind]!.plan(d.spec, facts, ctx);
    if (change) changes.push(...[change].flat());
  }
  // persistence: its boot-time revert before every other change, the restore of the new state after them
  const persist = planPersistence(inv, target, facts, ctx);
  changes.unshift(...persist.first);
  changes.push(...persist.last);
  const notes: string[] = [...ctx.notes, ...persist.notes];
  if (target.role === 'proxy' && pb.health_checks === 'active' && !healthSettings(inv).enabled)
    notes.push('DSR: nginx never sees the replies, so passive health checks cannot work, and no health checker runs: a dead upstream keeps its share of clients (remove `health: false`, or run `dsrctl verify` on a schedule).');
  if (facts.uid !== 0 && changes.length > 0) notes.push(`connected as uid ${facts.uid}: the changes need root (set ssh.sudo: true, or log in as root)`);
  const preconditions = (ctx.shared.get('preconditions') as HostPlan['preconditions']) ?? [];
  if (changes.length > 0) {
    // the journal holds backups of root's files and the undo scripts run as root
    const state = facts.stateDir;
    let bad: string | undefined;
    if (state?.exists) {
      if (state.type !== 'dir') bad = `${state.path} is not a directory`;
      else if (state.owner && state.mode) bad = unsafeDir({ path: state.path, uid: state.owner.uid, gid: state.owner.gid, mode: state.mode });
    }
    // /var/lib itself: whoever can write it can replace /var/lib/dsrctl
    bad ??= state?.dir && unsafeDir(state.dir);
    if (bad) throw new PlanError(target.name, `${bad}: dsrctl keeps backups and undo scripts there and runs them as root; fix its owner and mode (root, 0700) first`);
  }
  // the apply script makes what a boot-time revert needs durable (sync) before each change it guards
  const bootRevert = facts.hasSystemd && inv.persist;
  return { host: target.name, role: target.role, changes, notes, ...(preconditions.length ? { preconditions } : {}), ...(bootRevert ? { bootRevert } : {}) };
}
