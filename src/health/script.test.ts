import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { inventorySchema, type Inventory } from '../inventory/schema.js';
import { validateInventory } from '../inventory/load.js';
import { judgeService, serviceAliveTest, serviceProbeCommand } from '../verify/service-check.js';
import { splitSections } from '../facts/format.js';
import { parseHealthProcess, parseReads } from '../facts/parse.js';
import { healthSettings } from './settings.js';
import { describeDown, parseHealthState, parseServers, renderHealthScript, renderServers, upstreamEntries } from './script.js';

const fixtureUrl = (dir: string, name: string) => new URL(`../../test/fixtures/${dir}/${name}`, import.meta.url);
/** real output of verify's check commands, captured in the lab */
const verifyFx = (name: string) => fixtureUrl('verify', name);
/** real files of a checker that took dev2 out (lab, dsr-router-nat, dev2's dnsmasq killed) */
const healthFx = (name: string) => readFileSync(fixtureUrl('health', name), 'utf8');

const LAB = {
  ssh_host: '10.0.0.10',
  public_ip: '192.168.99.10',
  public_interface: 'pub0',
  private_ip: '172.16.0.1',
  private_interface: 'priv0',
};
const UPSTREAMS = [1, 2, 3, 4].map((n) => ({ name: `dev${n}`, ssh_host: `10.0.0.1${n}`, ip: `172.16.0.1${n}` }));

const inv = (over: Record<string, unknown> = {}): Inventory =>
  inventorySchema.parse({ mode: 'dsr-router-nat', service: { protocol: 'udp', listen_port: 53, upstream_port: 53 }, proxy: LAB, upstreams: UPSTREAMS, ...over });
const http = (over: Record<string, unknown> = {}) => inv({ mode: 'ip-transparency', service: { protocol: 'http', listen_port: 80, upstream_port: 8080 }, ...over });

/** The checker's shell decision on a captured output, as the script runs it. */
function shellVerdict(test: string, file: URL): boolean {
  const r = spawnSync('sh', ['-c', `out=$(cat "$1"); if ${test}; then echo ok; else echo fail; fi`, 'sh', fileURLToPath(file)], { encoding: 'utf8' });
  return r.stdout.trim() === 'ok';
}

describe('the checker decides like dsrctl verify (same command, same verdict on real outputs)', () => {
  const named = inv({ verify: { probe: { ssh_host: '10.0.0.2', dns_query: 'www.example.com' } } });
  it.each([
    ['dns', 'dig-refused.txt', inv()],
    ['dns', 'dig-nxdomain.txt', inv()],
    ['dns', 'dig-noerror.txt', inv()],
    ['dns', 'dig-timeout.txt', inv()],
    ['dns', 'dig-connection-refused.txt', inv()],
    ['dns', 'dig-noerror.txt', named],
    ['dns', 'dig-refused.txt', named],
    ['dns', 'dig-nxdomain.txt', named],
    ['http', 'http-upstream.txt', http()],
    ['http', 'http-refused.txt', http()],
    ['http', 'http-timeout.txt', http()],
    ['tcp', 'tcp-no-banner.txt', http()],
    ['tcp', 'tcp-ssh-banner.txt', http()],
    ['tcp', 'tcp-refused.txt', http()],
    ['tcp', 'tcp-timeout.txt', http()],
  ] as const)('%s %s', (kind, file, i) => {
    const ts = judgeService(kind, readFileSync(verifyFx(file), 'utf8'), i).ok;
    expect(shellVerdict(serviceAliveTest(kind, i), verifyFx(file))).toBe(ts);
  });
  it('an HTTP 5xx is dead to both', () => {
    const t = serviceAliveTest('http', http());
    const r = spawnSync('sh', ['-c', `out='502\n\n<html>bad gateway</html>'; if ${t}; then echo ok; else echo fail; fi`], { encoding: 'utf8' });
    expect(r.stdout.trim()).toBe('fail');
    expect(judgeService('http', '502\n\n<html>bad gateway</html>', http()).ok).toBe(false);
  });
  it("the script runs verify's own command against each upstream, and is valid sh", () => {
    const i = inv();
    const hs = healthSettings(i);
    if (!hs.enabled) throw new Error('health should be on for DSR');
    const script = renderHealthScript(i, hs);
    for (const u of UPSTREAMS) expect(script).toContain(`out=$(${serviceProbeCommand('dns', u.ip, 53, i)})`);
    expect(script).toContain("dig +tries=1 +time=2 +noall +comments +answer -p 53 \\@172.16.0.12 . SOA");
    expect(script).toContain('if [ -e "$LOCK" ]; then sleep 1 & wait $!; continue; fi');
    expect(script).toContain("LOCK=/var/lib/dsrctl/lock");
    expect(script).toMatch(/^INTERVAL=5\nFAILS=1\nPASSES=1$/m);
    expect(spawnSync('sh', ['-n'], { input: script }).status).toBe(0);
  });
});

