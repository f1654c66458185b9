/** Persistence (issue 8): does the running host match what dsrctl-persist.service restores at boot? Pure. */
import type { Inventory } from '../../inventory/schema.js';
import type { Finding } from '../types.js';
import type { HostEvidence } from '../findings.js';
import { loadPlaybook } from '../../playbook/load.js';
import { desiredHosts } from '../../plan/desired.js';
import { planHost } from '../../plan/plan-host.js';
import { PERSIST_SCRIPT, PERSIST_UNIT } from '../../persist/paths.js';
import { forDisplay } from '../../resources/nginx-files.js';

/** Kinds whose state lives in the kernel only: what a reboot or a network restart takes away. */
const RUNTIME_KINDS = new Set(['sysctl', 'ip-rule', 'ip-route', 'default-route', 'iptables-rule', 'forward-filter', 'stateless-nat']);

export function persistDrift(inv: Inventory, h: HostEvidence): Finding[] {
  const f = h.facts!;
  const script = f.files[PERSIST_SCRIPT];
  if (!script?.exists) return [];
  let plan;
  try {
    const pb = loadPlaybook(inv.mode);
    plan = planHost(inv, pb, desiredHosts(inv, pb).find((t) => t.name === h.name)!, f);
  } catch {
    return []; // the plan's own errors are reported elsewhere (plan, apply)
  }
  const runtime = plan.changes.filter((c) => RUNTIME_KINDS.has(c.kind));
  const fileDrift = plan.changes.filter((c) => c.kind === 'persist' && c.id === `file ${PERSIST_SCRIPT}`);
  const out: Finding[] = [];
  if (runtime.length)
    out.push({
      id: 'persist-drift',
      host: h.name,
      severity: 'error',
      title: `the running state differs from the persistent state: ${PERSIST_SCRIPT} restores it at boot, but now ${runtime.length} thing(s) are missing or different (flushed by hand, or a network restart removed them)`,
      evidence: runtime.map((c) => `missing or different: ${c.summary}`),
      fix: `systemctl restart ${PERSIST_UNIT} (runs ${PERSIST_SCRIPT} again), or dsrctl apply -i INVENTORY`,
    });
  if (fileDrift.length)
    out.push({
      id: 'persist-drift',
      host: h.name,
      severity: 'warn',
      title: `${PERSIST_SCRIPT} is not what this inventory's apply writes: after a reboot the host comes back in another state than this inventory's`,
      evidence: (fileDrift[0]!.diff ?? '').split('\n').filter((l) => /^[-+][^-+]/.test(l)).slice(0, 12).map(forDisplay),
      fix: 'dsrctl apply -i INVENTORY (rewrites it), or find out who edited it',
    });
  if (!out.length) out.push({ id: 'persist-drift', host: h.name, severity: 'ok', title: `the running state matches ${PERSIST_SCRIPT} (what a reboot restores)`, evidence: [] });
  return out;
}
