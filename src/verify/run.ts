import type { Inventory } from '../inventory/schema.js';
import type { HostSession } from '../ssh/types.js';
import { timed } from '../util/debug.js';
import { planChecks, renderCheckScript, parseCheckOutput, type CheckResult, type Check } from './checks.js';

/**
 * Run every host's checks in one exec per host, all hosts in parallel. `epilogues` adds shell to a
 * host's check exec (apply releases the lock of an unchanged host there, saving a round trip);
 * a host with an epilogue but no checks gets an exec of its own.
 */
export async function runChecks(inv: Inventory, sessions: Map<string, HostSession>, epilogues = new Map<string, string>()): Promise<CheckResult[]> {
  const checks = planChecks(inv);
  const byHost = new Map<string, Check[]>();
  // notes run nothing: they say what is not checked
  const notes = parseCheckOutput(checks.filter((c) => c.kind === 'note'), '', inv);
  for (const c of checks) if (c.kind !== 'note') byHost.set(c.host, [...(byHost.get(c.host) ?? []), c]);
  for (const host of epilogues.keys()) if (!byHost.has(host)) byHost.set(host, []);
  const results = await Promise.all(
    [...byHost].map(async ([host, hostChecks]) => {
      const session = sessions.get(host);
      if (!session) return hostChecks.map((c) => ({ ...c, ok: false, detail: `no connection to ${host}` }));
      try {
        const timeout = (inv.verify.timeout_seconds * 2 + 5) * 1000 + ((inv.verify.probe?.requests ?? 0) + inv.upstreams.length + 1) * (inv.verify.timeout_seconds + 2) * 1000;
        const res = await timed(`${host} checks`, () => session.exec(renderCheckScript(hostChecks, inv) + (epilogues.get(host) ?? ''), { timeoutMs: timeout }));
        return parseCheckOutput(hostChecks, res.stdout, inv);
      } catch (e) {
        return hostChecks.map((c) => ({ ...c, ok: false, detail: (e as Error).message }));
      }
    }),
  );
  return [...notes, ...results.flat()];
}