describe('the server list and the state file (real files of a checker that took dev2 out)', () => {
  it("the checker's server list is byte for byte what dsrctl renders for the same states", () => {
    const real = healthFx('servers-dev2-down.txt');
    expect(renderServers(upstreamEntries(inv(), new Set(['172.16.0.12:53'])))).toBe(real);
    expect([...parseServers(real)]).toEqual([
      ['172.16.0.11:53', false],
      ['172.16.0.12:53', true],
      ['172.16.0.13:53', false],
      ['172.16.0.14:53', false],
    ]);
  });
  it('the state file: dev2 down after failed checks, with what dig said; plan and verify name it', () => {
    const s = parseHealthState(healthFx('state-dev2-down.txt'))!;
    expect(s).toMatchObject({ pid: 24108, interval: 5 });
    expect(s.upstreams.map((u) => `${u.name} ${u.status}`)).toEqual(['dev1 up', 'dev2 down', 'dev3 up', 'dev4 up']);
    expect(s.upstreams[1]).toMatchObject({ addr: '172.16.0.12:53', fails: 3, passes: 0, last: expect.stringMatching(/^fail ;; communications error to 172\.16\.0\.12#53: connection refused/) });
    expect(describeDown(s, null)).toEqual([
      'dev2 (172.16.0.12:53) since 2026-12-07T21:52:47Z: 3 failed check(s) in a row, last: ;; communications error to 172.16.0.12#53: connection refused ;; no servers could be reached',
    ]);
    expect(parseHealthState('')).toBeNull();
  });
  it('facts read the state and the server list in one read each, and whether the recorded pid runs the checker', () => {
    const sections = splitSections(healthFx('facts-sections.txt'));
    const reads = parseReads(sections.filter((s) => s.name === 'read'));
    expect(reads['/etc/nginx/dsrctl-health.servers']).toBe(healthFx('servers-dev2-down.txt'));
    expect(parseHealthState(reads['/var/lib/dsrctl/health/state']!)?.upstreams[1]?.status).toBe('down');
    expect(reads['/var/lib/dsrctl/health/absent']).toBeNull();
    expect(parseHealthProcess(sections.find((s) => s.name === 'health')!.body)).toEqual({ pid: 24108, alive: true });
  });
});

describe('inventory: health', () => {
  it('on by default for DSR with NGINX Plus defaults (interval 5, fails 1, passes 1), off for Method 1 unless asked', () => {
    expect(healthSettings(inv())).toMatchObject({ enabled: true, interval: 5, fails: 1, passes: 1, check: 'dns' });
    expect(healthSettings(inv({ health: false }))).toMatchObject({ enabled: false, reason: 'health: false' });
    expect(healthSettings(http())).toMatchObject({ enabled: false, reason: expect.stringMatching(/off by default for ip-transparency/) });
    expect(healthSettings(http({ health: true }))).toMatchObject({ enabled: true, check: 'http' });
    expect(healthSettings(inv({ health: { interval: 2, fails: 3 } }))).toMatchObject({ enabled: true, interval: 2, fails: 3, passes: 1 });
  });
  it('a UDP service that no check speaks gets no checker, and says why', () => {
    const h = healthSettings(inv({ verify: { check: 'none' } }));
    expect(h).toMatchObject({ enabled: false, reason: expect.stringMatching(/no check speaks this service \(verify\.check: none\)/) });
  });
  it.each([
    [{ interval: 0 }, 'health.interval: must be 1-3600 seconds (got 0)'],
    [{ fails: 1.5 }, 'health.fails: must be a whole number (got 1.5)'],
    [{ every: 3 }, 'health: unknown field "every"'],
    ['yes', 'health: must be true, false or { interval, fails, passes } (got "yes")'],
  ])('%j is refused naming the field', (health, msg) => {
    expect(() => validateInventory({ mode: 'dsr-router-nat', service: { protocol: 'udp', listen_port: 53, upstream_port: 53 }, proxy: LAB, upstreams: UPSTREAMS, health })).toThrow(msg);
  });
});
