import { endFactsExecs, withSession, type HostState } from './hosts.js';
import { rollbackHost, releaseLock, type HostRollbackResult } from './apply-host.js';
import type { StepRunner } from './steps.js';

/** Roll one host back, reconnecting once if its connection was lost. */
export async function rollbackVia(h: HostState, runId: string | undefined, lockRun: string, seconds: number): Promise<HostRollbackResult> {
  try {
    return await withSession(h, (s) => rollbackHost(s, runId, lockRun));
  } catch (e) {
    return {
      host: h.target.name,
      ok: false,
      nothing: false,
      lines: [],
      error: `unreachable, so it cannot be rolled back from here (${(e as Error).message}); if it changed, its dead-man's switch reverts it by itself within ${seconds} s of its apply, and releases its lock`,
    };
  }
}

/** Release this run's locks; a host that cannot be reached is named (its lock needs --break-lock once checked). */
export async function releaseLocks(hosts: HostState[], runId: string): Promise<string[]> {
  const left: string[] = [];
  // apply's facts execs still open release their locks as they end; any other takes an exec
  await endFactsExecs(hosts, false);
  await Promise.all(
    hosts.filter((h) => h.lock?.state !== 'released').map((h) =>
      withSession(h, (s) => releaseLock(s, runId)).catch(() => {
        left.push(h.target.name);
      }),
    ),
  );
  return left;
}

/**
 * Roll back the hosts that changed in a run (runId) or everything dsrctl applied (undefined):
 * upstreams first, in parallel, then the proxy — an upstream's default route must leave before
 * the proxy stops handling its replies.
 */
export async function rollbackInOrder(hosts: HostState[], runId: string | undefined, lockRun: string, seconds: number, runner: StepRunner): Promise<HostRollbackResult[]> {
  const results: HostRollbackResult[] = [];
  const groups = [hosts.filter((h) => h.target.role === 'upstream'), hosts.filter((h) => h.target.role === 'proxy')].filter((g) => g.length);
  await runner(
    groups.map((group) => ({
      title: `roll back ${group.map((h) => h.target.name).join(', ')}`,
      run: async () => {
        const res = await Promise.all(group.map((h) => rollbackVia(h, runId, lockRun, seconds)));
        results.push(...res);
        const bad = res.filter((r) => !r.ok);
        if (bad.length) throw new Error(bad.map((r) => `${r.host}: ${r.error}`).join('; '));
      },
    })),
    { concurrent: false },
  );
  return results;
}
