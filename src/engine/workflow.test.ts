/**
 * The engine's safety decisions, replayed from runs captured on the lab
 * (test/fixtures/runs/capture.mjs → ip-transparency.json): which hosts roll back, in which
 * order, with which exit code, what happens to locks, when a host fails, breaks or is gone.
 * Each scenario changes one answer of a real run; everything else is what the hosts printed.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { apply } from './apply.js';
import { rollback } from './rollback.js';
import { replayConnector, type ReplayLog, type Scenario, type Transcript } from './transcript.js';
import { HostConnectionError } from '../ssh/errors.js';
import { generateKeyPairSync } from '../../test/support/keys.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/runs/', import.meta.url));
const runs = JSON.parse(readFileSync(join(FIXTURES, 'ip-transparency.json'), 'utf8')) as Record<'apply' | 'apply-again' | 'rollback', Transcript>;
// an apply whose rollbacks answer as the lab's hosts did when they were rolled back
const applyThenUndo: Transcript = [...runs.apply, ...runs.rollback.filter((e) => e.kind === 'rollback')];
let inventory: string;

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'dsrctl-workflow-'));
  copyFileSync(join(FIXTURES, 'ip-transparency.inventory.yaml'), join(dir, 'inventory.yaml'));
  writeFileSync(join(dir, 'id_ed25519'), generateKeyPairSync('ed25519').private);
  writeFileSync(join(dir, 'known_hosts'), '');
  inventory = join(dir, 'inventory.yaml');
});

async function replay(t: Transcript, scenario?: Scenario, unreachable: string[] = []) {
  const log: ReplayLog = { execs: [], ended: [], continued: [] };
  const r = await apply(inventory, { connect: replayConnector(t, { scenario, unreachable, log }) });
  const of = (kind: string) => log.execs.filter((e) => e.kind === kind).map((e) => e.host);
  return { r, log, of };
}

const failedApply = (stdout: string) => ({ host: '', kind: 'apply' as const, code: 1, stdout, stderr: '' });

describe('apply, replayed from the lab', () => {
  it('a clean run: the proxy is applied before any upstream, every host is confirmed, nothing is rolled back', async () => {
    const { r, log, of } = await replay(runs.apply);
    expect([r.exitCode, r.result]).toEqual([0, 'applied']);
    const kinds = log.execs.map((e) => `${e.host} ${e.kind}`);
    for (const u of ['dev1', 'dev2', 'dev3', 'dev4']) expect(kinds.indexOf(`${u} apply`)).toBeGreaterThan(kinds.indexOf('proxy apply'));
    expect(of('finish').sort()).toEqual(['dev1', 'dev2', 'dev3', 'dev4', 'proxy']);
    expect(of('rollback')).toEqual([]);
  });

  it('a second run with nothing to change: one exec per host (lock, facts, checks; the lock released as it ends)', async () => {
    const { r, log } = await replay(runs['apply-again']);
    expect([r.exitCode, r.result]).toEqual([0, 'no-changes']);
    for (const h of ['proxy', 'dev1', 'dev2', 'dev3', 'dev4', 'probe']) expect(log.execs.filter((e) => e.host === h).map((e) => e.kind)).toEqual([h === 'probe' ? 'checks' : 'facts']);
    expect(log.ended!.map((e) => `${e.host} ${e.kept}`).sort()).toEqual(['dev1 false', 'dev2 false', 'dev3 false', 'dev4 false', 'proxy false']);
    expect(r.checks.length).toBeGreaterThan(10);
    expect(r.checks.every((c) => c.ok)).toBe(true);
    expect(r.hosts.map((h) => h.execs)).toEqual([1, 1, 1, 1, 1]);
  });

  it('one host at work at a time (--concurrency 1): the no-op and the apply still finish, each facts exec waiting for the decision without its turn', async () => {
    for (const [t, result] of [[runs['apply-again'], 'no-changes'], [runs.apply, 'applied']] as const) {
      const log: ReplayLog = { execs: [], ended: [] };
      const r = await apply(inventory, { connect: replayConnector(t, { log }), concurrency: 1 });
      expect([r.exitCode, r.result]).toEqual([0, result]);
      expect(log.ended).toHaveLength(5);
    }
  });

  it('a run with changes keeps every lock as its facts execs end, and the speculative checks do not count: they run again after the apply, in the apply exec', async () => {
    const { r, log, of } = await replay(runs.apply);
    expect([r.exitCode, r.result]).toEqual([0, 'applied']);
    expect(log.ended!.every((e) => e.kept)).toBe(true);
    expect(log.ended).toHaveLength(5);
    // facts, apply-and-check, confirm
    for (const h of ['proxy', 'dev1', 'dev2', 'dev3', 'dev4']) expect(log.execs.filter((e) => e.host === h).map((e) => e.kind)).toEqual(['facts', 'apply', 'finish']);
    expect(r.hosts.map((h) => h.execs)).toEqual([3, 3, 3, 3, 3]);
    // each host's checks are sent into its waiting apply exec only once every host has applied
    const lastApply = Math.max(...log.execs.map((e, i) => (e.kind === 'apply' ? i : -1)));
    expect(log.continued!.map((c) => c.host).sort()).toEqual(['dev1', 'dev2', 'dev3', 'dev4', 'proxy']);
    for (const c of log.continued!) expect([c.checks, c.at > lastApply]).toEqual([true, true]);
    expect(r.checks.length).toBeGreaterThan(10);
    expect(r.checks.every((c) => c.ok)).toBe(true);
    expect(of('checks')).toEqual(['probe', 'probe']);
  });

  it('checks that fail in a no-op run fail it, with nothing to roll back and every lock released', async () => {
    const { r, log, of } = await replay(runs['apply-again'], (host, kind, rec) =>
      host === 'dev3' && kind === 'facts' && rec ? { ...rec, stdout: rec.stdout.replace(/^@@check (ping-dev3-gw) ok .*$/m, '@@check $1 fail no reply within 1s (twice)') } : undefined,
    );
    expect([r.exitCode, r.result]).toEqual([1, 'failed']);
    expect(r.failure).toMatch(/verification failed: dev3 reaches its gateway/);
    expect(log.ended!.every((e) => !e.kept)).toBe(true);
    expect(of('release')).toEqual([]);
    expect(of('rollback')).toEqual([]);
  });

  it("the proxy's script fails: no upstream is touched, the proxy rolled itself back, exit 1", async () => {
    const { r, of } = await replay(applyThenUndo, (host, kind) =>
      host === 'proxy' && kind === 'apply' ? failedApply('@@dsrctl-armed 120\n@@dsrctl-done 4\n@@dsrctl-failed ip route add local 0.0.0.0/0 dev lo table 100: RTNETLINK answers: File exists\n@@dsrctl-undone add ip rule fwmark 0x1 lookup 100\n@@dsrctl-rollback-status rolled-back\n') : undefined,
    );
    expect([r.exitCode, r.result], `${r.message} ${r.failure} ${JSON.stringify(r.hosts.map((h) => [h.host, h.outcome, h.rollback]))}`).toEqual([1, 'rolled-back']);
    expect(of('apply')).toEqual(['proxy']);
    expect(of('rollback')).toEqual([]);
    expect(of('finish')).toEqual([]);
    // every lock is released: the proxy's (its script already undid itself) and the untouched upstreams'
    expect(of('release').sort()).toEqual(['dev1', 'dev2', 'dev3', 'dev4', 'proxy']);
    expect(r.failure).toMatch(/^apply failed: proxy: ip route add local/);
  });

  it("dev2's script fails: the others are rolled back, upstreams before the proxy; dev2 rolled itself back", async () => {
    const { r, of, log } = await replay(applyThenUndo, (host, kind) => (host === 'dev2' && kind === 'apply' ? failedApply('@@dsrctl-armed 120\n@@dsrctl-failed ip route replace default via 172.16.0.1: Nexthop has invalid gateway\n@@dsrctl-rollback-status rolled-back\n') : undefined));
    expect([r.exitCode, r.result]).toEqual([1, 'rolled-back']);
    // the hosts waiting after their changes get no checks: their apply execs end before the rollbacks
    expect(log.continued!.map((c) => `${c.host} ${c.checks}`).sort()).toEqual(['dev1 false', 'dev3 false', 'dev4 false', 'proxy false']);
    const firstUndo = log.execs.findIndex((e) => e.kind === 'rollback');
    for (const c of log.continued!) expect(c.at).toBeLessThanOrEqual(firstUndo);
    const undone = of('rollback');
    expect([...undone].sort()).toEqual(['dev1', 'dev3', 'dev4', 'proxy']);
    expect(undone.at(-1)).toBe('proxy');
    expect(of('finish')).toEqual([]);
    expect(r.hosts.find((h) => h.host === 'dev2')!.rollback).toBeUndefined();
  });

  it('verification fails (the probe sees the proxy): every host is rolled back, the proxy last, exit 1', async () => {
    const { r, of } = await replay(applyThenUndo, (host, kind, rec) => (host === 'probe' && kind === 'checks' && rec ? { ...rec, stdout: rec.stdout.replaceAll('192.168.99.1:', '172.16.0.1:') } : undefined));
    expect([r.exitCode, r.result]).toEqual([1, 'rolled-back']);
    expect(r.failure).toMatch(/^verification failed: /);
    const undone = of('rollback');
    expect(undone.slice(0, 4).sort()).toEqual(['dev1', 'dev2', 'dev3', 'dev4']);
    expect(undone[4]).toBe('proxy');
    expect(of('finish')).toEqual([]);
  });

  it("dev3's connection breaks during its apply: it is reconnected and rolled back with the others", async () => {
    let broke = false;
    const { r, of } = await replay(applyThenUndo, (host, kind) => {
      if (host === 'dev3' && kind === 'apply' && !broke) {
        broke = true;
        return new HostConnectionError('dev3', 'root@10.211.233.13:22', 'dev3: connection lost', 'lost');
      }
      return undefined;
    });
    expect([r.exitCode, r.result]).toEqual([1, 'rolled-back']);
    expect(of('rollback').sort()).toEqual(['dev1', 'dev2', 'dev3', 'dev4', 'proxy']);
    expect(r.hosts.find((h) => h.host === 'dev3')!.outcome?.lost).toBe(true);
  });

  it('a host that cannot be reached to roll back: exit 3, named, its switch left to revert it', async () => {
    const unreachable: string[] = [];
    const { r } = await replay(
      applyThenUndo,
      (host, kind, rec) => {
        if (host === 'probe' && kind === 'checks' && rec) return { ...rec, stdout: rec.stdout.replaceAll('192.168.99.1:', '172.16.0.1:') };
        if (host === 'dev4' && kind === 'rollback') {
          unreachable.push('dev4'); // the reconnect fails too
          return new HostConnectionError('dev4', 'root@10.211.233.14:22', 'dev4: connection lost', 'lost');
        }
        return undefined;
      },
      unreachable,
    );
    expect([r.exitCode, r.result]).toEqual([3, 'rollback-failed']);
    expect(r.message).toMatch(/^Rollback did not complete on dev4: a person must look\. .*dead-man's switch armed and reverts by itself within 120 s/);
    expect(r.hosts.find((h) => h.host === 'dev4')!.rollback?.error).toMatch(/^unreachable, so it cannot be rolled back from here/);
  });

  it('the proxy is locked by another run: no upstream is read, nothing is applied, exit 1', async () => {
    const holder = Buffer.from('run=20261207T000000Z-other command=apply agent=ops-2 pid=77 time=2026-12-07T00:00:00Z\n').toString('base64');
    const { r, of } = await replay(runs.apply, (host, kind, rec) => (host === 'proxy' && kind === 'facts' && rec ? { ...rec, stdout: rec.stdout.replace('@@dsrctl-lock acquired', `@@dsrctl-lock held ${holder}`) } : undefined));
    expect([r.exitCode, r.result]).toEqual([1, 'failed']);
    expect(r.errors.get('proxy')?.message).toMatch(/^locked by run 20261207T000000Z-other \(dsrctl apply on ops-2, pid 77/);
    for (const u of ['dev1', 'dev2', 'dev3', 'dev4']) expect(r.errors.get(u)?.message).toBe('not read: the proxy is locked by another run');
    expect(of('facts')).toEqual(['proxy']);
    expect(of('apply')).toEqual([]);
  });

  it('an upstream unreachable at the start: nothing is applied anywhere, the locks taken are released, exit 1', async () => {
    const { r, of, log } = await replay(runs.apply, undefined, ['dev2']);
    expect([r.exitCode, r.result]).toEqual([1, 'failed']);
    expect(r.message).toBe('Nothing was changed on any host.');
    expect(of('apply')).toEqual([]);
    // released as their facts execs end: no exec of their own
    expect(log.ended!.map((e) => `${e.host} ${e.kept}`).sort()).toEqual(['dev1 false', 'dev3 false', 'dev4 false', 'proxy false']);
    expect(of('release')).toEqual([]);
  });
});

describe('rollback, replayed from the lab', () => {
  it('reads what is to undo, then undoes the upstreams before the proxy', async () => {
    const log: ReplayLog = { execs: [] };
    const r = await rollback(inventory, { connect: replayConnector(runs.rollback, { log }) });
    expect([r.exitCode, r.result]).toEqual([0, 'rolled-back']);
    expect([...r.pending.keys()]).toEqual(['dev1', 'dev2', 'dev3', 'dev4', 'proxy']);
    const undone = log.execs.filter((e) => e.kind === 'rollback').map((e) => e.host);
    expect(undone.at(-1)).toBe('proxy');
    const lastPending = Math.max(...log.execs.map((e, i) => (e.kind === 'pending' ? i : -1)));
    const firstUndo = log.execs.findIndex((e) => e.kind === 'rollback');
    expect(lastPending).toBeLessThan(firstUndo);
  });
});
