/**
 * Fault injection, end to end: dsrctl apply against the lab while something breaks, and the
 * promise that every host ends either fully applied and verified, or exactly as it was.
 * The real CLI (dist/cli.js: run `npm run build` first).
 *
 *   DSR_E2E_PREFIX=flt DSR_E2E_OCTET=2 npx vitest run --project e2e test/e2e/faults.test.ts
 *
 * Every run uses the lab inventory with `rollback.timeout_seconds: 10` (the dead-man's switch
 * fires 10 s after a host's apply script starts unless the run confirms).
 *
 * The machine running this is rarely idle (CI, other labs): time bounds here only catch a run
 * that hangs, never a slow one (how fast things are is the bench's business: npm run bench), and
 * each case starts from the lab as it was before the first apply (restoreLab in beforeEach),
 * whatever the case before it did or left half-done.
 *
 * Observed outcomes (lab, kernel 6.18, nginx 1.22; a fresh-clone .ci/run on 2026-11-26; every run
 * prints its own at the end, DSR_E2E_VERBOSE=1 adds dsrctl's own words):
 *
 * | fault                                                   | exit   | outcome                                                    |
 * |---------------------------------------------------------|--------|------------------------------------------------------------|
 * | agent SIGKILLed at "✔ apply changes on dev1..dev4"      | (kill) | every host reverted by its own switch 10.8 s later, locks  |
 * |                                                         |        | removed; verify exit 1, "REVERTED <host>" for all 5; the   |
 * |                                                         |        | next apply exits 0 and reports the reverts                 |
 * | dev3's mgmt0 down at the same moment                    | 3      | verify's exec on dev3 times out, dev3 unreachable for its  |
 * |                                                         |        | rollback (named, with its switch); proxy, dev1, dev2, dev4 |
 * |                                                         |        | rolled back; dev3 reverts by its switch; verify then       |
 * |                                                         |        | reports "REVERTED dev3"                                    |
 * | dev2's SSH sessions killed at "✔ apply 7 change(s) on   | 1      | dsrctl reconnects to dev2, waits for its script, rolls it  |
 * | proxy"                                                  |        | back from its journal and unlocks it; every host as before |
 * | dev2's SSH sessions killed after the facts, before any  | 1      | every host as before; dev2 reconnected and unlocked        |
 * | change                                                  |        |                                                            |
 * | dev2's SSH sessions killed while its script runs (its   | 1      | the script runs on (it ignores hang-ups); dsrctl waits for |
 * | `ip route add default` slowed by 3 s)                   |        | it over a new connection, then rolls dev2 back: as before  |
 * | nginx -t rejects the config (duplicate upstream name)   | 1      | proxy rolled itself back; nginx still serving the old      |
 * |                                                         |        | config; upstreams never touched                            |
 * | proxy script fails at change 3 (table 100 in use:       | 1      | proxy rolled itself back (2 changes undone, listed);       |
 * | `ip route add local ... table 100`: File exists)        |        | upstreams never touched                                    |
 */
import { describe, it, expect, beforeAll, beforeEach, afterAll } from 'vitest';
import {
  HOSTS,
  labUp,
  labDown,
  onHost,
  dsrctl,
  dsrctlLive,
  snapshotAll,
  settledSnapshotAll,
  inventoryVariant,
  locks,
  killSshSessions,
  sleep,
  waitUntil,
  changedHosts,
  LAB_DIR,
  type CliResult,
  type LiveRun,
} from './harness.js';
import { show, output, expectSnapshots, snapshotDiff } from './expect.js';
import { PROXY_PRIVATE } from './net.js';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const SWITCH_S = 10;
/** A case's own limit: several runs, each slow on a loaded machine (a hung one is still caught). */
const CASE_MS = 420_000;
/** How long a dead-man's switch may take to have reverted a host, once due, on a loaded machine. */
const SWITCH_SLACK_MS = 45_000;
const UPSTREAMS_DONE = /^✔ apply changes on dev1, dev2, dev3, dev4$/;
const PROXY_DONE = /^✔ apply \d+ change\(s\) on proxy$/;

