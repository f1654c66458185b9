import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { inventorySchema, type Inventory } from '../inventory/schema.js';
import { planChecks, parseCheckOutput, type Check } from './checks.js';
import { renderCheckScript } from './check-script.js';
import { parseScriptOutput, probeHttpText, splitHeads } from './check-output.js';

/**
 * Real output captured on the lab (test/lab/lab.sh) for this inventory: the scripts of this
 * module (*.new.txt) and, for the same checks at the same moment, the one-request-per-check
 * scripts before them (*.old.txt): the verdicts and report lines must be the same.
 * dead1 is an address nobody has, router a host without the service (connection refused).
 */
const fx = (name: string) => readFileSync(new URL(`../../test/fixtures/verify/scripts/${name}`, import.meta.url), 'utf8');

const lab = (verify: object, listen_port = 80): Inventory =>
  inventorySchema.parse({
    mode: 'ip-transparency',
    service: { protocol: 'http', listen_port, upstream_port: 8080 },
    proxy: { ssh_host: '10.211.161.10', public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0' },
    upstreams: [
      { name: 'dev1', ssh_host: '10.211.161.11', ip: '172.16.0.11', interface: 'priv0' },
      { name: 'dev2', ssh_host: '10.211.161.12', ip: '172.16.0.12', interface: 'priv0' },
      { name: 'dead1', ssh_host: '10.211.161.250', ip: '172.16.0.99', interface: 'priv0' },
      { name: 'router', ssh_host: '10.211.161.251', ip: '172.16.0.254', interface: 'priv0' },
    ],
    verify,
  });
const withProbe = lab({ probe: { ssh_host: '10.211.161.2', expect_source: '192.168.99.1' } });
const noProbe = lab({});
const on = (inv: Inventory, host: string): Check[] => planChecks(inv).filter((c) => c.host === host);
// what differs between two runs of the same check: times, ports, which upstream round robin picked
const mask = (s: string) => s.replace(/\d+ ms|\d+ milliseconds|:\d{4,5}\b|dev\d+|to 172\.16\.0\.\d+|"Hello from [^"]*"/g, '#');
const report = (inv: Inventory, host: string, out: string) => parseCheckOutput(on(inv, host), out, inv).map((r) => `${r.id} ${r.ok ? 'ok' : 'FAIL'} ${mask(r.detail)}`);

describe('check scripts: one curl for all HTTP checks of a host, the same verdicts as one curl per check', () => {
  it('the proxy: every service check in one parallel curl, each ping one process', () => {
    const script = renderCheckScript(on(withProbe, 'proxy'), withProbe);
    const main = script.replace(/\n\*\)[^]*?;;\n/g, '\n'); // without the old-curl fallback
    expect(main.match(/\bcurl\b/g)).toHaveLength(1);
    expect(main).toMatch(/h=\$\(curl -s --no-progress-meter --parallel --parallel-immediate --parallel-max 4 /);
    expect(main).not.toMatch(/base64|mktemp|head /);
    expect(main.match(/^ping .* & p\d+=\$!$/gm)).toHaveLength(4);
  });
  it('the proxy: the same report as before for a served, a refused and a dead upstream', () => {
    expect(report(withProbe, 'proxy', fx('http-proxy.new.txt'))).toEqual(report(withProbe, 'proxy', fx('http-proxy.old.txt')));
    const r = parseCheckOutput(on(withProbe, 'proxy'), fx('http-proxy.new.txt'), withProbe);
    expect(r.find((c) => c.id === 'service-dev1')).toMatchObject({ ok: true, detail: 'HTTP 200' });
    expect(r.find((c) => c.id === 'service-router')).toMatchObject({ ok: false, detail: "no response: curl: (7) Failed to connect to 172.16.0.254 port 8080 after 0 ms: Couldn't connect to server" });
    expect(r.find((c) => c.id === 'service-dead1')).toMatchObject({ ok: false, detail: 'no response: curl: (28) Connection timed out after 2001 milliseconds' });
    expect(r.find((c) => c.id === 'ping-proxy-dead1')).toMatchObject({ ok: false, detail: 'no reply within 2s (twice)' });
  });
  it('the path check: its requests join the batch; only their bodies are kept, in one head and one base64', () => {
    const script = renderCheckScript(on(noProbe, 'proxy'), noProbe, 'feedc0defeedc0de');
    expect(script).toContain(`-o "$ck"/path\\#dev1 http\\://172.16.0.11\\:8080/.well-known/dsrctl-path-check/feedc0defeedc0de`);
    expect(script).toContain(`-o /dev/null http\\://172.16.0.11\\:8080/ `);
    expect(script).toMatch(/head -v -c 600 -- "\$ck"\/path\\#dev1 "\$ck"\/path\\#dev2 "\$ck"\/path\\#dead1 "\$ck"\/path\\#router "\$ck"\/path 2>\/dev\/null \| base64/);
    expect(report(noProbe, 'proxy', fx('http-path.new.txt'))).toEqual(report(noProbe, 'proxy', fx('http-path.old.txt')));
    expect(parseCheckOutput(on(noProbe, 'proxy'), fx('http-path.new.txt'), noProbe).find((c) => c.id === 'path')).toMatchObject({
      ok: true,
      detail: expect.stringMatching(/^192\.168\.99\.10:80 answered GET \/\.well-known\/dsrctl-path-check\/feedc0defeedc0de like upstream dev1 does: 200 "Hello from dev\d+/),
    });
  });
  it('a curl without %{exitcode} (7.68-7.74, or no --parallel at all) prints no batch line: each check runs alone as before', () => {
    // captured with a curl that prints nothing for %{exitcode} and %{errormsg}
    const out = fx('http-path-curl7.74.txt');
    expect(out).not.toMatch(/^@@http/m);
    // an address nobody has fails either way: a timeout, or no ARP answer within it
    const dead = /^service-dead1 FAIL no response: curl: \((7|28)\) /;
    const same = (lines: string[]) => lines.map((l) => (dead.test(l) ? 'service-dead1 FAIL' : l));
    expect(same(report(noProbe, 'proxy', out))).toEqual(same(report(noProbe, 'proxy', fx('http-path.old.txt'))));
  });
  it("the probe: its requests in order in one curl, -f as before; the same report (the client's address at every upstream)", () => {
    const script = renderCheckScript(on(withProbe, 'probe'), withProbe);
    // a connection per request, as one curl each had: a TCP proxy hands a connection to one upstream
    expect(script).toMatch(/h=\$\(curl -s --no-progress-meter -f -H 'Connection: close' --max-time 2 -w '%\{stdout\}@@http %\{exitcode\} %\{http_code\} probe-http#0 %\{errormsg\}\\n' -o "\$ck"\/probe-http\\#0 /);
    expect(script).not.toContain('--parallel');
    expect(report(withProbe, 'probe', fx('http-probe.new.txt'))).toEqual(report(withProbe, 'probe', fx('http-probe.old.txt')));
    expect(parseCheckOutput(on(withProbe, 'probe'), fx('http-probe.new.txt'), withProbe)[0]).toMatchObject({ ok: true, detail: expect.stringMatching(/^Hello from dev\d+\. You connected from 192\.168\.99\.1:\d+ to/) });
    const refused = lab({ probe: { ssh_host: '10.211.161.2', expect_source: '192.168.99.1' } }, 81);
    expect(report(refused, 'probe', fx('http-probe-refused.new.txt'))).toEqual(report(refused, 'probe', fx('http-probe-refused.old.txt')));
    expect(parseCheckOutput(on(refused, 'probe'), fx('http-probe-refused.new.txt'), refused)[0]).toMatchObject({ ok: false, detail: expect.stringMatching(/^4 of 4 responses did not come from 192\.168\.99\.1: curl: \(7\) Failed to connect to 192\.168\.99\.10 port 81/) });
  });
});

describe('check scripts of DNS and TCP services: each tool one process, their outputs in one head and one base64', () => {
  const dsr = inventorySchema.parse({
    mode: 'dsr-router-nat',
    service: { protocol: 'udp', listen_port: 53, upstream_port: 53 },
    proxy: { ssh_host: '10.211.161.10', public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0' },
    upstreams: withProbe.upstreams,
    verify: { probe: { ssh_host: '10.211.161.2' } },
  });
  const tcp = inventorySchema.parse({ ...noProbe, service: { protocol: 'tcp', listen_port: 8081, upstream_port: 8080 }, verify: {} });
  it('the proxy of a DNS service: dig per upstream into a file, the health checker read without a process per field; the same report', () => {
    const script = renderCheckScript(on(dsr, 'proxy'), dsr);
    expect(script).toContain(`dig +tries=1 +time=2 +noall +comments +answer -p 53 \\@172.16.0.11 . SOA >"$ck"/service-dev1 2>&1 &`);
    expect(script.match(/base64/g)).toHaveLength(2); // the dig outputs, the checker's state
    expect(report(dsr, 'proxy', fx('dns-proxy.new.txt'))).toEqual(report(dsr, 'proxy', fx('dns-proxy.old.txt')));
    const r = parseCheckOutput(on(dsr, 'proxy'), fx('dns-proxy.new.txt'), dsr);
    expect(r.find((c) => c.id === 'service-dev1')).toMatchObject({ ok: true, detail: 'REFUSED (the server responded)' });
    expect(r.find((c) => c.id === 'service-dead1')).toMatchObject({ ok: false, detail: 'no response: timed out' });
    expect(r.find((c) => c.id === 'service-router')).toMatchObject({ ok: false, detail: 'no response: connection refused (ICMP port unreachable: nothing listens)' });
    expect(r.find((c) => c.id === 'health-checker')).toMatchObject({ ok: true, detail: expect.stringMatching(/^running \(pid \d+\); all 4 upstreams in rotation$/) });
  });
  it("the probe's DNS queries in order, each into a file; the same report", () => {
    expect(report(dsr, 'probe', fx('dns-probe.new.txt'))).toEqual(report(dsr, 'probe', fx('dns-probe.old.txt')));
    expect(parseCheckOutput(on(dsr, 'probe'), fx('dns-probe.new.txt'), dsr)[0]).toMatchObject({ ok: true, detail: '4 of 4 answered: REFUSED | REFUSED | REFUSED | REFUSED' });
  });
  it("a TCP path check: the upstreams' and the public address's banners at once (they were one after the other); the same report", () => {
    expect(renderCheckScript(on(tcp, 'proxy'), tcp)).toContain(`curl -sS --connect-timeout 2 --max-time 3 telnet\\://172.16.0.11\\:8080 </dev/null 2>&1 | head -c 300 >"$ck"/path\\#dev1 &`);
    expect(report(tcp, 'proxy', fx('tcp-path.new.txt'))).toEqual(report(tcp, 'proxy', fx('tcp-path.old.txt')));
    expect(parseCheckOutput(on(tcp, 'proxy'), fx('tcp-path.new.txt'), tcp).find((c) => c.id === 'path')).toMatchObject({ ok: true, unproven: true });
  });
});

describe('reading a check script', () => {
  it("a probe request's text is what `curl -sS -f ... 2>&1 | head -c 300 | tr '\\n' ' '` printed (captured: an HTTP 503, a body cut by the timeout)", () => {
    expect(probeHttpText({ exit: 22, code: '503', error: 'The requested URL returned error: 503' })).toBe('curl: (22) The requested URL returned error: 503');
    // curl wrote its error before the start of the body it still buffered
    expect(probeHttpText({ exit: 28, code: '200', error: 'Operation timed out after 2001 milliseconds with 4 out of 100 bytes received' }, Buffer.from('half'))).toBe(
      'curl: (28) Operation timed out after 2001 milliseconds with 4 out of 100 bytes received half',
    );
    expect(probeHttpText({ exit: 0, code: '200', error: '' }, Buffer.from('a\nb\n'.padEnd(400, 'x')))).toHaveLength(300);
  });
  it("head's files: one per header, a file head could not open has none; content cannot fake a header without the directory's random name", () => {
    const text = '==> /tmp/tmp.AbC/path#dev1 <==\nbody one\n==> /tmp/x/path <==\nstill one\n\n==> /tmp/tmp.AbC/path <==\nvia';
    const files = splitHeads(Buffer.from(text));
    expect([...files.keys()]).toEqual(['path#dev1', 'path']);
    expect(files.get('path#dev1')!.toString()).toBe('body one\n==> /tmp/x/path <==\nstill one\n');
    expect(files.get('path')!.toString()).toBe('via');
  });
  it('blocks end at @@end; lines around them keep their meaning', () => {
    const b64 = Buffer.from('1 x\nstate line\n').toString('base64');
    const out = parseScriptOutput(`@@val health-checker#pid 1 4242\n@@raw64 health-checker\n${b64.slice(0, 8)}\n${b64.slice(8)}\n@@end\n@@check ping-x ok reply\n`);
    expect(out.raw.get('health-checker#pid')).toBe('1 4242');
    expect(out.raw.get('health-checker')).toBe('1 x\nstate line\n');
    expect(out.checks.get('ping-x')).toEqual({ ok: true, detail: 'reply' });
  });
});
