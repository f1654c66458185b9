/**
 * doctor --capture's pure parts on REAL tcpdump 4.99 output (Debian 12, `-tt -n -l -i any`), recorded
 * in the lab by test/fixtures/doctor/generate.mjs:
 *   ipt-capture   ip-transparency applied, two curls from the client (the probe host)
 *   rnat-capture  dsr-router-nat applied with udp_early_demux=1 on the proxy, four digs from the
 *                 client: the fourth reply reaches the proxy's priv0 and never leaves its pub0
 *   capture-nonroot  tcpdump's own refusal as an unprivileged user, and a host without tcpdump
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import YAML from 'yaml';
import { inventorySchema } from '../inventory/schema.js';
import {
  buildCaptureScript,
  buildReadyScript,
  buildStopScript,
  captureFilter,
  captureNotes,
  formatTimeline,
  mergeTimeline,
  parseCaptureOutput,
  parsePacketLine,
  parseReady,
  summarize,
} from './capture.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/doctor/', import.meta.url));
const text = (c: string, f: string) => readFileSync(join(FIXTURES, c, f), 'utf8');
const inventory = (c: string) => inventorySchema.parse(YAML.parse(text(c, 'inventory.yaml')));
const load = (c: string, hosts: string[]) => hosts.map((h) => parseCaptureOutput(h, text(c, `${h}.capture.txt`)));
const HOSTS = ['proxy', 'dev1', 'dev2', 'dev3', 'dev4', 'probe'];

describe('packet lines', () => {
  it('reads interface, direction, addresses and a short summary from a -i any line', () => {
    const line = text('ipt-capture', 'proxy.capture.txt').split('\n').find((l) => / pub0 {2}In {2}IP .*Flags \[S\],/.test(l))!;
    const p = parsePacketLine('proxy', line)!;
    expect(p).toMatchObject({ host: 'proxy', iface: 'pub0', dir: 'In', proto: 'IP', summary: 'Flags [S], length 0' });
    expect(p.src).toMatch(/^192\.168\.99\.1\.\d+$/);
    expect(p.dst).toBe('192.168.99.10.80');
    expect(p.time).toBeGreaterThan(1e9);
  });

  it('keeps the HTTP and DNS summaries', () => {
    expect(summarize('Flags [P.], seq 1:78, ack 1, win 63, options [nop,nop,TS val 2 ecr 3], length 77: HTTP: GET / HTTP/1.1')).toBe('Flags [P.], length 77: HTTP: GET / HTTP/1.1');
    const dns = text('rnat-capture', 'proxy.capture.txt').split('\n').find((l) => l.includes('priv0 In '))!;
    expect(parsePacketLine('proxy', dns)).toMatchObject({ iface: 'priv0', dir: 'In', summary: expect.stringMatching(/^\d+\* 1\/0\/1 A 172\.16\.0\.1\d \(60\)$/) });
  });

  it('lines without an interface (tcpdump on one device) and ICMP errors parse too; other lines do not', () => {
    expect(parsePacketLine('h', '1795666893.786827 IP 10.0.0.1.5 > 10.0.0.2.53: 1+ A? x. (17)')).toMatchObject({ iface: '', dir: '', src: '10.0.0.1.5', dst: '10.0.0.2.53' });
    expect(parsePacketLine('h', '1795666893.786827 priv0 Out IP 172.16.0.11 > 192.168.99.1: ICMP 172.16.0.11 udp port 53 unreachable, length 92')).toMatchObject({
      src: '172.16.0.11',
      dst: '192.168.99.1',
      summary: 'ICMP 172.16.0.11 udp port 53 unreachable, length 92',
    });
    expect(parsePacketLine('h', '@@stderr listening on any, link-type LINUX_SLL2')).toBeNull();
    expect(parsePacketLine('h', '')).toBeNull();
  });
});

describe('host captures', () => {
  it('ip-transparency: every host listened; the packets per host', () => {
    const caps = load('ipt-capture', HOSTS);
    expect(caps.map((c) => c.status)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
    expect(caps.find((c) => c.host === 'proxy')!.packets).toHaveLength(40);
    expect(caps.find((c) => c.host === 'probe')!.packets).toHaveLength(20);
    expect(caps.find((c) => c.host === 'proxy')!.messages).toContain('40 packets captured');
    expect(captureNotes(caps).filter((n) => / 10 packets on priv0$/.test(n))).toHaveLength(2); // round robin: two upstreams
    expect(captureNotes(caps)).toContain('proxy: 40 packets on pub0, priv0');
  });

  it('missing tcpdump and a refused capture are told apart', () => {
    const [proxy, dev1] = load('capture-nonroot', ['proxy', 'dev1']);
    expect(proxy).toMatchObject({ status: 'failed', packets: [], note: "tcpdump: any: You don't have permission to perform this capture on that device; (socket: Operation not permitted)" });
    expect(dev1).toMatchObject({ status: 'missing', note: 'tcpdump is not installed' });
    expect(captureNotes([proxy!, dev1!])).toEqual([
      "proxy: tcpdump failed: tcpdump: any: You don't have permission to perform this capture on that device; (socket: Operation not permitted)",
      'dev1: not captured: tcpdump is not installed',
    ]);
  });
});

describe('merged timeline', () => {
  it('ip-transparency: client, proxy and upstream in time order; the upstream sees the client\'s address', () => {
    const merged = mergeTimeline(load('ipt-capture', HOSTS));
    expect(merged).toHaveLength(80);
    for (let i = 1; i < merged.length; i++) expect(merged[i]!.time).toBeGreaterThanOrEqual(merged[i - 1]!.time);
    expect(merged[0]).toMatchObject({ host: 'probe', iface: 'pub0', dir: 'Out', summary: 'Flags [S], length 0' });
    expect(merged[1]).toMatchObject({ host: 'proxy', iface: 'pub0', dir: 'In', summary: 'Flags [S], length 0' });
    // the first SYN to an upstream: sent by the proxy with the client's address, then received by the upstream
    const i = merged.findIndex((p) => p.host === 'proxy' && p.iface === 'priv0' && p.summary === 'Flags [S], length 0');
    expect(merged[i]!.src).toMatch(/^192\.168\.99\.1\.\d+$/);
    expect(merged.slice(i + 1).find((p) => p.host.startsWith('dev'))).toMatchObject({ dir: 'In', src: merged[i]!.src, summary: 'Flags [S], length 0' });
    const lines = formatTimeline(merged);
    expect(lines[0]).toMatch(/^time {7}host {3}iface {6}src > dst {30}summary$/);
    expect(lines[1]).toMatch(/^\+0\.000000 {2}probe {2}pub0 Out {3}192\.168\.99\.1\.\d+ > 192\.168\.99\.10\.80 {2}Flags \[S\], length 0$/);
  });

  it('router NAT with early demux on: the last reply stops at the proxy', () => {
    const merged = mergeTimeline(load('rnat-capture', HOSTS));
    const replies = merged.filter((p) => p.host === 'proxy' && p.iface === 'priv0' && p.dir === 'In');
    expect(replies).toHaveLength(4);
    const id = (p: { summary: string }) => p.summary.split(' ')[0]!.replace(/\*$/, '');
    const forwarded = merged.filter((p) => p.host === 'proxy' && p.iface === 'pub0' && p.dir === 'Out').map(id);
    const lost = replies.filter((r) => !forwarded.includes(id(r)));
    expect(lost).toHaveLength(1);
    // the client never got that one, the upstream did send it
    expect(merged.filter((p) => p.host === 'probe' && p.dir === 'In').map(id)).not.toContain(id(lost[0]!));
    expect(merged.some((p) => p.host.startsWith('dev') && p.dir === 'Out' && id(p) === id(lost[0]!))).toBe(true);
    // and the rewritten source of the forwarded ones is the proxy's public address
    for (const p of merged.filter((p) => p.host === 'proxy' && p.iface === 'pub0' && p.dir === 'Out')) expect(p.src).toBe('192.168.99.10.53');
  });
});

describe('scripts', () => {
  it('filter: the service ports per protocol, plus ICMP errors', () => {
    expect(captureFilter(inventory('ipt-capture'))).toBe('(tcp and (port 80 or port 8080)) or (icmp and (icmp[0] = 3 or icmp[0] = 11))');
    expect(captureFilter(inventory('rnat-capture'))).toBe('(udp and (port 53)) or (icmp and (icmp[0] = 3 or icmp[0] = 11))');
  });

  it('capture, ready and stop scripts find the tcpdump of this capture by its token only', () => {
    const s = buildCaptureScript(20, '(tcp and (port 80))', 'abc123h0');
    expect(s).toContain("DSRCTL_CAPTURE=abc123h0 timeout 20 tcpdump -tt -n -l -c 5000 -i any '(tcp and (port 80))'");
    expect(buildReadyScript('abc123h0', 3)).toContain("grep -l -z -x 'DSRCTL_CAPTURE=abc123h0' /proc/[0-9]*/environ");
    expect(buildStopScript('abc123h0')).toContain('kill -INT $_p');
    expect(() => buildCaptureScript(20, 'x', "a'; reboot")).toThrow(/token/);
    expect(() => buildCaptureScript(0, 'x', 'abc123')).toThrow(/seconds/);
    expect(parseReady('@@ready 1627 1795667679.370901208\n')).toEqual({ ready: true, at: 1795667679.370901208 });
    expect(parseReady('@@notready tcpdump missing\n')).toEqual({ ready: false, why: 'tcpdump missing' });
  });
});