let before: Record<string, string>;
/** the hosts after one clean apply of FAST */
let applied: Record<string, string>;
let FAST: string;
const run = (args: string[], inv = FAST) => dsrctl([...args, '-i', inv]);

const noLocks = () => Object.values(locks()).every((l) => l === '');

/** Observed outcomes, printed at the end of the file (they fill the table above). */
const OUTCOMES: string[] = [];
function record(fault: string, r: CliResult, outcome: string): void {
  OUTCOMES.push(`${fault}: exit ${r.code}: ${outcome}`);
  // DSR_E2E_VERBOSE=1: also the run's own words about the failure
  if (process.env.DSR_E2E_VERBOSE)
    OUTCOMES.push(
      ...output(r)
        .split('\n')
        .filter((l) => /fail|rollback|rolled|dead-man|reach|lost|timed out/i.test(l) && !/^\s+undone /.test(l))
        .map((l) => `    | ${l.slice(0, 300)}`),
    );
}

beforeAll(async () => {
  labUp();
  before = await settledSnapshotAll();
  FAST = inventoryVariant((y) => `${y.trimEnd()}\nrollback:\n  timeout_seconds: ${SWITCH_S}\n`);
});

/**
 * Every case starts from the lab as it was before the first apply: whatever the case before did
 * (a link left down, a fault's file or route or wrapper left behind because it failed half-way,
 * hosts applied or locked, a switch still armed), it is undone here and checked.
 */
async function restoreLab(): Promise<void> {
  for (const h of HOSTS) onHost(h, 'ip link set mgmt0 up 2>/dev/null; true');
  onHost('proxy', 'rm -f /etc/nginx/conf.d/zz-conflict.conf; ip route del default via 192.168.99.254 table 100 2>/dev/null; true');
  onHost('dev2', 'umount /usr/local/sbin 2>/dev/null; rm -rf /tmp/flt-slowbin; true');
  // a rollback of a clean lab changes nothing; of anything else, it undoes it (and disarms switches)
  const rb = await run(['rollback', '--yes', '--break-lock']);
  expect(rb.code, show(rb, 'restoring the lab before the case')).toBe(0);
  const clean = await waitUntil(() => noLocks() && changedHosts(before, HOSTS).length === 0, SWITCH_SLACK_MS);
  expect(clean, `the lab is as before the first apply\n${snapshotDiff(before)}\nlocks: ${JSON.stringify(locks())}`).toBe(true);
}

beforeEach(async () => {
  if (before) await restoreLab();
}, CASE_MS);

afterAll(() => {
  labDown();
  // eslint-disable-next-line no-console
  if (OUTCOMES.length) console.info(`fault outcomes:\n  ${OUTCOMES.join('\n  ')}`);
});

it('reference: a clean apply, then rollback', { timeout: CASE_MS }, async () => {
  const a = await run(['apply', '--yes']);
  expect(a.code, show(a)).toBe(0);
  applied = snapshotAll();
  const rb = await run(['rollback', '--yes']);
  expect(rb.code, show(rb)).toBe(0);
  expectSnapshots(before, 'after rollback');
});

