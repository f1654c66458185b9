/**
 * End to end, Method 1 of the NGINX guide (IP Transparency) for the stream services: UDP (the
 * guide's DNS demo, dnsmasq on each upstream) and plain TCP (:8081 -> the upstreams' hello server
 * on :8080). The real CLI (dist/cli.js, so `npm run build` first) against the lab.
 *
 *   npm run build && npx vitest run --project e2e test/e2e/stream.test.ts
 *
 * One describe per protocol, each with its own lab; the tests of a describe build on each other.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LAB_DIR, UPSTREAMS, labUp, labDown, onHost, run, settledSnapshotAll } from './harness.js';
import { show, expectCode, expectSnapshots } from './expect.js';
import { digs, hello, startCapture, stopCapture, CLIENT_IP, UPSTREAM_IPS } from './net.js';

const STREAM_CONF = '/etc/nginx/dsrctl/stream.conf';

/** The iptables mangle MARK rules dsrctl adds on the proxy (iptables-save lines). */
const markRules = () =>
  onHost('proxy', 'iptables-save -t mangle')
    .stdout.split('\n')
    .filter((l) => / -j MARK /.test(l));

/** dnsmasq's query log of an upstream (lab.sh: log-facility=$LAB/hosts/<h>/dnsmasq.log, log-queries). */
const dnsmasqLog = (h: string): string => {
  try {
    return readFileSync(join(LAB_DIR, 'hosts', h, 'dnsmasq.log'), 'utf8');
  } catch {
    return '';
  }
};

describe('ip-transparency + udp (the guide\'s DNS demo through Method 1)', () => {
  let before: Record<string, string>;

  beforeAll(async () => {
    labUp({ DSR_LAB_MODE: 'ip-transparency', DSR_LAB_PROTOCOL: 'udp' });
    before = await settledSnapshotAll();
  });
  afterAll(() => {
    labDown();
  });

  it('1. apply exits 0: stream config with proxy_responses 1 and proxy_timeout 1s; MARK rules on udp sport 53', async () => {
    const r = await run(['apply', '--yes', '--json']);
    expectCode(r, 0, 'apply');
    expect(r.json?.result, show(r)).toBe('applied');
    const conf = onHost('proxy', ['cat', STREAM_CONF]).stdout;
    expect(conf, `${STREAM_CONF}:\n${conf}`).toMatch(/^\s*listen 53 udp;$/m);
    expect(conf).toMatch(/^\s*proxy_bind \$remote_addr transparent;$/m);
    expect(conf, "the guide's basic UDP health check").toMatch(/^\s*proxy_responses 1;$/m);
    expect(conf).toMatch(/^\s*proxy_timeout 1s;$/m);
    const rules = markRules();
    expect(rules.length, rules.join('\n')).toBe(4);
    for (const ip of UPSTREAM_IPS)
      expect(rules, `the MARK rule for ${ip}`).toContain(`-A PREROUTING -s ${ip}/32 -p udp -m udp --sport 53 -m comment --comment dsrctl -j MARK --set-xmark 0x1/0xffffffff`);
  });

  it('2. dig from the client: every query answered, by all four upstreams', () => {
    const d = digs(8);
    const answered = d.answers.filter((a) => a !== undefined);
    expect(answered.length, d.raw).toBe(8);
    expect(new Set(answered), d.raw).toEqual(new Set(UPSTREAM_IPS));
  });

  it('3. the upstream sees the client: a capture on dev1 shows queries from 192.168.99.1, and every dnsmasq logs them', () => {
    const logBefore = Object.fromEntries(UPSTREAMS.map((u) => [u, dnsmasqLog(u).length]));
    startCapture('dev1', 'udp and dst port 53', { iface: 'priv0' });
    let d: ReturnType<typeof digs>;
    let cap: ReturnType<typeof stopCapture>;
    try {
      d = digs(4); // round robin: one of the four reaches dev1
    } finally {
      cap = stopCapture('dev1');
    }
    expect(d.answers.filter(Boolean).length, d.raw).toBe(4);
    expect(cap.packets.length, `dev1 must receive a query:\n${cap.raw}`).toBeGreaterThanOrEqual(1);
    for (const p of cap.packets) expect(p, `dev1 sees the client's address as the source:\n${cap.raw}`).toMatch(/ IP 192\.168\.99\.1\.\d+ > 172\.16\.0\.11\.53: /);
    for (const u of UPSTREAMS) {
      const fresh = dnsmasqLog(u).slice(logBefore[u]);
      expect(fresh, `${u}'s dnsmasq log since the queries`).toMatch(new RegExp(`query\\[A\\] www\\.example\\.com from ${CLIENT_IP.replace(/\./g, '\\.')}`));
      expect(fresh, `${u} must not see the proxy as the source`).not.toMatch(/from 172\.16\.0\.1\b/);
    }
  });

  it('4. rollback restores every host byte for byte', async () => {
    const r = await run(['rollback', '--yes']);
    expectCode(r, 0, 'rollback');
    expectSnapshots(before, 'after rollback');
  });
});

