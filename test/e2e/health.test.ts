/**
 * End to end: the active health checker DSR needs (issue 12, part 1). In router-NAT DSR nginx
 * never sees a reply, so a stopped DNS server keeps getting its share of queries unless something
 * checks it actively. dsrctl installs that checker on the proxy; this file stops one upstream's
 * dnsmasq and proves that clients stop losing queries, that it comes back, and that rollback
 * removes the checker and restores every host byte for byte.
 *
 *   npm run build && npx vitest run --project e2e test/e2e/health.test.ts
 *
 * Detection and recovery times are printed (console.log) for the record.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_DIR, labUp, labDown, onHost, run, settledSnapshotAll, waitUntil } from './harness.js';
import { show, expectCode, expectSnapshots } from './expect.js';

const STATE = '/var/lib/dsrctl/health/state';
const SERVERS = '/etc/nginx/dsrctl-health.servers';
/** the upstream whose DNS server is stopped */
const VICTIM = 'dev2';
const VICTIM_ADDR = '172.16.0.12:53';

/** The checker's view of one upstream: "up", "down", or "" before its first round. */
function status(name: string): string {
  const r = onHost('proxy', ['cat', STATE]);
  return new RegExp(`^${name} \\S+ (up|down) `, 'm').exec(r.stdout)?.[1] ?? '';
}

/** The pid the checker recorded, and whether it runs. */
function checkerPid(): number {
  return Number(onHost('proxy', 'cat /var/lib/dsrctl/health/pid 2>/dev/null').stdout.trim()) || 0;
}

/** `count` queries from the client through the proxy; how many got any response. */
function answered(count: number): { ok: number; out: string } {
  const r = onHost('client', `i=0; while [ $i -lt ${count} ]; do dig +tries=1 +timeout=2 @192.168.99.10 www.example.com | grep -c 'status:'; i=$((i+1)); done`);
  return { ok: r.stdout.split('\n').filter((l) => l.trim() === '1').length, out: r.stdout + r.stderr };
}

