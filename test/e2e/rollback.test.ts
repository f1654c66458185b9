/**
 * verify, rollback and the run lock, end to end against the lab (the real CLI, dist/cli.js:
 * run `npm run build` first).
 *
 *   DSR_E2E_PREFIX=flt DSR_E2E_OCTET=2 npx vitest run --project e2e test/e2e/rollback.test.ts
 *
 * One lab for the file; the tests run in order and each one leaves the hosts as it found them
 * (the pre-dsrctl state, `before`), checked byte for byte with harness.snapshotAll().
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { HOSTS, UPSTREAMS, labUp, labDown, onHost, run, snapshotAll, inventoryReplacing, locks, settledSnapshotAll } from './harness.js';
import { show, output, expectCode, expectSnapshots, expectNoLocks } from './expect.js';
import { CLIENT_IP, PROXY_PRIVATE } from './net.js';

let before: Record<string, string>;
/** The hosts after one clean apply of the lab inventory. */
let applied: Record<string, string>;

beforeAll(async () => {
  labUp();
  before = await settledSnapshotAll();
});

afterAll(() => {
  labDown();
});

describe('verify', () => {
  it('fails on the fresh lab: the probe sees the proxy address, not the client', async () => {
    const r = await run(['verify']);
    expectCode(r, 1, 'verify before any apply');
    const probe = r.stdout.split('\n').find((l) => l.includes('HTTP requests from the probe'));
    expect(probe, show(r, 'the probe check is listed')).toBeDefined();
    expect(probe, show(r, 'the probe check fails')).toMatch(/FAIL/);
    expect(probe, show(r, 'the probe check names the address the upstreams saw: the proxy')).toContain(`You connected from ${PROXY_PRIVATE}:`);
    expect(r.stdout).toMatch(/Verification failed/);
    expectSnapshots(before, 'verify changes nothing');
    expectNoLocks('verify takes no lock');
  });

  it('passes after a good apply', async () => {
    const a = await run(['apply', '--yes']);
    expectCode(a, 0, 'apply');
    applied = snapshotAll();
    for (const h of HOSTS) expect(applied[h], `${h} changed by apply`).not.toBe(before[h]);
    const v = await run(['verify']);
    expectCode(v, 0, 'verify after apply');
    expect(v.stdout).toMatch(/Verification passed/);
    expect(v.stdout).toContain(`You connected from ${CLIENT_IP}:`);
    expectNoLocks('after apply and verify');
  });
});

describe('rollback', () => {
  it('after a successful apply restores every host byte for byte; a second rollback has nothing to undo', async () => {
    const r = await run(['rollback', '--yes']);
    expectCode(r, 0, 'rollback');
    for (const h of HOSTS) expect(r.stdout, show(r, `${h} is reported rolled back`)).toContain(`${h}: rolled back`);
    expectSnapshots(before, 'after rollback');
    expectNoLocks('after rollback');

    const again = await run(['rollback', '--yes']);
    expectCode(again, 0, 'second rollback');
    expect(again.stdout, show(again)).toContain('Nothing to undo on any host.');
    for (const h of HOSTS) expect(again.stdout, show(again)).toContain(`${h}: nothing to undo`);
    expectSnapshots(before, 'after the second rollback');
    expectNoLocks('after the second rollback');
  });

  it('on a fresh lab (no journal) has nothing to undo', async () => {
    // a host that never saw dsrctl: no journal at all
    for (const h of HOSTS) onHost(h, 'rm -rf /var/lib/dsrctl/* /var/lib/dsrctl/.[!.]* 2>/dev/null; true');
    expect(onHost('dev1', 'ls -A /var/lib/dsrctl').stdout.trim()).toBe('');
    const r = await run(['rollback', '--yes']);
    expectCode(r, 0, 'rollback without a journal');
    expect(r.stdout, show(r)).toContain('Nothing to undo on any host.');
    expectSnapshots(before, 'rollback without a journal');
    expectNoLocks('rollback without a journal');
  });
});

describe('a failing check rolls every host back', () => {
  it('an unreachable ping target: exit 1, names the check, every host as before', async () => {
    const inv = inventoryReplacing(/ping_targets: \[\]/, 'ping_targets: [192.168.99.77]');
    const r = await run(['apply', '--yes'], inv);
    expectCode(r, 1, 'apply with an unreachable ping target');
    const text = output(r);
    expect(text, show(r, 'the failed check is named')).toMatch(/FAIL dev1 reaches 192\.168\.99\.77/);
    expect(text, show(r, 'the failure summary names it')).toMatch(/verification failed: .*dev1 reaches 192\.168\.99\.77/);
    for (const h of HOSTS) expect(text, show(r, `${h} reported rolled back`)).toMatch(new RegExp(`^rolled back ${h}\\b`, 'm'));
    expect(text, show(r)).toMatch(/every changed host was rolled back/);
    expectSnapshots(before, 'after the failed check');
    expectNoLocks('after the failed check');
  });
});