describe('ip-transparency + tcp (:8081 -> the upstreams\' hello server on :8080)', () => {
  let before: Record<string, string>;
  /** the proxy's own http app.conf (:80 -> :8080), which dsrctl must leave working */
  const app80 = () => hello(4);

  beforeAll(async () => {
    labUp({ DSR_LAB_MODE: 'ip-transparency', DSR_LAB_PROTOCOL: 'tcp' });
    before = await settledSnapshotAll();
  });
  afterAll(() => {
    labDown();
  });

  it('1. before: the http app on :80 answers (the upstreams see the proxy); nothing listens on :8081', () => {
    const h = app80();
    expect(h.names.length, h.raw).toBe(4);
    expect(new Set(h.sources), h.raw).toEqual(new Set(['172.16.0.1']));
    const r = onHost('client', 'curl -sS --max-time 3 http://192.168.99.10:8081/');
    expect(r.code, `${r.stdout}${r.stderr}`).not.toBe(0);
  });

  it('2. apply exits 0; curl :8081 from the client: every upstream answers "You connected from 192.168.99.1"', async () => {
    const r = await run(['apply', '--yes', '--json']);
    expectCode(r, 0, 'apply');
    expect(r.json?.result, show(r)).toBe('applied');
    const conf = onHost('proxy', ['cat', STREAM_CONF]).stdout;
    expect(conf, conf).toMatch(/^\s*listen 8081;$/m);
    expect(conf).toMatch(/^\s*proxy_bind \$remote_addr transparent;$/m);
    const rules = markRules();
    expect(rules.length, rules.join('\n')).toBe(4);
    for (const ip of UPSTREAM_IPS) expect(rules).toContain(`-A PREROUTING -s ${ip}/32 -p tcp -m tcp --sport 8080 -m comment --comment dsrctl -j MARK --set-xmark 0x1/0xffffffff`);

    const first = hello(4, 'http://192.168.99.10:8081/');
    const h = new Set(first.names).size === 4 ? first : hello(12, 'http://192.168.99.10:8081/');
    expect(first.sources, `the upstreams see the client:\n${first.raw}`).toEqual([CLIENT_IP, CLIENT_IP, CLIENT_IP, CLIENT_IP]);
    expect(first.raw).toMatch(/You connected from 192\.168\.99\.1:\d+ to 172\.16\.0\.1[1-4]:8080/);
    expect(new Set(h.names), h.raw).toEqual(new Set(UPSTREAMS));
  });

  it('3. the http app on :80 keeps working while the stream service is applied', () => {
    const h = app80();
    expect(h.names.length, h.raw).toBe(4);
    expect(h.raw).not.toMatch(/curl failed|curl: \(/);
  });

  it('4. rollback restores every host byte for byte; :80 still answers, :8081 is gone', async () => {
    const r = await run(['rollback', '--yes']);
    expectCode(r, 0, 'rollback');
    expectSnapshots(before, 'after rollback');
    const h = app80();
    expect(h.names.length, h.raw).toBe(4);
    expect(new Set(h.sources), h.raw).toEqual(new Set(['172.16.0.1']));
    expect(onHost('client', 'curl -sS --max-time 3 http://192.168.99.10:8081/').code).not.toBe(0);
  });
});
