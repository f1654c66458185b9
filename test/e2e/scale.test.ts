/**
 * Scale, end to end (issue 10): the real CLI on labs of 3 and 30 upstreams (DSR_LAB_UPSTREAMS).
 * It fails when a run breaks: an error or a timeout, more SSH exec requests on a host than the
 * budget, a second apply that changes something, a rollback that leaves something behind. It
 * never fails on a time target: how fast is the bench's business on a quiet machine
 * (npm run bench -- --upstreams 3,30,100).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { labUp, labDown, run, settledSnapshotAll, upstreamNames, locks, curlSources, type CliResult } from './harness.js';
import { show, expectSnapshots } from './expect.js';
import { CLIENT_IP } from './net.js';

/** SSH exec requests per host (--json hosts[].execs): a no-op apply (lock, facts and checks in one exec), and an apply that changes every host. */
const NOOP_EXEC_BUDGET = 1;
const APPLY_EXEC_BUDGET = 3;
/** Each case runs several CLI runs of up to 31 hosts: generous for a loaded machine, still catching a hang. */
const CASE_MS = 900_000;

interface HostDoc {
  host: string;
  execs?: number;
  changes?: unknown[];
}
const hostsOf = (r: CliResult): HostDoc[] => (Array.isArray(r.json?.hosts) ? r.json.hosts : []);
const changeCount = (r: CliResult) => hostsOf(r).reduce((n, h) => n + (h.changes?.length ?? 0), 0);
/** Hosts whose exec count is missing or over the budget, as "host: n". */
const overBudget = (r: CliResult, budget: number) => hostsOf(r).filter((h) => typeof h.execs !== 'number' || h.execs > budget).map((h) => `${h.host}: ${h.execs}`);

for (const n of [3, 30]) {
  describe(`${n} upstreams`, () => {
    const hosts = ['proxy', ...upstreamNames(n)];
    let before: Record<string, string>;

    beforeAll(async () => {
      labUp({ DSR_LAB_UPSTREAMS: String(n) });
      before = await settledSnapshotAll(hosts, 60_000);
    }, CASE_MS);
    afterAll(() => labDown());

    it('apply, a no-op apply, plan and rollback all succeed within the exec budget; rollback leaves every host as it was', { timeout: CASE_MS }, async () => {
      const first = await run(['apply', '--yes', '--json']);
      expect(first.code, show(first, 'first apply')).toBe(0);
      expect(hostsOf(first).map((h) => h.host).sort(), show(first, 'every host in the report')).toEqual(expect.arrayContaining(hosts));
      expect(changeCount(first), show(first, 'the first apply changes something')).toBeGreaterThan(0);
      expect(overBudget(first, APPLY_EXEC_BUDGET), show(first, `at most ${APPLY_EXEC_BUDGET} execs per host`)).toEqual([]);
      // what a user notices: the upstreams see the client's own address
      expect(curlSources(3)).toEqual([CLIENT_IP, CLIENT_IP, CLIENT_IP]);

      const noop = await run(['apply', '--yes', '--json']);
      expect(noop.code, show(noop, 'second apply')).toBe(0);
      expect(changeCount(noop), show(noop, 'the second apply changes nothing')).toBe(0);
      expect(overBudget(noop, NOOP_EXEC_BUDGET), show(noop, `a no-op makes at most ${NOOP_EXEC_BUDGET} execs per host`)).toEqual([]);

      const plan = await run(['plan', '--json']);
      expect(plan.code, show(plan, 'plan')).toBe(0);
      expect(changeCount(plan), show(plan, 'plan after the applies')).toBe(0);

      const rb = await run(['rollback', '--yes', '--json']);
      expect(rb.code, show(rb, 'rollback')).toBe(0);
      expectSnapshots(before, 'after rollback', hosts);
      expect(locks(hosts), 'no lock left on any host').toEqual(Object.fromEntries(hosts.map((h) => [h, ''])));

      const again = await run(['plan', '--json']);
      expect(again.code, show(again, 'plan after rollback')).toBe(0);
      expect(changeCount(again), show(again, 'plan after rollback: what the first apply did')).toBe(changeCount(first));
    });
  });
}