describe('the agent dies', () => {
  it('SIGKILL right after the changes: every host reverts by itself; verify says so; apply works again', { timeout: CASE_MS }, async () => {
    const live = dsrctlLive(['apply', '--yes', '-i', FAST]);
    await live.waitFor(UPSTREAMS_DONE, 150_000);
    live.child.kill('SIGKILL');
    const t0 = Date.now();
    const r = await live.done;
    // right after: the hosts are in the applied state and locked
    expect(onHost('dev1', 'ip route show default').stdout, 'dev1 still routes via the proxy').toMatch(new RegExp(`^default via ${PROXY_PRIVATE.replace(/\./g, '\\.')} `, 'm'));
    const held = locks();
    expect(held.dev1, 'dev1 is still locked').toMatch(/^run=\S+ command=apply /);

    // the switches fire SWITCH_S seconds after each host's apply started; how soon after that
    // the revert is seen depends on the machine's load (each poll snapshots five hosts)
    const reverted = await waitUntil(() => noLocks() && changedHosts(before, HOSTS).length === 0, SWITCH_S * 1000 + SWITCH_SLACK_MS);
    const took = (Date.now() - t0) / 1000;
    expect(reverted, `every host reverts by itself (waited ${took.toFixed(1)} s after the kill)\n${snapshotDiff(before)}\nlocks: ${JSON.stringify(locks())}`).toBe(true);

    const v = await run(['verify']);
    expect(v.code, show(v, 'verify after the reverts')).toBe(1);
    expect(output(v), show(v)).toMatch(/reverted/);
    for (const h of HOSTS) expect(output(v), show(v, `${h}'s revert is reported`)).toMatch(new RegExp(`REVERTED ${h}: reverted run`));

    const again = await run(['apply', '--yes']);
    expect(again.code, show(again, 'apply after the reverts')).toBe(0);
    expect(output(again), show(again, 'the earlier revert is reported')).toMatch(/dev1: reverted run \S+ by itself/);
    expectSnapshots(applied, 'the new apply');
    const rb = await run(['rollback', '--yes']);
    expect(rb.code, show(rb)).toBe(0);
    expectSnapshots(before, 'after rollback');
    expect(noLocks()).toBe(true);
    record('agent SIGKILLed after the upstream changes', r, `hosts reverted by their switches after ${took.toFixed(1)} s; verify exit ${v.code}; next apply exit ${again.code}`);
  });
});

