/**
 * End to end: `dsrctl doctor` against the lab (ip-transparency), as a user runs it (dist/cli.js, so
 * `npm run build` first). The tests run IN ORDER on one lab and build on each other.
 *
 *   npm run build && DSR_E2E_PREFIX=doc DSR_E2E_OCTET=6 npx vitest run --project e2e test/e2e/doctor.test.ts
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { HOSTS, UPSTREAMS, LAB_INVENTORY, labUp, labDown, onHost, dsrctl, dsrctlLive, settledSnapshotAll, snapshotAll, curlSources, type CliResult } from './harness.js';
import { show, expectJson } from './expect.js';

interface Finding {
  id: string;
  host: string;
  severity: string;
  title: string;
  evidence: string[];
  fix?: string;
}

async function doctorJson(what: string): Promise<{ r: CliResult; findings: Finding[] }> {
  const r = await dsrctl(['doctor', '-i', LAB_INVENTORY, '--json']);
  const j = expectJson(r, what);
  expect(j.command).toBe('doctor');
  expect(j.exitCode).toBe(r.code);
  return { r, findings: (j.hosts as { findings: Finding[] }[]).flatMap((h) => h.findings) };
}

const get = (fs: Finding[], host: string, id: string) => fs.find((f) => f.host === host && f.id === id);

/** What doctor must never leave behind: dsrctl state on the hosts (lock, journal, runs). */
function stateDirs(): Record<string, string> {
  return Object.fromEntries(HOSTS.map((h) => [h, onHost(h, 'ls -la /var/lib/dsrctl 2>&1; ls /var/lib/dsrctl/runs 2>&1').stdout]));
}

beforeAll(() => {
  labDown();
  labUp();
});

afterAll(() => {
  labDown();
});