/**
 * Two applies started together, that really overlapped. On a loaded machine one process can start
 * a whole run later than the other (a no-op apply takes a second): then the second finds the
 * first's applied state, changes nothing and exits 0, which says nothing about the lock. Such a
 * pair is rolled back and started again (a few times at most).
 */
async function concurrentApplies() {
  for (let tries = 0; ; tries++) {
    const rs = await Promise.all([run(['apply', '--yes']), run(['apply', '--yes'])]);
    const sequential = rs.some((r) => r.code === 0 && r.stdout.includes('No changes; verification passed.'));
    if (!sequential || tries === 4) return rs;
    expectCode(await run(['rollback', '--yes']), 0, 'rollback after two applies that did not overlap');
  }
}

describe('the run lock', () => {
  /**
   * Two applies started together. Each host's lock is taken independently in that host's facts
   * exec, all hosts in parallel; so the two runs may each win some hosts and both give up.
   * Whatever happens: at most one wins, a loser names the holder and changes nothing, and the
   * hosts end in the winner's applied state (or as before when neither won).
   */
  it('two concurrent applies: a loser names the holder and touches nothing', async () => {
    const rs = await concurrentApplies();
    const winners = rs.filter((r) => r.code === 0);
    const losers = rs.filter((r) => r.code !== 0);
    expect(winners.length, rs.map((r) => show(r)).join('\n')).toBeLessThanOrEqual(1);
    for (const l of losers) {
      expectCode(l, 1, 'the losing apply');
      expect(output(l), show(l, 'the loser names the lock holder')).toMatch(/locked by run \d{8}T\d{6}Z-[a-z0-9]+ \(dsrctl apply/);
      expect(output(l), show(l)).toContain('Nothing was changed on any host.');
    }
    if (winners.length) {
      const winnerRun = /Applied run (\S+) and verified it/.exec(winners[0]!.stdout)?.[1];
      expect(winnerRun, show(winners[0]!)).toBeDefined();
      expect(output(losers[0]!), 'the loser names the winner').toContain(`locked by run ${winnerRun} `);
      expectSnapshots(applied, 'the winner applied, the loser touched nothing');
      expectCode(await run(['verify']), 0, 'verify after the concurrent applies');
    } else expectSnapshots(before, 'neither run won: nothing changed');
    expectNoLocks('after the concurrent applies');
    const rb = await run(['rollback', '--yes']);
    expectCode(rb, 0, 'rollback');
    expectSnapshots(before, 'after rollback');
  });

  /**
   * The contract: of two concurrent applies exactly one wins. Several rounds, because the
   * split (each run holding some hosts, both giving up) depends on timing; the test stops at the
   * first round where it happens.
   */
  it('two concurrent applies: exactly one of them wins', async () => {
    const rounds: string[] = [];
    for (let i = 0; i < 4; i++) {
      const rs = await concurrentApplies();
      rounds.push(rs.map((r) => r.code).join('/'));
      const wins = rs.filter((r) => r.code === 0).length;
      if (wins !== 1) {
        const held = rs.map((r) => [...output(r).matchAll(/^(\w+): locked by run (\S+)/gm)].map((m) => `${m[1]} by ${m[2]}`).join(', '));
        expect.fail(`round ${i + 1}: ${wins} of 2 concurrent applies won (exit codes ${rounds.join(', ')}); locks refused: [${held.join('] [')}]`);
      }
      expectCode(await run(['rollback', '--yes']), 0, 'rollback between rounds');
    }
    expectSnapshots(before, 'after the rounds');
  });

  it('a stale lock makes apply refuse and name it; --break-lock takes it over', async () => {
    const dead = 'run=20200101T000000Z-dead00 command=apply agent=gone pid=999999 time=2020-01-01T00:00:00.000Z';
    onHost('dev2', `mkdir -p /var/lib/dsrctl && printf '%s\\n' '${dead}' > /var/lib/dsrctl/lock`);
    const r = await run(['apply', '--yes']);
    expect(r.code, show(r, 'apply refuses a locked host')).not.toBe(0);
    expect(output(r), show(r, 'names the holder')).toMatch(/dev2: locked by run 20200101T000000Z-dead00 \(dsrctl apply on gone, pid 999999/);
    expect(output(r), show(r)).toMatch(/--break-lock/);
    expectSnapshots(before, 'a refused apply touches nothing');
    expect(locks(), 'the stale lock stays; no other host keeps a lock').toEqual({ ...Object.fromEntries(HOSTS.map((h) => [h, ''])), dev2: dead });

    const b = await run(['apply', '--yes', '--break-lock']);
    expectCode(b, 0, 'apply --break-lock');
    expectSnapshots(applied, 'after apply --break-lock');
    expectNoLocks('after apply --break-lock');

    const rb = await run(['rollback', '--yes']);
    expectCode(rb, 0, 'rollback');
    expectSnapshots(before, 'after rollback');
    expectNoLocks('after rollback');
  });
});

// sanity for whoever reads a failure: the upstreams list is what the lab builds
it('lab has the expected upstreams', () => {
  expect(HOSTS.filter((h) => h !== 'proxy')).toEqual(UPSTREAMS);
});
