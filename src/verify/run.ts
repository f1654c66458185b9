import type { Inventory } from '../inventory/schema.js';
import type { HostSession } from '../ssh/types.js';
import { planChecks, renderCheckScript, parseCheckOutput, type CheckResult, type Check } from './checks.js';

/** Run every host's checks in one exec per host, all hosts in parallel. */
export async function runChecks(inv: Inventory, sessions: Map<string, HostSession>): Promise<CheckResult[]> {
  const checks = planChecks(inv);
  const byHost = new Map<string, Check[]>();
  for (const c of checks) byHost.set(c.host, [...(byHost.get(c.host) ?? []), c]);
  const results = await Promise.all(
    [...byHost].map(async ([host, hostChecks]) => {
      const session = sessions.get(host);
      if (!session) return hostChecks.map((c) => ({ ...c, ok: false, detail: `no connection to ${host}` }));
      try {
        const timeout = (inv.verify.timeout_seconds * 2 + 5) * 1000 + (inv.verify.probe?.requests ?? 0) * inv.verify.timeout_seconds * 1000;
        const res = await session.exec(renderCheckScript(hostChecks, inv), { timeoutMs: timeout });
        return parseCheckOutput(hostChecks, res.stdout, inv);
      } catch (e) {
        return hostChecks.map((c) => ({ ...c, ok: false, detail: (e as Error).message }));
      }
    }),
  );
  return results.flat();
}