describe('the management link of an upstream drops', () => {
  it("dev3's mgmt0 down right after the changes: the run ends, the others are rolled back, dev3 reverts by itself", { timeout: CASE_MS }, async () => {
    // the run waits out exec and connect timeouts on dev3: on a loaded machine it takes a while
    const live = dsrctlLive(['apply', '--yes', '-i', FAST], { timeoutMs: 240_000 });
    await live.waitFor(UPSTREAMS_DONE, 150_000);
    const down = onHost('dev3', ['ip', 'link', 'set', 'mgmt0', 'down']);
    const t0 = Date.now();
    expect(down.code, down.stderr).toBe(0);
    let linkUp = false;
    try {
      const r = await live.done;
      const took = (Date.now() - t0) / 1000;
      const text = output(r);
      expect([1, 3], show(r, 'exit 3 (rollback incomplete on dev3) or 1')).toContain(r.code);
      expect(text, show(r, 'dev3 is named as unreachable')).toMatch(/dev3\b[^\n]*(could not be reached|unreachable|not reachable|timed out|connection)/i);
      expect(text, show(r, "dev3's dead-man's switch is mentioned")).toMatch(/dead-man's switch/);
      if (r.code === 3) expect(text, show(r)).toMatch(/Rollback did not complete on [^\n]*dev3/);
      const others = HOSTS.filter((h) => h !== 'dev3');
      expectSnapshots(before, 'every other host at the end of the run', others);

      // dev3's own switch reverts it, link or no link
      const wait = SWITCH_S * 1000 + 2000 - (Date.now() - t0);
      if (wait > 0) await sleep(wait);
      onHost('dev3', ['ip', 'link', 'set', 'mgmt0', 'up']);
      linkUp = true;
      const ok = await waitUntil(() => changedHosts(before, ['dev3']).length === 0, SWITCH_SLACK_MS);
      expect(ok, `dev3 reverted by itself\n${snapshotDiff(before, ['dev3'])}`).toBe(true);
      await waitUntil(() => onHost('dev3', 'ip -6 addr show tentative').stdout.trim() === '', 15_000);
      expectSnapshots(before, 'every host once dev3 is back');

      const v = await run(['verify']);
      expect(v.code, show(v)).toBe(1);
      expect(output(v), show(v, "verify reports dev3's revert")).toMatch(/REVERTED dev3: reverted run/);
      expect(noLocks(), JSON.stringify(locks())).toBe(true);
      record("dev3's mgmt0 down after the upstream changes", r, `run ended after ${took.toFixed(1)} s; others rolled back; dev3 reverted by its switch`);
    } finally {
      if (!linkUp) onHost('dev3', ['ip', 'link', 'set', 'mgmt0', 'up']);
    }
    // the next test starts from a clean slate: the revert notice is history after a rollback
    const rb = await run(['rollback', '--yes']);
    expect(rb.code, show(rb)).toBe(0);
  });
});

describe("an upstream's SSH connection is killed", () => {
  /**
   * The invariant: at exit every host is either fully applied and verified (exit 0), or exactly
   * as before (exit 1), or the run says a person must look (exit 3) and the hosts it names come
   * back by their own switch. Whatever happened, after the switch delay every host is as before
   * or (exit 0) applied, and no lock is left.
   */
  async function killDuring(when: (live: LiveRun) => Promise<unknown>, label: string): Promise<void> {
    const live = dsrctlLive(['apply', '--yes', '-i', FAST], { timeoutMs: 240_000 });
    try {
      await when(live);
      const killed = killSshSessions('dev2');
      const t0 = Date.now();
      expect(killed.length, 'dev2 had an SSH session to kill').toBeGreaterThan(0);
      const r = await live.done;
      const took = (Date.now() - t0) / 1000;
      const atExit = snapshotAll();
      const text = output(r);
      const dev2Run = onHost('dev2', `ls /var/lib/dsrctl/runs 2>/dev/null | tail -n 1`).stdout.trim();
      const dev2Status = dev2Run ? onHost('dev2', `cat /var/lib/dsrctl/runs/${dev2Run}/status 2>/dev/null`).stdout.trim() : '';
      let outcome: string;
      if (r.code === 0) {
        const d = HOSTS.filter((h) => atExit[h] !== applied[h]);
        expect(d, show(r, `exit 0: every host applied; differ: ${d}`)).toEqual([]);
        const v = await run(['verify']);
        expect(v.code, show(v, 'exit 0: verify passes')).toBe(0);
        outcome = 'applied and verified';
      } else if (r.code === 1) {
        const d = HOSTS.filter((h) => atExit[h] !== before[h]);
        expect(d, show(r, `exit 1: every host must be as before at exit; differ: ${d}\n${snapshotDiff(before, d)}`)).toEqual([]);
        expect(text, show(r)).toMatch(/rolled back|Nothing was changed/);
        outcome = 'every host as before at exit';
      } else {
        expect(r.code, show(r, 'exit 0, 1 or 3')).toBe(3);
        const named = /Rollback did not complete on ([^:]+):/.exec(text)?.[1]?.split(/,\s*/) ?? [];
        expect(named, show(r, 'exit 3 names the hosts to look at')).toContain('dev2');
        const others = HOSTS.filter((h) => !named.includes(h));
        const d = others.filter((h) => atExit[h] !== before[h]);
        expect(d, show(r, `exit 3: the hosts not named must be as before; differ: ${d}`)).toEqual([]);
        outcome = `rollback incomplete on ${named.join(', ')}; the others as before at exit`;
      }
      outcome += `; dev2's last journal: ${dev2Run ? `${dev2Run} status ${dev2Status || 'none'}` : 'none'}`;
      // after the switch delay: nothing half-done anywhere
      await sleep(Math.max(0, SWITCH_S * 1000 + 2500 - (Date.now() - t0)));
      const ref = r.code === 0 ? applied : before;
      const same = await waitUntil(() => changedHosts(ref, HOSTS).length === 0, SWITCH_SLACK_MS);
      expect(same, `${SWITCH_S} s later every host is ${r.code === 0 ? 'applied' : 'as before'}\n${snapshotDiff(ref)}\n${show(r)}`).toBe(true);
      // ... and no lock left behind: a lock nobody will release makes the next apply refuse
      const left = Object.entries(locks()).filter(([, l]) => l !== '');
      if (left.length) outcome += `; LOCK LEFT on ${left.map(([h, l]) => `${h} (${l.split(' ')[0]})`).join(', ')}`;
      expect.soft(left, `${SWITCH_S} s after the run ended, locks are still held (the run that took them is over):\n${show(r)}`).toEqual([]);
      record(label, r, `${outcome}; run ended ${took.toFixed(1)} s after the kill`);
    } finally {
      if (live.child.exitCode === null && live.child.signalCode === null) live.child.kill('SIGKILL');
      await live.done;
      // clean slate for the next test, whatever happened (a left-over lock included)
      const rb = await run(['rollback', '--yes', '--break-lock']);
      expect(rb.code, show(rb)).toBe(0);
      expectSnapshots(before, 'after rollback');
      expect(noLocks(), JSON.stringify(locks())).toBe(true);
    }
  }

  it("dev2's sessions killed once the proxy's changes are done", { timeout: CASE_MS }, async () => {
    await killDuring((live) => live.waitFor(PROXY_DONE, 150_000), "dev2's SSH sessions killed after the proxy's changes");
  });

  it("dev2's sessions killed before any change (after the facts)", { timeout: CASE_MS }, async () => {
    await killDuring((live) => live.waitFor(/^✔ dev2: \d+ changes? planned/, 150_000), "dev2's SSH sessions killed before any change");
  });

  /**
   * The same, while dev2's apply script is half-way through its change. To hit that moment every
   * time, dev2's `ip route add default via <proxy>` is slowed by 3 s: a wrapper `ip` in
   * /usr/local/sbin (ahead of /usr/sbin in sshd's PATH), bind-mounted in dev2's own mount
   * namespace only. The kill comes once dev2's journal marks change 1 pending: the old default
   * route is gone and the new one not yet there.
   */
  it("dev2's sessions killed while its apply script runs", { timeout: CASE_MS }, async () => {
    const wrapper = '#!/bin/sh\ncase "$*" in "route add default via 172.16.0.1"*) sleep 3 ;; esac\nexec /usr/sbin/ip "$@"\n';
    const m = onHost('dev2', `mkdir -p /tmp/flt-slowbin && printf '${wrapper}' > /tmp/flt-slowbin/ip && chmod +x /tmp/flt-slowbin/ip && mount --bind /tmp/flt-slowbin /usr/local/sbin`);
    expect(m.code, m.stderr).toBe(0);
    const runs = join(LAB_DIR, 'hosts/dev2/var/lib/dsrctl/runs');
    const known = new Set(existsSync(runs) ? readdirSync(runs) : []);
    try {
      await killDuring(async (live) => {
        await live.waitFor(PROXY_DONE, 150_000);
        const started = await waitUntil(() => {
          const fresh = (existsSync(runs) ? readdirSync(runs) : []).filter((d) => !known.has(d));
          return fresh.some((d) => {
            try {
              return readFileSync(join(runs, d, 'changes/001.state'), 'utf8').trim() === 'pending';
            } catch {
              return false;
            }
          });
        }, 60_000, 20);
        expect(started, "dev2's apply script reached its change").toBe(true);
      }, "dev2's SSH sessions killed during its apply script");
    } finally {
      onHost('dev2', 'umount /usr/local/sbin; rm -rf /tmp/flt-slowbin');
    }
  });
});

describe('a change fails on the proxy', () => {
  it('nginx -t rejects the new config: exit 1, nginx keeps serving, every host as it was', { timeout: CASE_MS }, async () => {
    // a second `upstream dsrctl_upstreams` breaks nginx -t only once dsrctl's file is written
    const conflict = '/etc/nginx/conf.d/zz-conflict.conf';
    onHost('proxy', `printf 'upstream dsrctl_upstreams { server 127.0.0.1:1; }\\n' > ${conflict} && nginx -t -q`);
    const runsBefore = Object.fromEntries(HOSTS.map((h) => [h, onHost(h, 'ls /var/lib/dsrctl/runs 2>/dev/null').stdout]));
    try {
      const ref = snapshotAll();
      const r = await run(['apply', '--yes']);
      expect(r.code, show(r)).toBe(1);
      expect(output(r), show(r)).toMatch(/nginx -t rejected/);
      expect(output(r), show(r)).toMatch(/rolled itself back proxy/);
      expect(onHost('proxy', 'kill -0 $(cat /run/nginx.pid) && echo running').stdout.trim(), 'the proxy nginx is still running').toBe('running');
      const body = onHost('client', ['curl', '-sS', '--max-time', '3', 'http://192.168.99.10/']);
      expect(body.stdout, `the proxy still serves: ${body.stdout}${body.stderr}`).toMatch(new RegExp(`Hello from dev\\d\\. You connected from ${PROXY_PRIVATE.replace(/\./g, '\\.')}:`));
      expectSnapshots(ref, 'after the rejected config');
      for (const h of HOSTS.filter((x) => x !== 'proxy'))
        expect(onHost(h, 'ls /var/lib/dsrctl/runs 2>/dev/null').stdout, `${h} ran no apply script`).toBe(runsBefore[h]);
      expect(noLocks(), JSON.stringify(locks())).toBe(true);
      record('nginx -t rejects the config', r, 'proxy rolled itself back, nginx still serving, upstreams untouched');
    } finally {
      onHost('proxy', `rm -f ${conflict}`);
    }
    expectSnapshots(before, 'conflict file removed');
  });

  it('a command fails half-way through the proxy script: it rolls itself back, the upstreams are never touched', { timeout: CASE_MS }, async () => {
    // table 100 is already in use by something else: the planner looks for dsrctl's local
    // route, does not find it, and `ip route add local 0.0.0.0/0 dev lo table 100` fails (File exists)
    onHost('proxy', 'ip route add default via 192.168.99.254 table 100');
    const runsBefore = Object.fromEntries(HOSTS.map((h) => [h, onHost(h, 'ls /var/lib/dsrctl/runs 2>/dev/null').stdout]));
    try {
      const ref = snapshotAll();
      const r = await run(['apply', '--yes']);
      const text = output(r);
      expect(r.code, show(r)).toBe(1);
      expect(text, show(r, 'the failing change is named')).toMatch(/change 3: add ip route local 0\.0\.0\.0\/0 dev lo table 100: .*File exists/);
      expect(text, show(r)).toMatch(/rolled itself back proxy/);
      for (const undone of [/undone add ip rule fwmark 0x1 lookup 100/, /undone .*app\.conf/])
        expect(text, show(r, `the self-rollback lists ${undone}`)).toMatch(undone);
      expect(text, show(r)).not.toMatch(/apply changes on dev/);
      expectSnapshots(ref, 'after the failed proxy script');
      for (const h of HOSTS.filter((x) => x !== 'proxy'))
        expect(onHost(h, 'ls /var/lib/dsrctl/runs 2>/dev/null').stdout, `${h} ran no apply script`).toBe(runsBefore[h]);
      expect(noLocks(), JSON.stringify(locks())).toBe(true);
      const body = onHost('client', ['curl', '-sS', '--max-time', '3', 'http://192.168.99.10/']);
      expect(body.stdout, `the proxy still serves: ${body.stdout}${body.stderr}`).toMatch(/Hello from dev\d\./);
      // Method 1 without masquerade does not touch ip_forward, and nginx_user: keep leaves nginx.conf alone
      expect(text, show(r)).not.toMatch(/ip_forward|undone .*nginx\.conf/);
      record('proxy script fails at change 3', r, 'proxy rolled itself back (2 changes undone), upstreams never touched');
    } finally {
      onHost('proxy', 'ip route del default via 192.168.99.254 table 100');
    }
    expectSnapshots(before, 'the extra route removed');
  });
});
