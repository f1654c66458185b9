import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { inventorySchema, type Inventory } from '../inventory/schema.js';
import { chooseServiceCheck, dnsQuestion, judgeDns, judgeHttp, judgeTcp, judgeHttpPath, judgeTcpPath, answerShape } from './service-check.js';

/** real output of the commands serviceProbeCommand runs, captured in the lab */
const fx = (name: string) => readFileSync(new URL(`../../test/fixtures/verify/${name}`, import.meta.url), 'utf8');

const inv = (service: object, verify: object = {}): Inventory =>
  inventorySchema.parse({
    mode: 'ip-transparency',
    service,
    proxy: { ssh_host: '10.0.0.10', public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0' },
    upstreams: [{ name: 'dev1', ssh_host: '10.0.0.11', ip: '172.16.0.11' }],
    verify,
  });

describe('which check a service gets (plan states it)', () => {
  it('defaults: http -> http, tcp -> tcp connect, udp/53 -> dns, other udp -> none ("no check", not a wrong one)', () => {
    expect(chooseServiceCheck(inv({ protocol: 'http', listen_port: 80, upstream_port: 8080 }))).toEqual({ kind: 'http', reason: 'default for protocol http' });
    expect(chooseServiceCheck(inv({ protocol: 'tcp', listen_port: 5432, upstream_port: 5432 })).kind).toBe('tcp');
    expect(chooseServiceCheck(inv({ protocol: 'udp', listen_port: 53, upstream_port: 53 })).kind).toBe('dns');
    const other = chooseServiceCheck(inv({ protocol: 'udp', listen_port: 514, upstream_port: 514 }));
    expect(other.kind).toBe('none');
    expect(other.reason).toMatch(/udp port 514 is not DNS.*set verify\.check: dns/);
  });
  it('verify.check overrides the default', () => {
    expect(chooseServiceCheck(inv({ protocol: 'udp', listen_port: 5353, upstream_port: 5353 }, { check: 'dns' }))).toEqual({ kind: 'dns', reason: 'verify.check: dns' });
    expect(chooseServiceCheck(inv({ protocol: 'udp', listen_port: 53, upstream_port: 53 }, { check: 'none' })).kind).toBe('none');
  });
  it('http or tcp checks on a udp service are refused with the field named', () => {
    expect(() => inv({ protocol: 'udp', listen_port: 53, upstream_port: 53 }, { check: 'http' })).toThrow(/needs a TCP service/);
  });
  it('DNS asks keepalived\'s ". SOA" unless dns_query names a real answer', () => {
    expect(dnsQuestion(inv({ protocol: 'udp', listen_port: 53, upstream_port: 53 }))).toEqual({ name: '.', type: 'SOA', needAnswer: false });
    expect(dnsQuestion(inv({ protocol: 'udp', listen_port: 53, upstream_port: 53 }, { probe: { ssh_host: '10.0.0.2', dns_query: 'www.example.com' } }))).toEqual({
      name: 'www.example.com',
      type: 'A',
      needAnswer: true,
    });
  });
});

describe('DNS: any response code is alive, silence is not', () => {
  const soa = { name: '.', type: 'SOA', needAnswer: false };
  const named = { name: 'www.example.com', type: 'A', needAnswer: true };
  it.each([
    ['dig-refused.txt', 'REFUSED (the server responded)'],
    ['dig-nxdomain.txt', 'NXDOMAIN (the server responded)'],
    ['dig-noerror.txt', 'NOERROR, answer 172.16.0.11'],
  ])('%s: alive, the code in the check line', (file, detail) => {
    expect(judgeDns(fx(file), soa)).toMatchObject({ ok: true, detail });
  });
  it('a timeout is dead', () => {
    expect(judgeDns(fx('dig-timeout.txt'), soa)).toMatchObject({ ok: false, detail: 'no response: timed out' });
  });
  it('an ICMP port unreachable (dig: connection refused) is dead', () => {
    expect(judgeDns(fx('dig-connection-refused.txt'), soa)).toMatchObject({ ok: false, detail: expect.stringMatching(/^no response: connection refused \(ICMP port unreachable/) });
  });
  it('with dns_query only a real answer passes: REFUSED and NXDOMAIN fail', () => {
    expect(judgeDns(fx('dig-noerror.txt'), named)).toMatchObject({ ok: true, answers: ['172.16.0.11'] });
    expect(judgeDns(fx('dig-refused.txt'), named)).toMatchObject({ ok: false, detail: expect.stringMatching(/^REFUSED, no answer records for www\.example\.com A/) });
    expect(judgeDns(fx('dig-nxdomain.txt'), named).ok).toBe(false);
  });
});

describe('HTTP and TCP service checks', () => {
  it('http: a status code below 500 is alive; no connection is not', () => {
    expect(judgeHttp(fx('http-upstream.txt'))).toEqual({ ok: true, detail: 'HTTP 200' });
    expect(judgeHttp(fx('http-refused.txt'))).toMatchObject({ ok: false, detail: expect.stringMatching(/^no response: curl: \(7\) Failed to connect to 172\.16\.0\.11 port 8081/) });
    expect(judgeHttp(fx('http-timeout.txt')).ok).toBe(false);
    expect(judgeHttp('502\n\n<html>bad gateway</html>')).toEqual({ ok: false, detail: 'HTTP 502' });
  });
  it('tcp: connected (with the banner when one comes) or not', () => {
    expect(judgeTcp(fx('tcp-no-banner.txt'))).toEqual({ ok: true, detail: 'connected' });
    expect(judgeTcp(fx('tcp-ssh-banner.txt'))).toEqual({ ok: true, detail: 'connected, banner "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"' });
    expect(judgeTcp(fx('tcp-refused.txt'))).toMatchObject({ ok: false, detail: expect.stringMatching(/^no connection: Failed to connect/) });
    expect(judgeTcp(fx('tcp-timeout.txt'))).toMatchObject({ ok: false, detail: expect.stringMatching(/Timeout was reached/) });
  });
});

describe('the path check: only an upstream may answer the proxy\'s public address', () => {
  const path = '/.well-known/dsrctl-path-check/0123456789abcdef';
  const upstream = fx('http-upstream.txt');
  const viaProxy = '200\n\nHello from dev2. You connected from 192.168.99.10:40212 to 172.16.0.12:8080\n';
  it('passes when the answer has the shape of an upstream\'s (ports and names differ)', () => {
    expect(judgeHttpPath(viaProxy, [['dev1', upstream]], '192.168.99.10:80', path)).toMatchObject({ ok: true, detail: expect.stringMatching(/like upstream dev1 does: 200 "Hello from dev2/) });
  });
  it("fails on nginx's default page, naming what answered and what the upstreams answer", () => {
    const r = judgeHttpPath('200\n\nWelcome to nginx!', [['dev1', upstream]], '192.168.99.10:80', path);
    expect(r.ok).toBe(false);
    expect(r.detail).toMatch(/^192\.168\.99\.10:80 answered GET \/\.well-known\/dsrctl-path-check\/0123456789abcdef with 200 "Welcome to nginx!", which no upstream gives \(dev1 answers 200 "Hello from dev1/);
  });
  it("fails on nginx's own 502 and on no response", () => {
    expect(judgeHttpPath('502\n\n<html>\r\n<head><title>502 Bad Gateway</title></head>', [['dev1', upstream]], 't', path).ok).toBe(false);
    expect(judgeHttpPath(fx('http-timeout.txt'), [['dev1', upstream]], 't', path)).toMatchObject({ ok: false, detail: expect.stringMatching(/gave no response/) });
  });
  it('cannot pass when no upstream answers directly', () => {
    expect(judgeHttpPath(viaProxy, [['dev1', fx('http-refused.txt')]], 't', path)).toMatchObject({ ok: false, detail: expect.stringMatching(/no upstream answered/) });
  });
  it('request ids and tokens do not make two answers of one server differ', () => {
    expect(answerShape('id 3f9a1c2e77b0d4e1 at 12:01:02')).toBe(answerShape('id 0a1b2c3d4e5f6071 at 12:01:03'));
  });
  it('tcp: the upstreams\' banner must come back; without a banner the path is unproven, not passed silently', () => {
    expect(judgeTcpPath(fx('tcp-ssh-banner.txt'), [['dev1', fx('tcp-ssh-banner.txt')]], 't')).toMatchObject({ ok: true });
    expect(judgeTcpPath(fx('tcp-no-banner.txt'), [['dev1', fx('tcp-ssh-banner.txt')]], 't').ok).toBe(false);
    expect(judgeTcpPath(fx('tcp-no-banner.txt'), [['dev1', fx('tcp-no-banner.txt')]], 't')).toMatchObject({ ok: true, unproven: true, detail: expect.stringMatching(/unproven/) });
    expect(judgeTcpPath(fx('tcp-refused.txt'), [['dev1', fx('tcp-no-banner.txt')]], 't').ok).toBe(false);
  });
});