describe('dsrctl doctor (read-only troubleshooting)', () => {
  it('fresh lab: exit 1, the upstreams\' default route not via the proxy is a finding with its fix; nothing changes on any host', async () => {
    const before = await settledSnapshotAll();
    const dirs = stateDirs();

    const { r, findings } = await doctorJson('fresh lab');
    expect(r.code, show(r, 'doctor on a fresh lab')).toBe(1);
    for (const u of UPSTREAMS) {
      const f = get(findings, u, 'upstream-default-route');
      expect(f, show(r, `${u}: upstream-default-route finding`)).toBeDefined();
      expect(f!.severity).toBe('error');
      expect(f!.title).toMatch(/not via the proxy \(172\.16\.0\.1\)/);
      expect(f!.evidence.join('\n')).toMatch(/default via 172\.16\.0\.254 dev priv0/);
      expect(f!.fix).toMatch(/^ip route replace default via 172\.16\.0\.1 dev priv0/);
    }
    expect(get(findings, 'proxy', 'ping-upstreams')?.severity).toBe('ok');

    // the text report, as a person reads it
    const t = await dsrctl(['doctor', '-i', LAB_INVENTORY]);
    expect(t.code, show(t, 'doctor text')).toBe(1);
    expect(t.stdout).toMatch(/^dev1: 1 error\(s\), 0 warning\(s\)$/m);
    expect(t.stdout).toMatch(/^ {2}ERROR default route goes via 172\.16\.0\.254, not via the proxy/m);
    expect(t.stdout).toMatch(/^ {10}fix: ip route replace default via 172\.16\.0\.1 dev priv0/m);
    expect(t.stdout).toMatch(/^doctor: \d+ errors, \d+ warnings?, \d+ ok on 5 hosts/m);

    // read-only: routes, rules, iptables, nft, tc, sysctls, /etc/nginx and dsrctl's state as they were
    expect(snapshotAll()).toEqual(before);
    expect(stateDirs()).toEqual(dirs);
  });

  it('after apply --yes the default-route finding is gone and doctor exits 0', async () => {
    const a = await dsrctl(['apply', '-i', LAB_INVENTORY, '--yes']);
    expect(a.code, show(a, 'apply')).toBe(0);
    const { r, findings } = await doctorJson('applied lab');
    expect(r.code, show(r, 'doctor after apply')).toBe(0);
    for (const u of UPSTREAMS) expect(get(findings, u, 'upstream-default-route')?.severity, u).toBe('ok');
    expect(findings.filter((f) => f.severity === 'error')).toEqual([]);
    // nginx_user: keep (the default here): Debian's www-data workers hold CAP_NET_RAW alone
    expect(get(findings, 'proxy', 'nginx-workers')?.title).toBe('nginx workers run as www-data (uid 33) and hold CAP_NET_RAW: `transparent` binds work, `user root` is not needed');
  });

  it('rp_filter=1 set by hand on the proxy\'s priv0 is found, with the guide\'s fix', async () => {
    expect(onHost('proxy', 'sysctl -qw net.ipv4.conf.priv0.rp_filter=1').code).toBe(0);
    try {
      const before = snapshotAll();
      const { r, findings } = await doctorJson('rp_filter');
      const f = get(findings, 'proxy', 'rp-filter');
      expect(f, show(r, 'rp-filter finding')).toBeDefined();
      expect(f!.severity).toBe('warn');
      expect(f!.title).toMatch(/rp_filter=1\) on priv0/);
      expect(f!.evidence).toContain('net.ipv4.conf.priv0.rp_filter = 1');
      expect(f!.fix).toContain('sysctl -w net.ipv4.conf.priv0.rp_filter=0');
      expect(f!.fix).toContain('for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f ; done');
      expect(r.code, show(r, 'a warning alone does not fail doctor')).toBe(0);
      expect(onHost('proxy', 'cat /proc/sys/net/ipv4/conf/priv0/rp_filter').stdout.trim()).toBe('1'); // doctor did not "fix" it
      expect(snapshotAll()).toEqual(before);
    } finally {
      onHost('proxy', 'sysctl -qw net.ipv4.conf.priv0.rp_filter=0');
    }
  });

  it('--capture 4 while the client sends 4 curls: client (probe), proxy and an upstream in one timeline, in time order', async () => {
    const before = snapshotAll();
    const live = dsrctlLive(['doctor', '-i', LAB_INVENTORY, '--capture', '4']);
    await live.waitFor(/^capturing now on /, 60_000);
    const sources = curlSources(4);
    expect(sources).toEqual(['192.168.99.1', '192.168.99.1', '192.168.99.1', '192.168.99.1']);
    const r = await live.done;
    expect(r.code, show(r, 'doctor --capture')).toBe(0);
    expect(r.stdout).toMatch(/^capturing now on proxy, dev1, dev2, dev3, dev4, probe: send traffic/m);

    const rows = r.stdout
      .split('\n')
      .map((l) => /^ {2}\+(\d+\.\d{6}) {2}(\S+) +(\S+ (?:In|Out)) +(\S+ > \S+) {2}(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ t: Number(m[1]), host: m[2]!, iface: m[3]!, flow: m[4]!, summary: m[5]! }));
    expect(rows.length, show(r, 'timeline rows')).toBeGreaterThan(0);
    for (let i = 1; i < rows.length; i++) expect(rows[i]!.t).toBeGreaterThanOrEqual(rows[i - 1]!.t);
    const hosts = new Set(rows.map((x) => x.host));
    expect(hosts.has('probe') && hosts.has('proxy'), show(r, 'probe and proxy in the timeline')).toBe(true);
    expect(UPSTREAMS.some((u) => hosts.has(u)), show(r, 'an upstream in the timeline')).toBe(true);
    // the client's 4 SYNs leave it, reach the proxy, and the proxy opens each upstream connection from the client's address
    expect(rows.filter((x) => x.host === 'probe' && x.iface === 'pub0 Out' && x.summary === 'Flags [S], length 0')).toHaveLength(4);
    expect(rows.filter((x) => x.host === 'proxy' && x.iface === 'pub0 In' && x.summary === 'Flags [S], length 0')).toHaveLength(4);
    const toUpstream = rows.filter((x) => x.host.startsWith('dev') && x.iface === 'priv0 In' && x.summary === 'Flags [S], length 0');
    expect(toUpstream).toHaveLength(4);
    for (const x of toUpstream) expect(x.flow).toMatch(/^192\.168\.99\.1\.\d+ > 172\.16\.0\.1\d\.8080$/);
    // the first packet is the client's SYN
    expect(rows[0]).toMatchObject({ host: 'probe', iface: 'pub0 Out', summary: 'Flags [S], length 0' });
    expect(r.stdout).toMatch(/^ {2}probe: \d+ packets on pub0$/m);
    expect(snapshotAll()).toEqual(before);
    // no tcpdump left behind
    for (const h of ['proxy', 'dev1', 'client']) expect(onHost(h, 'grep -l -z DSRCTL_CAPTURE= /proc/[0-9]*/environ 2>/dev/null | wc -l').stdout.trim(), h).toBe('0');
  });
});
