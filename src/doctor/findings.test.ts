/**
 * doctor's findings from REAL lab output (test/fixtures/doctor/<case>/, recorded by generate.mjs):
 *   ipt-fresh    ip-transparency lab as `lab.sh up` leaves it (nothing applied)
 *   ipt-applied  the same after `dsrctl apply --yes`
 *   ipt-broken   applied, then broken by hand: nginx restarted with CAP_NET_RAW/CAP_NET_ADMIN cut from
 *                its bounding set (setpriv) and two curls (-> the guide's setsockopt error line),
 *                proxy priv0 rp_filter=1 and an iptables-legacy rule, dev2 a 192.168.99.0/24 route via
 *                the router, dev3 an address in 192.168.99.0/24, dev4 all.rp_filter=1
 *   rnat-fresh   dsr-router-nat lab, nothing applied
 *   rnat-demux   dsr-router-nat applied, then udp_early_demux=1 on the proxy
 *   ipt-keep     (proxy only) ip-transparency applied with nginx_user: keep: Debian's `user www-data;`
 *   ipt-keep-capbnd-cut  (proxy only) the same, nginx then restarted under `setpriv --bounding-set -net_raw`:
 *                every worker exits at start (capset() failed), nginx gives up respawning them
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import YAML from 'yaml';
import { inventorySchema, type Inventory } from '../inventory/schema.js';
import { parseFacts } from '../facts/parse.js';
import { parseIptablesSave } from '../facts/parsers/iptables-save.js';
import { buildDoctorScript, doctorRequest, parseDoctorOutput, pingTargets, withPingLabels } from './collect.js';
import { CAP_NET_ADMIN, CAP_NET_RAW, decodeCaps, diagnose, overlaps, versionAtLeast, type HostEvidence } from './findings.js';
import { formatFindings, summaryLine } from './report.js';
import type { Finding } from './types.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/doctor/', import.meta.url));

function loadCase(name: string): { inv: Inventory; hosts: HostEvidence[] } {
  const dir = join(FIXTURES, name);
  const inv = inventorySchema.parse(YAML.parse(readFileSync(join(dir, 'inventory.yaml'), 'utf8')));
  const hosts: HostEvidence[] = [
    { name: 'proxy', role: 'proxy' as const },
    ...inv.upstreams.map((u) => ({ name: u.name, role: 'upstream' as const, upstream: u })),
  ].map((h) => {
    if (!existsSync(join(dir, `${h.name}.facts.txt`))) return { ...h, error: 'no fixture' };
    const facts = parseFacts(readFileSync(join(dir, `${h.name}.facts.txt`), 'utf8'));
    const doctor = withPingLabels(parseDoctorOutput(readFileSync(join(dir, `${h.name}.doctor.txt`), 'utf8')), doctorRequest(inv, h.role, facts));
    return { ...h, facts, doctor };
  });
  return { inv, hosts };
}

function run(name: string): Finding[] {
  const { inv, hosts } = loadCase(name);
  return diagnose(inv, hosts);
}

const find = (fs: Finding[], host: string, id: string) => {
  const f = fs.find((x) => x.host === host && x.id === id);
  if (!f) throw new Error(`no finding ${id} on ${host}: ${fs.map((x) => `${x.host}/${x.id}`).join(', ')}`);
  return f;
};
const problems = (fs: Finding[]) => fs.filter((f) => f.severity === 'error' || f.severity === 'warn').map((f) => `${f.host} ${f.severity} ${f.id}`);

describe('parseDoctorOutput (real lab output)', () => {
  it('reads the proxy: workers, rp_filter, sysctls, iptables backends, error log, pings', () => {
    const d = parseDoctorOutput(readFileSync(join(FIXTURES, 'ipt-fresh/proxy.doctor.txt'), 'utf8'));
    expect(d.sysctl).toEqual({ ip_forward: '0', udp_early_demux: '1' });
    expect(d.rpFilter).toMatchObject({ all: 0, default: 0, lo: 0, priv0: 0, pub0: 0 });
    expect(d.iptables.legacy).toMatchObject({ available: true, rc: 0, rules: [] });
    expect(d.nginx!.master).toMatchObject({ uids: [0, 0, 0, 0], user: 'root', cmd: 'nginx: master process nginx' });
    expect(d.nginx!.workers.length).toBeGreaterThan(0);
    for (const w of d.nginx!.workers) expect(w).toMatchObject({ uids: [33, 33, 33, 33], user: 'www-data', capEff: '0000000000000000', cmd: 'nginx: worker process' });
    expect(d.nginx!.errorLogs).toEqual([{ path: '/var/log/nginx/error.log', status: 'ok', lines: [] }]);
    // in the order the parallel pings answered
    expect(d.pings.map((p) => [p.address, p.ok]).sort()).toEqual([
      ['172.16.0.11', true],
      ['172.16.0.12', true],
      ['172.16.0.13', true],
      ['172.16.0.14', true],
      ['192.168.99.1', true],
    ]);
  });

  it('reads the guide\'s error line and both iptables backends', () => {
    const d = parseDoctorOutput(readFileSync(join(FIXTURES, 'ipt-broken/proxy.doctor.txt'), 'utf8'));
    expect(d.nginx!.errorLogs[0]!.lines).toHaveLength(2);
    expect(d.nginx!.errorLogs[0]!.lines[0]).toMatch(/setsockopt\(IP_TRANSPARENT\) failed \(1: Operation not permitted\) while connecting to upstream, client: 192\.168\.99\.1/);
    expect(d.iptables.legacy.rules).toEqual(['filter: -A INPUT -s 10.9.9.9/32 -j DROP']);
    expect(d.iptables.nft.rules).toHaveLength(4);
    expect(d.iptables.nft.warnings).toEqual(['# Warning: iptables-legacy tables present, use iptables-legacy-save to see them']);
    expect(d.nginx!.transparentLines).toEqual(['/etc/nginx/conf.d/app.conf:15:        proxy_bind $remote_addr transparent;']);
  });

  it('an upstream has no nginx or ping part; truncated output is refused', () => {
    const d = parseDoctorOutput(readFileSync(join(FIXTURES, 'ipt-fresh/dev1.doctor.txt'), 'utf8'));
    expect(d.nginx).toBeUndefined();
    expect(d.pings).toEqual([]);
    const text = readFileSync(join(FIXTURES, 'ipt-fresh/dev1.doctor.txt'), 'utf8');
    expect(() => parseDoctorOutput(text.slice(0, text.indexOf('@@dsrctl-facts:begin done')))).toThrow(/done.*missing/);
    expect(() => parseDoctorOutput('hello\n')).toThrow(/doctor header/);
  });
});

describe('buildDoctorScript', () => {
  it('quotes what reaches the shell and refuses bad values', () => {
    const s = buildDoctorScript({ role: 'proxy', masterPid: 42, nginxConf: "/etc/ngi nx/it's.conf", pingTargets: [{ address: '10.0.0.1', what: 'x' }] });
    expect(s).toContain(`grep -RnE '^[^#]*proxy_bind[^;]*transparent' '/etc/ngi nx'`);
    expect(s).toContain('/proc/42/status');
    expect(s).toContain('ping -n -c 1 -W 1 10.0.0.1');
    expect(() => buildDoctorScript({ role: 'proxy', pingTargets: [{ address: '1.2.3.4; rm -rf /', what: '' }] })).toThrow(/invalid IPv4/);
    expect(() => buildDoctorScript({ role: 'proxy', masterPid: -1 })).toThrow(/PID/);
    expect(buildDoctorScript({ role: 'upstream' })).not.toMatch(/ping|workers|error-log/);
  });

  it('the proxy pings the upstreams, the probe source and single-address client networks', () => {
    const inv = loadCase('ipt-fresh').inv;
    expect(pingTargets({ ...inv, service: { ...inv.service, client_networks: ['203.0.113.0/24', '198.51.100.7', '192.168.99.1/32'] } }).map((t) => t.address)).toEqual([
      '172.16.0.11',
      '172.16.0.12',
      '172.16.0.13',
      '172.16.0.14',
      '192.168.99.1',
      '198.51.100.7',
    ]);
  });
});

describe('helpers', () => {
  it('decodes CapEff', () => {
    expect(decodeCaps('0000000000003000')).toEqual(new Set([CAP_NET_ADMIN, CAP_NET_RAW]));
    expect(decodeCaps('000001fffeffcfff').has(CAP_NET_RAW)).toBe(false);
    expect(decodeCaps('000001fffeffffff').has(CAP_NET_RAW)).toBe(true);
    expect(decodeCaps('0000000000000000').size).toBe(0);
  });
  it('compares versions and networks', () => {
    expect(versionAtLeast('1.22.1', '1.13.8')).toBe(true);
    expect(versionAtLeast('1.13.8', '1.13.8')).toBe(true);
    expect(versionAtLeast('1.13.7', '1.13.8')).toBe(false);
    expect(versionAtLeast('1.9.15', '1.13.8')).toBe(false);
    expect(overlaps('192.168.99.1/32', '192.168.99.0/24')).toBe(true);
    expect(overlaps('192.168.0.0/16', '192.168.99.0/24')).toBe(true);
    expect(overlaps('172.16.0.0/24', '192.168.99.0/24')).toBe(false);
  });
});

describe('diagnose: ip-transparency', () => {
  it('fresh lab: the upstreams\' default route is not via the proxy, the workers cannot bind transparently', () => {
    const fs = run('ipt-fresh');
    expect(problems(fs)).toEqual([
      'proxy error nginx-workers',
      'proxy error proxy-policy-routing',
      'dev1 error upstream-default-route',
      'dev2 error upstream-default-route',
      'dev3 error upstream-default-route',
      'dev4 error upstream-default-route',
    ]);
    const r = find(fs, 'dev1', 'upstream-default-route');
    expect(r.title).toBe('default route goes via 172.16.0.254, not via the proxy (172.16.0.1): replies to clients bypass the proxy (ip-transparency needs every egress packet routed through it)');
    expect(r.evidence).toContain('  default via 172.16.0.254 dev priv0');
    expect(r.fix).toMatch(/^ip route replace default via 172\.16\.0\.1 dev priv0/);
    const w = find(fs, 'proxy', 'nginx-workers');
    expect(w.title).toMatch(/^nginx workers run as www-data \(uid 33\) without CAP_NET_RAW/);
    expect(w.fix).toMatch(/proxy_bind \$remote_addr transparent;.*1\.22\.1 its workers then keep CAP_NET_RAW/);
    expect(find(fs, 'proxy', 'proxy-policy-routing').fix).toContain('ip rule add fwmark 1 lookup 100; ip route add local 0.0.0.0/0 dev lo table 100');
    expect(find(fs, 'proxy', 'ip-forward').severity).toBe('ok'); // not needed without masquerade
    expect(fs.some((f) => f.id === 'udp-early-demux' || f.id === 'nat-backend')).toBe(false);
  });

  it('fresh lab with masquerade: ip_forward off is an error', () => {
    const { inv, hosts } = loadCase('ipt-fresh');
    const fs = diagnose({ ...inv, proxy: { ...inv.proxy, masquerade: true } }, hosts);
    expect(find(fs, 'proxy', 'ip-forward')).toMatchObject({ severity: 'error', evidence: ['net.ipv4.ip_forward = 0'] });
    expect(find(fs, 'proxy', 'ip-forward').fix).toMatch(/^sysctl -w net\.ipv4\.ip_forward=1/);
  });

  it('applied lab: nothing wrong; root workers are reported as not needed with nginx 1.22', () => {
    const { inv, hosts } = loadCase('ipt-applied');
    // the fixture was recorded when dsrctl still turned forwarding on for Method 1; an apply now leaves it off
    const asOld = diagnose(inv, hosts);
    expect(problems(asOld)).toEqual(['proxy warn ip-forward']);
    expect(find(asOld, 'proxy', 'ip-forward').title).toBe(
      "IP forwarding is on, though ip-transparency without masquerade does not need it (replies are delivered to nginx locally): anyone on the public side who routes priv0's network via the proxy reaches the upstreams directly",
    );
    expect(find(asOld, 'proxy', 'ip-forward').fix).toMatch(/^sysctl -w net\.ipv4\.ip_forward=0/);
    hosts[0]!.doctor!.sysctl.ip_forward = '0';
    const fs = diagnose(inv, hosts);
    expect(problems(fs)).toEqual([]);
    expect(find(fs, 'proxy', 'ip-forward').title).toBe('IP forwarding is off, as ip-transparency without masquerade wants (replies are delivered to nginx locally)');
    expect(find(fs, 'proxy', 'nginx-workers').title).toBe('nginx workers run as root: `user root` works but is not needed with nginx 1.22.1 (>= 1.13.8 keeps CAP_NET_RAW for `transparent`)');
    expect(find(fs, 'dev3', 'upstream-default-route').title).toBe('default route via the proxy (default via 172.16.0.1 dev priv0)');
    expect(find(fs, 'proxy', 'ping-upstreams').severity).toBe('ok');
    expect(find(fs, 'proxy', 'ping-clients').title).toBe('the proxy pings the client address 192.168.99.1');
    expect(find(fs, 'proxy', 'proxy-policy-routing').severity).toBe('ok');
    expect(find(fs, 'proxy', 'dsrctl-state').title).toMatch(/^dsrctl run \S+ is the last one applied here$/);
  });

  it('broken lab: each fault is found, with its evidence and fix', () => {
    const fs = run('ipt-broken');
    expect(problems(fs)).toEqual([
      'proxy error nginx-workers',
      'proxy error nginx-error-log',
      'proxy warn rp-filter',
      'proxy warn ip-forward',
      'proxy warn iptables-mixed',
      'dev2 error upstream-client-route',
      'dev3 error overlap',
      'dev4 warn rp-filter',
    ]);
    expect(find(fs, 'proxy', 'nginx-workers').title).toMatch(/^nginx workers run as root but without CAP_NET_RAW or CAP_NET_ADMIN/);
    const log = find(fs, 'proxy', 'nginx-error-log');
    expect(log.title).toBe('2 `setsockopt(IP_TRANSPARENT) failed` line(s) in the last 200 lines of /var/log/nginx/error.log');
    expect(log.evidence[0]).toMatch(/^\/var\/log\/nginx\/error\.log: .*\[alert\].*setsockopt\(IP_TRANSPARENT\) failed \(1: Operation not permitted\)/);
    const rp = find(fs, 'proxy', 'rp-filter');
    expect(rp.evidence).toEqual(['net.ipv4.conf.all.rp_filter = 0', 'net.ipv4.conf.pub0.rp_filter = 0', 'net.ipv4.conf.priv0.rp_filter = 1']);
    expect(rp.fix).toBe('sysctl -w net.ipv4.conf.priv0.rp_filter=0 (or =2, loose); the guide disables it everywhere: for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f ; done');
    expect(find(fs, 'dev4', 'rp-filter').evidence).toContain('net.ipv4.conf.priv0.rp_filter = 0 (effective 1: max of all and priv0)');
    expect(find(fs, 'dev4', 'rp-filter').fix).toMatch(/^sysctl -w net\.ipv4\.conf\.all\.rp_filter=0/);
    const mixed = find(fs, 'proxy', 'iptables-mixed');
    expect(mixed.evidence).toContain('legacy filter: -A INPUT -s 10.9.9.9/32 -j DROP');
    const route = find(fs, 'dev2', 'upstream-client-route');
    expect(route.title).toBe('more specific route to the clients bypass the proxy: 192.168.99.0/24 via 172.16.0.254 dev priv0');
    expect(route.fix).toMatch(/^ip route del 192\.168\.99\.0\/24 dev priv0/);
    const ov = find(fs, 'dev3', 'overlap');
    expect(ov.title).toMatch(/^client network 192\.168\.99\.1\/32 overlaps 192\.168\.99\.0\/24 on priv0/);
    expect(ov.evidence).toContain('dev3 priv0: 192.168.99.77/24 -> connected 192.168.99.0/24');
  });

  it('a stock proxy (Debian\'s default site on :80): a port-conflict error with file:line and the fix', () => {
    const { inv, hosts } = loadCase('ipt-fresh');
    const stock = parseFacts(readFileSync(fileURLToPath(new URL('../../test/fixtures/facts/stock-proxy-default-site.txt', import.meta.url)), 'utf8'));
    const proxy = hosts.find((h) => h.name === 'proxy')!;
    proxy.facts = { ...proxy.facts!, nginxConfig: stock.nginxConfig };
    const fs = diagnose({ ...inv, proxy: { ...inv.proxy, managed_config: '/etc/nginx/conf.d/dsrctl.conf' } }, hosts);
    const c = find(fs, 'proxy', 'port-conflict');
    expect(c.severity).toBe('error');
    expect(c.title).toBe('port 80/tcp on 192.168.99.10 is already served by another nginx server, which would answer clients instead of the upstreams');
    expect(c.evidence[0]).toMatch(/^\/etc\/nginx\/sites-enabled\/default:22 {2}listen 80 default_server; {2}\(http, server_name _\): default_server:/);
    expect(c.fix).toContain('disable /etc/nginx/sites-enabled/default (rm /etc/nginx/sites-enabled/default; it links to /etc/nginx/sites-available/default)');
    expect(c.fix).toContain('set proxy.take_over_port: true');
  });

  it('the last run rolled back is not called applied', () => {
    const { inv, hosts } = loadCase('ipt-applied');
    for (const h of hosts) h.doctor = { ...h.doctor!, lastRunStatus: 'rolled-back' };
    const s = find(diagnose(inv, hosts), 'proxy', 'dsrctl-state');
    expect(s.title).toMatch(/^dsrctl run \S+, the last one here, was rolled back: nothing dsrctl applied is in place$/);
    expect(s.evidence[0]).toMatch(/^\/var\/lib\/dsrctl\/runs\/\S+\/status: rolled-back$/);
  });

  it('an unreachable host is an error finding of its own', () => {
    const { inv, hosts } = loadCase('ipt-applied');
    const fs = diagnose(inv, [hosts[0]!, { name: 'dev1', role: 'upstream', upstream: inv.upstreams[0], error: 'dev1 (root@10.211.6.11:22): connection refused' }]);
    expect(find(fs, 'dev1', 'reach')).toMatchObject({ severity: 'error', evidence: ['dev1 (root@10.211.6.11:22): connection refused'] });
  });

  it('client networks from the inventory are checked against the upstreams\' subnets and the proxy\'s private side', () => {
    const { inv, hosts } = loadCase('ipt-applied');
    const fs = diagnose({ ...inv, service: { ...inv.service, client_networks: ['10.211.6.0/24'] } }, hosts);
    // the lab's management network is connected to every upstream
    expect(find(fs, 'dev1', 'overlap')).toMatchObject({ severity: 'error' });
    expect(find(fs, 'proxy', 'overlap').severity).toBe('ok'); // the proxy's private side is 172.16.0.0/24
  });
});

describe('diagnose: unprivileged workers (proxy.nginx_user: keep)', () => {
  it('workers as www-data holding CAP_NET_RAW only: ok, the evidence shows uid and CapEff', () => {
    const fs = run('ipt-keep');
    const w = find(fs, 'proxy', 'nginx-workers');
    expect(w.severity).toBe('ok');
    expect(w.title).toBe('nginx workers run as www-data (uid 33) and hold CAP_NET_RAW: `transparent` binds work, `user root` is not needed');
    expect(w.evidence.filter((e) => e.startsWith('worker '))[0]).toMatch(
      /^worker pid \d+ "nginx: worker process": uid 33 \(www-data\), CapEff 0000000000002000 = CAP_NET_RAW only, CapBnd 000001fffeffffff$/,
    );
    expect(find(fs, 'proxy', 'nginx-error-log').severity).not.toBe('error');
  });

  it('CAP_NET_RAW cut from the bounding set: no workers left, and doctor says why and what to do', () => {
    const fs = run('ipt-keep-capbnd-cut');
    const w = find(fs, 'proxy', 'nginx-workers');
    expect(w.severity).toBe('error');
    expect(w.title).toBe(
      "nginx has no worker processes: unprivileged workers exit at start because CAP_NET_RAW was cut from nginx's capability bounding set (CapBnd 000001fffeffdfff): with `transparent` in the config each worker must keep CAP_NET_RAW (nginx >= 1.13.8), its capset() fails, and nginx gives up respawning it",
    );
    expect(w.evidence).toContainEqual(expect.stringMatching(/^master pid \d+ "nginx: master process nginx": uid 0 \(root\), CapEff 000001fffeffdfff = CAP_NET_ADMIN among others, CapBnd 000001fffeffdfff \(no CAP_NET_RAW\)$/));
    expect(w.evidence).toContainEqual(expect.stringMatching(/^\/var\/log\/nginx\/error\.log: .*\[emerg\].*capset\(\) failed \(1: Operation not permitted\)$/));
    expect(w.fix).toMatch(/^give nginx CAP_NET_RAW back \(systemd: add it to the unit's CapabilityBoundingSet=.*then restart nginx.*; or run the workers as root \(`user root;`, proxy\.nginx_user: root\): CAP_NET_ADMIN is left/);
  });

  it('workers alive as www-data without CAP_NET_RAW under a cut bounding set: the cut is named', () => {
    const { inv, hosts } = loadCase('ipt-keep');
    const d = hosts[0]!.doctor!.nginx!;
    d.master = { ...d.master!, capBnd: '000001fffeffcfff' };
    d.workers = d.workers.map((w) => ({ ...w, capEff: '0000000000000000', capBnd: '000001fffeffcfff' }));
    const w = find(diagnose(inv, hosts), 'proxy', 'nginx-workers');
    expect(w.severity).toBe('error');
    expect(w.title).toMatch(/^nginx workers run as www-data \(uid 33\) without CAP_NET_RAW, and CAP_NET_RAW was cut from nginx's capability bounding set \(CapBnd 000001fffeffcfff\)/);
    expect(w.fix).not.toMatch(/CAP_NET_ADMIN is left/);
  });
});

describe('diagnose: dsr-router-nat', () => {
  it('fresh lab: ip_forward off, early demux on, default routes; the nft backend is available', () => {
    const fs = run('rnat-fresh');
    expect(problems(fs)).toEqual([
      'proxy error nginx-workers',
      'proxy error ip-forward',
      'proxy warn udp-early-demux',
      'dev1 error upstream-default-route',
      'dev2 error upstream-default-route',
      'dev3 error upstream-default-route',
      'dev4 error upstream-default-route',
    ]);
    const nat = find(fs, 'proxy', 'nat-backend');
    expect(nat.severity).toBe('ok');
    expect(nat.title).toMatch(/nftables netdev egress/);
    expect(nat.evidence).toContain('act_nat: absent');
    expect(find(fs, 'proxy', 'udp-early-demux').fix).toMatch(/^sysctl -w net\.ipv4\.udp_early_demux=0/);
  });

  it('applied, then udp_early_demux=1 by hand: the only problem left (with the forward filter in place)', () => {
    const { inv, hosts } = loadCase('rnat-demux');
    // recorded before dsrctl limited forwarding: no DSRCTL-FORWARD chain there
    const asOld = diagnose(inv, hosts);
    expect(problems(asOld)).toEqual(['proxy warn forward-filter', 'proxy warn udp-early-demux']);
    expect(find(asOld, 'proxy', 'forward-filter').evidence).toEqual(['iptables -t filter: no jump to DSRCTL-FORWARD in FORWARD']);
    // the filter table of the lab's proxy after a router-NAT apply (real iptables-save)
    const filter = readFileSync(new URL('../../test/fixtures/operations/forward-filter/rnat-applied.iptables-save', import.meta.url), 'utf8');
    Object.assign(hosts[0]!.facts!.iptables.tables, parseIptablesSave(filter));
    const fs = diagnose(inv, hosts);
    expect(problems(fs)).toEqual(['proxy warn udp-early-demux']);
    expect(find(fs, 'proxy', 'forward-filter')).toMatchObject({ severity: 'ok', title: 'forwarding between priv0 and pub0 is limited to what dsr-router-nat needs (DSRCTL-FORWARD)' });
    expect(find(fs, 'proxy', 'forward-filter').evidence[0]).toBe('iptables -t filter: FORWARD rule 1 jumps to DSRCTL-FORWARD');
    expect(find(fs, 'proxy', 'udp-early-demux').evidence).toEqual(['net.ipv4.udp_early_demux = 1']);
  });

  it('nat.backend tc on a kernel without act_nat is an error with the reason', () => {
    const { inv, hosts } = loadCase('rnat-demux');
    const fs = diagnose({ ...inv, nat: { backend: 'tc' } }, hosts);
    expect(find(fs, 'proxy', 'nat-backend')).toMatchObject({ severity: 'error', title: expect.stringMatching(/no act_nat/) });
  });

  it('origin NAT: no default-route error, the NAT backend is checked on each upstream', () => {
    const { inv, hosts } = loadCase('rnat-fresh');
    const fs = diagnose({ ...inv, mode: 'dsr-origin-nat' }, hosts);
    expect(find(fs, 'dev1', 'upstream-default-route').severity).toBe('ok');
    expect(find(fs, 'dev1', 'nat-backend').severity).toBe('ok');
    expect(fs.some((f) => f.host === 'proxy' && (f.id === 'nat-backend' || f.id === 'udp-early-demux'))).toBe(false);
  });
});

describe('report', () => {
  it('groups by host, worst first, evidence indented, fix after "fix:"', () => {
    const fs = run('ipt-broken');
    const text = formatFindings(fs, ['proxy', 'dev1', 'dev2', 'dev3', 'dev4']);
    const lines = text.split('\n');
    expect(lines[0]).toBe('proxy: 2 error(s), 3 warning(s)');
    expect(lines[1]).toMatch(/^ {2}ERROR nginx workers run as root but without CAP_NET_RAW/);
    expect(text).toContain('\n  WARN  strict reverse path filtering (rp_filter=1) on priv0');
    expect(text).toContain('\n          net.ipv4.conf.priv0.rp_filter = 1\n');
    expect(text).toContain('\n          fix: sysctl -w net.ipv4.conf.priv0.rp_filter=0');
    expect(lines.at(-1)).toBe(summaryLine(fs));
    expect(summaryLine(fs)).toBe('doctor: 4 errors, 4 warnings, 21 ok on 5 hosts');
    // ok findings keep their evidence for -v
    expect(text).not.toContain('ping -c 1 172.16.0.11');
    expect(formatFindings(fs, ['proxy'], { verbose: true })).toContain('ping -c 1 172.16.0.11 (upstream dev1): reply');
    // -q: only warnings and errors
    expect(formatFindings(fs, ['proxy', 'dev1'], { quiet: true })).not.toMatch(/^ {2}ok/m);
  });
});
