import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { judgeHttpProbe, judgeDnsProbe, planChecks, describeVerification, parseCheckOutput } from './checks.js';
import { renderCheckScript } from './check-script.js';
import { inventorySchema, type Inventory } from '../inventory/schema.js';

const fx = (name: string) => readFileSync(new URL(`../../test/fixtures/verify/${name}`, import.meta.url), 'utf8');

const inv = (expect_source?: string) => ({ proxy: { private_ip: '172.16.0.1', public_ip: '192.168.99.10' }, verify: { probe: { expect_source } } }) as unknown as Inventory;
const hello = (src: string) => `Hello from dev1. You connected from ${src}:40000 to 172.16.0.11:8080`;

describe('the HTTP probe: the guide\'s test', () => {
  it('passes when every upstream saw the client address', () => {
    expect(judgeHttpProbe([hello('192.168.99.1'), hello('192.168.99.1')], inv('192.168.99.1')).ok).toBe(true);
  });
  it('fails when an upstream saw the proxy (transparency not working)', () => {
    expect(judgeHttpProbe([hello('192.168.99.1'), hello('172.16.0.1')], inv('192.168.99.1'))).toMatchObject({ ok: false, detail: expect.stringMatching(/1 of 2 responses did not come from 192\.168\.99\.1/) });
  });
  it('without an expected address: an HTTP error (curl -f, e.g. the 502 of a failed transparent bind) or an echo of the proxy fails', () => {
    expect(judgeHttpProbe(['curl: (22) The requested URL returned error: 502'], inv()).ok).toBe(false);
    expect(judgeHttpProbe([hello('172.16.0.1')], inv()).ok).toBe(false);
    expect(judgeHttpProbe(['<html>welcome</html>'], inv()).ok).toBe(true);
  });
  it('DNS: every query must get a response (any code without dns_query; a real answer with it)', () => {
    const soa = { name: '.', type: 'SOA', needAnswer: false };
    expect(judgeDnsProbe([fx('dig-refused.txt'), fx('dig-refused.txt')], soa)).toEqual({ ok: true, detail: '2 of 2 answered: REFUSED | REFUSED' });
    expect(judgeDnsProbe([fx('dig-refused.txt'), fx('dig-timeout.txt')], soa)).toEqual({ ok: false, detail: '1 of 2 queries failed: REFUSED | no response: timed out' });
    expect(judgeDnsProbe([fx('dig-refused.txt')], { name: 'www.example.com', type: 'A', needAnswer: true }).ok).toBe(false);
    expect(judgeDnsProbe([fx('dig-noerror.txt')], { name: 'www.example.com', type: 'A', needAnswer: true })).toEqual({ ok: true, detail: '1 of 1 answered: 172.16.0.11' });
  });
});

const lab = (mode: string, service: object, verify: object = {}) =>
  inventorySchema.parse({
    mode,
    service,
    proxy: { ssh_host: '10.0.0.10', public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0' },
    upstreams: [
      { name: 'dev1', ssh_host: '10.0.0.11', ip: '172.16.0.11', interface: 'priv0' },
      { name: 'dev2', ssh_host: '10.0.0.12', ip: '172.16.0.12', interface: 'priv0' },
    ],
    verify,
  });
const udp53 = { protocol: 'udp', listen_port: 53, upstream_port: 53 };
const http = { protocol: 'http', listen_port: 80, upstream_port: 8080 };

describe('what verification checks, as plan and verify state it', () => {
  it('udp/53: each upstream gets a DNS check asking ". SOA", any response code counting', () => {
    const c = planChecks(lab('dsr-router-nat', udp53)).find((x) => x.id === 'service-dev1')!;
    expect(c.kind).toBe('service-dns');
    expect(c.description).toBe('dev1\'s service answers the proxy directly (DNS query ". SOA" to 172.16.0.11:53, any response code counts; default for udp port 53)');
  });
  it('DSR without a probe: the end-to-end path is unproven, said plainly', () => {
    expect(describeVerification(lab('dsr-origin-nat', udp53))).toEqual([
      'service check: dns (default for udp port 53): ". SOA", any response code counts',
      expect.stringMatching(/^end-to-end path unproven: no verify\.probe, and the proxy cannot ask itself through DSR/),
    ]);
  });
  it('udp on another port: "no check" rather than a wrong one', () => {
    const checks = planChecks(lab('dsr-router-nat', { protocol: 'udp', listen_port: 514, upstream_port: 514 }));
    expect(checks.filter((c) => c.kind.startsWith('service-'))).toEqual([]);
    expect(checks.find((c) => c.id === 'service-none')?.description).toMatch(/^no service check of the upstreams \(udp port 514 is not DNS/);
  });
  it('Method 1 without a probe: a path check from the proxy to its own public address', () => {
    expect(planChecks(lab('ip-transparency', http)).find((c) => c.id === 'path')).toMatchObject({ host: 'proxy', kind: 'path-http', target: '192.168.99.10:80' });
    expect(planChecks(lab('ip-transparency', udp53)).find((c) => c.id === 'path')).toMatchObject({ host: 'proxy', kind: 'path-dns' });
    expect(planChecks(lab('ip-transparency', http, { path_check: false })).find((c) => c.id === 'path')).toMatchObject({ kind: 'note', description: expect.stringMatching(/unproven/) });
    expect(planChecks(lab('ip-transparency', http, { probe: { ssh_host: '10.0.0.2' } })).find((c) => c.id === 'path')).toBeUndefined();
  });
  it("the path check's script asks each upstream and the public address for the same unique path; its verdict comes from their answers", () => {
    const inv = lab('ip-transparency', http);
    const checks = planChecks(inv).filter((c) => c.id === 'path');
    const script = renderCheckScript(checks, inv, 'feedc0de');
    for (const u of ['http://172.16.0.11:8080', 'http://172.16.0.12:8080', 'http://192.168.99.10:80']) expect(script.replace(/\\/g, "")).toContain(`${u}/.well-known/dsrctl-path-check/feedc0de`);
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const hello = (n: number) => `200\n\nHello from dev${n}. You connected from 192.168.99.10:4000${n} to 172.16.0.1${n}:8080\n`;
    const out = (via: string) => ['@@nonce feedc0de', `@@raw path#dev1 ${b64(hello(1))}`, `@@raw path#dev2 ${b64(hello(2))}`, `@@raw path ${b64(via)}`].join('\n');
    expect(parseCheckOutput(checks, out(hello(2)), inv)[0]).toMatchObject({ ok: true });
    expect(parseCheckOutput(checks, out('200\n\nWelcome to nginx!'), inv)[0]).toMatchObject({ ok: false, detail: expect.stringMatching(/dsrctl-path-check\/feedc0de with 200 "Welcome to nginx!", which no upstream gives/) });
  });
});