describe('dsr-router-nat: the health checker takes a dead upstream out and puts it back (in order)', () => {
  let before: Record<string, string>;
  let pid = 0;

  beforeAll(async () => {
    labUp({ DSR_LAB_MODE: 'dsr-router-nat' });
    before = await settledSnapshotAll();
  });
  afterAll(() => labDown());

  it('1. plan shows the checker; apply installs it, verify says it runs, and a second plan is empty', async () => {
    const p = await run(['plan']);
    expectCode(p, 0, 'plan');
    expect(p.stdout, show(p)).toContain(`create ${SERVERS}`);
    expect(p.stdout, show(p)).toMatch(/install and start the health checker: DNS query ". SOA" to each upstream, any response code counts \(dev1 172\.16\.0\.11:53, .*\); every 5 s; down after 1 failed check\(s\), back after 1 passed/);
    const a = await run(['apply', '--yes']);
    expectCode(a, 0, 'apply');
    expect(a.stdout, show(a)).toMatch(/ok {3}the health checker runs on the proxy \(every 5 s; down after 1 failed, back after 1 passed check\(s\)\): running \(pid \d+\)/);
    pid = checkerPid();
    expect(pid, 'pid file').toBeGreaterThan(0);
    expect(onHost('proxy', `tr '\\0' ' ' < /proc/${pid}/cmdline`).stdout).toContain('/var/lib/dsrctl/health/check.sh');
    expect(await waitUntil(() => status(VICTIM) === 'up', 30_000), 'the checker finished a round').toBe(true);
    const again = await run(['plan', '--detailed-exitcode']);
    expectCode(again, 0, 'a second plan (the checker running, its state file written)');
  });

  it('2. with dev2\'s DNS server stopped, the checker marks it down and every client query is answered', async () => {
    const pidFile = join(LAB_DIR, 'pids', `${VICTIM}.dns`);
    const t0 = Date.now();
    expect(onHost(VICTIM, ['kill', readFileSync(pidFile, 'utf8').trim()]).code, 'kill dnsmasq').toBe(0);
    const down = await waitUntil(() => status(VICTIM) === 'down', 60_000, 250);
    const detection = (Date.now() - t0) / 1000;
    expect(down, `dev2 marked down within 60 s; state:\n${onHost('proxy', ['cat', STATE]).stdout}`).toBe(true);
    console.log(`health checker: detection ${detection.toFixed(1)} s (dnsmasq killed -> ${VICTIM} down in ${STATE}; interval 5 s, fails 1, dig timeout 2 s)`);
    expect(onHost('proxy', ['cat', SERVERS]).stdout).toContain(`server ${VICTIM_ADDR} down; # ${VICTIM}`);
    // the reload is logged after the state says down: wait for it before counting answers
    expect(await waitUntil(() => /nginx reloaded: dev2:down/.test(onHost('proxy', 'cat /var/lib/dsrctl/health/events.log').stdout), 20_000), 'reload logged').toBe(true);
    const q = answered(20);
    expect(q.ok, `every query answered:\n${q.out}`).toBe(20);
    const p = await run(['plan', '--detailed-exitcode']);
    expectCode(p, 0, 'plan with dev2 down: a down upstream is not drift');
    expect(p.stdout, show(p)).toMatch(/note: health checker has taken out dev2 \(172\.16\.0\.12:53\) since \S+: \d+ failed check\(s\) in a row, last: .*connection refused/);
    const v = await run(['verify']);
    expect(v.stdout, show(v)).toMatch(/ok {3}the health checker runs on the proxy .*: running \(pid \d+\); out of rotation: dev2 \(172\.16\.0\.12:53\)/);
  });

  it('3. with dnsmasq started again, dev2 is back in rotation', async () => {
    const conf = join(LAB_DIR, 'hosts', VICTIM, 'dnsmasq.conf');
    const t0 = Date.now();
    const r = onHost(VICTIM, `rm -f /run/dnsmasq.pid; /usr/sbin/dnsmasq --conf-file=${conf} </dev/null >/dev/null 2>&1 && cat /run/dnsmasq.pid`);
    expect(r.code, r.stderr).toBe(0);
    writeFileSync(join(LAB_DIR, 'pids', `${VICTIM}.dns`), r.stdout.trim() + '\n');
    const up = await waitUntil(() => status(VICTIM) === 'up', 60_000, 250);
    const recovery = (Date.now() - t0) / 1000;
    expect(up, `dev2 back within 60 s; state:\n${onHost('proxy', ['cat', STATE]).stdout}`).toBe(true);
    console.log(`health checker: recovery ${recovery.toFixed(1)} s (dnsmasq started -> ${VICTIM} up in ${STATE}; passes 1)`);
    expect(onHost('proxy', ['cat', SERVERS]).stdout).toContain(`server ${VICTIM_ADDR}; # ${VICTIM}`);
    const q = answered(8);
    expect(q.ok, `every query answered:\n${q.out}`).toBe(8);
    console.log(`health checker events:\n${onHost('proxy', 'cat /var/lib/dsrctl/health/events.log').stdout}`);
  });

  it('4. rollback stops the checker (no process left), removes its files and restores every host byte for byte', async () => {
    const r = await run(['rollback', '--yes']);
    expectCode(r, 0, 'rollback');
    expect(onHost('proxy', `[ -d /proc/${pid} ] && cat /proc/${pid}/cmdline`).stdout, 'checker process').not.toContain('check.sh');
    expect(onHost('proxy', 'ps -e -o args').stdout, 'no checker process').not.toContain('dsrctl/health/check.sh');
    expect(onHost('proxy', 'ls /var/lib/dsrctl').stdout, 'the checker directory is gone').not.toMatch(/^health$/m);
    expectSnapshots(before, 'after rollback');
  });
});
