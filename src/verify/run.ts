import type { Inventory } from '../inventory/schema.js';
import type { ExecResult, HostSession } from '../ssh/types.js';
import { timed } from '../util/debug.js';
import { planChecks, parseCheckOutput, type CheckResult, type Check } from './checks.js';
import { renderCheckScript } from './check-script.js';

/** The checks of an inventory by the host they run on; notes (which run nothing) apart. */
export function hostChecks(inv: Inventory): { notes: CheckResult[]; byHost: Map<string, Check[]> } {
  const checks = planChecks(inv);
  const byHost = new Map<string, Check[]>();
  for (const c of checks) if (c.kind !== 'note') byHost.set(c.host, [...(byHost.get(c.host) ?? []), c]);
  // notes run nothing: they say what is not checked
  return { notes: parseCheckOutput(checks.filter((c) => c.kind === 'note'), '', inv), byHost };
}

/** How long one host's checks may take: every ping and probe at its timeout, with room. */
export function checksTimeoutMs(inv: Inventory): number {
  return (inv.verify.timeout_seconds * 2 + 5) * 1000 + ((inv.verify.probe?.requests ?? 0) + inv.upstreams.length + 1) * (inv.verify.timeout_seconds + 2) * 1000;
}

/** Each host's check script ("" for a host without checks): the checks planned once for every host. */
export function hostCheckScripts(inv: Inventory): (host: string) => string {
  const { byHost } = hostChecks(inv);
  return (host) => {
    const checks = byHost.get(host);
    return checks?.length ? renderCheckScript(checks, inv) : '';
  };
}

/**
 * Run every host's checks in one exec per host, all hosts in parallel. `epilogues` adds shell to a
 * host's check exec (apply releases the lock of an unchanged host there, saving a round trip);
 * a host with an epilogue but no checks gets an exec of its own. `ran`: hosts whose checks already
 * ran (in their facts exec), with what they printed: read, not run again. `via`: hosts whose checks
 * continue an exec of their own (apply's, waiting after its changes) instead of a new one.
 */
export async function runChecks(
  inv: Inventory,
  sessions: Map<string, HostSession>,
  epilogues = new Map<string, string>(),
  ran = new Map<string, string>(),
  via = new Map<string, (script: string) => Promise<ExecResult>>(),
): Promise<CheckResult[]> {
  const { notes, byHost } = hostChecks(inv);
  for (const host of epilogues.keys()) if (!byHost.has(host)) byHost.set(host, []);
  const results = await Promise.all(
    [...byHost].map(async ([host, hostChecks]) => {
      const done = ran.get(host);
      if (done !== undefined && !epilogues.has(host)) return parseCheckOutput(hostChecks, done, inv);
      const session = sessions.get(host);
      if (!session) return hostChecks.map((c) => ({ ...c, ok: false, detail: `no connection to ${host}` }));
      try {
        const script = renderCheckScript(hostChecks, inv) + (epilogues.get(host) ?? '');
        const cont = via.get(host);
        const res = await timed(`${host} checks`, () => (cont ? cont(script) : session.exec(script, { timeoutMs: checksTimeoutMs(inv) })));
        return parseCheckOutput(hostChecks, res.stdout, inv);
      } catch (e) {
        return hostChecks.map((c) => ({ ...c, ok: false, detail: (e as Error).message }));
      }
    }),
  );
  return [...notes, ...results.flat()];
}
