import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFacts } from '../facts/parse.js';
import type { FileFact, HostFacts } from '../facts/types.js';
import { inventorySchema, type Inventory } from '../inventory/schema.js';
import { loadPlaybook } from '../playbook/load.js';
import { desiredHosts, planContext } from '../plan/desired.js';
import { planHost } from '../plan/plan-host.js';
import { bootItems, persistFactsFiles } from './plan.js';
import { renderBootRevertUnit, renderPersistUnit } from './units.js';
import { editNetworkFile } from './networkd.js';
import { BOOT_REVERT_UNIT, PERSIST_SCRIPT, PERSIST_UNIT, unitPath, wantsLink } from './paths.js';

const fixture = (name: string): HostFacts => parseFacts(readFileSync(new URL(`../../test/fixtures/facts/${name}.txt`, import.meta.url), 'utf8'));

function inventory(mode: 'ip-transparency' | 'dsr-router-nat' | 'dsr-origin-nat' = 'ip-transparency', over: Record<string, unknown> = {}): Inventory {
  return inventorySchema.parse({
    mode,
    service: { protocol: mode === 'ip-transparency' ? 'http' : 'udp', listen_port: mode === 'ip-transparency' ? 80 : 53, upstream_port: mode === 'ip-transparency' ? 8080 : 53 },
    proxy: { ssh_host: '10.211.0.10', public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0', managed_config: '/etc/nginx/conf.d/dsrctl-does-not-exist.conf' },
    upstreams: [1, 2].map((n) => ({ name: `dev${n}`, ssh_host: `10.211.0.1${n}`, ip: `172.16.0.1${n}`, interface: 'priv0' })),
    ...over,
  });
}

const absent = (path: string): FileFact => ({ path, exists: false, realpath: path, dir: { path: '/etc/systemd/system', uid: 0, gid: 0, mode: '755' } });
const dir = (path: string): FileFact => ({ path, exists: true, type: 'dir', realpath: path, mode: '755', dir: { path: '/etc/systemd/system', uid: 0, gid: 0, mode: '755' } });

/** A real upstream's facts (namespace lab) as a systemd host would show them: systemd, networkd with a Gateway= file, no persistence yet. */
function systemdUpstream(network = '[Match]\nName=priv0\n\n[Network]\nAddress=172.16.0.11/24\nGateway=172.16.0.254\n'): HostFacts {
  const f = fixture('pristine-upstream');
  f.hasSystemd = true;
  for (const p of persistFactsFiles()) f.files[p] = p.endsWith('.wants') ? dir(p) : absent(p);
  const path = '/etc/systemd/network/10-priv0.network';
  f.netmgr = {
    systemdVersion: 252,
    units: { 'systemd-networkd': 'active', NetworkManager: 'inactive', networking: 'inactive' },
    networkd: [{ name: 'priv0', adminState: 'configured', networkFile: path, dropins: [] }],
    files: { [path]: { path, exists: true, type: 'file', content: network, sha256: 'a'.repeat(64), realpath: path } },
  };
  return f;
}

const plan = (inv: Inventory, name: string, facts: HostFacts) => planHost(inv, loadPlaybook(inv.mode), desiredHosts(inv, loadPlaybook(inv.mode)).find((t) => t.name === name)!, facts);

describe('persistence in the plan', () => {
  it('systemd + persist (default): the boot-time revert first, the runtime change, then the restore script, its unit, the networkd edit', () => {
    const p = plan(inventory(), 'dev1', systemdUpstream());
    expect(p.changes.map((c) => c.id)).toEqual([
      `file ${unitPath(BOOT_REVERT_UNIT)}`,
      `symlink ${wantsLink('sysinit.target', BOOT_REVERT_UNIT)}`,
      'ip route default',
      `file ${PERSIST_SCRIPT}`,
      `file ${unitPath(PERSIST_UNIT)}`,
      `symlink ${wantsLink('multi-user.target', PERSIST_UNIT)}`,
      'file /etc/systemd/network/10-priv0.network',
    ]);
    expect(p.bootRevert).toBe(true);
    // every persistence change is a journaled file change with an exact undo
    for (const c of p.changes.filter((c) => c.kind === 'persist')) expect(c.undo.length).toBeGreaterThan(0);
    const script = p.changes[3]!.do.find((s) => 'write' in s) as { write: { content: string } };
    expect(script.write.content).toContain('dsrctl_default_via 172.16.0.1');
    const nd = p.changes[6]!;
    expect(nd.diff).toContain('-Gateway=172.16.0.254');
    expect(nd.diff).toContain('+#dsrctl# Gateway=172.16.0.254');
    expect(nd.undo).toEqual([{ restore: { path: '/etc/systemd/network/10-priv0.network', key: expect.stringMatching(/-%2Fetc%2Fsystemd%2Fnetwork%2F10-priv0.network$/) } }]);
    expect(p.notes).toEqual([
      "persistence: systemd, systemd-networkd: /var/lib/dsrctl/persist.sh restores at boot (dsrctl-persist.service, before nginx.service, again when systemd-networkd.service restarts): default route via 172.16.0.1 (the only default route of table main); an unconfirmed run is reverted at boot (dsrctl-boot-revert.service)",
      'default route: systemd-networkd will no longer install its own (/etc/systemd/network/10-priv0.network: [Network] Gateway=172.16.0.254 commented out), so a networkd restart or DHCP renewal never puts a second default route beside the one via 172.16.0.1',
    ]);
  });

  it('is idempotent: with every file in place the plan of persistence is empty', () => {
    const inv = inventory();
    const f = systemdUpstream();
    const p = plan(inv, 'dev1', f);
    for (const c of p.changes.filter((c) => c.kind === 'persist')) {
      const path = c.id.replace(/^(file|symlink) /, '');
      const w = c.do.find((s) => 'write' in s) as { write: { content: string } } | undefined;
      if (w && path.startsWith('/etc/systemd/network/')) f.netmgr!.files[path]!.content = w.write.content;
      else if (w) f.files[path] = { ...absent(path), exists: true, type: 'file', content: w.write.content, sha256: 'b'.repeat(64) };
      else f.files[path] = { ...absent(path), exists: true, type: 'file', link: true, realpath: `/etc/systemd/system/${path.split('/').pop()}` };
    }
    expect(plan(inv, 'dev1', f).changes.filter((c) => c.kind === 'persist')).toEqual([]);
  });

  it('persist: false on a systemd host: no file, and the plan says what a reboot loses', () => {
    const p = plan(inventory('ip-transparency', { persist: false }), 'dev1', systemdUpstream());
    expect(p.changes.map((c) => c.id)).toEqual(['ip route default']);
    expect(p.bootRevert).toBeUndefined();
    expect(p.notes).toEqual(['persistence: off (persist: false), a reboot loses: default route via 172.16.0.1 (the only default route of table main); an unconfirmed run is not reverted at boot']);
  });

  it('persist: false after an earlier persistent apply: its files go, the boot-time revert last', () => {
    const f = systemdUpstream();
    for (const u of [BOOT_REVERT_UNIT, PERSIST_UNIT]) f.files[unitPath(u)] = { ...absent(unitPath(u)), exists: true, type: 'file', content: 'x\n', sha256: 'c'.repeat(64) };
    f.files[PERSIST_SCRIPT] = { ...absent(PERSIST_SCRIPT), exists: true, type: 'file', content: 'y\n', sha256: 'd'.repeat(64) };
    const link = wantsLink('multi-user.target', PERSIST_UNIT);
    f.files[link] = { ...absent(link), exists: true, type: 'file', link: true, realpath: unitPath(PERSIST_UNIT) };
    const p = plan(inventory('ip-transparency', { persist: false }), 'dev1', f);
    expect(p.changes.map((c) => `${c.action} ${c.id}`)).toEqual([
      'update ip route default',
      `delete symlink ${link}`,
      `delete file ${unitPath(PERSIST_UNIT)}`,
      `delete file ${PERSIST_SCRIPT}`,
      `delete file ${unitPath(BOOT_REVERT_UNIT)}`,
    ]);
    expect(p.changes[3]!.do).toEqual([{ backup: { path: PERSIST_SCRIPT, key: expect.any(String) } }, { remove: { path: PERSIST_SCRIPT } }]);
  });

  it('no systemd (the namespace lab, whose hosts share the machine\'s /etc): no file ever, each lost item named', () => {
    const f = fixture('proxy-applied');
    expect(f.hasSystemd).toBe(false);
    const p = plan(inventory('ip-transparency', { proxy: { ...inventory().proxy, masquerade: true } }), 'proxy', f);
    expect(p.changes.filter((c) => c.kind === 'persist')).toEqual([]);
    expect(p.notes.filter((n) => n.startsWith('persistence: '))).toEqual([
      "persistence: not persisted (no systemd on this host: /run/systemd/system is absent), a reboot loses: iptables chain DSRCTL-FORWARD (forward only the upstreams' own outbound traffic and its replies (masquerade) between priv0 and pub0; drop other forwarding between them); sysctl net.ipv4.ip_forward=1; ip rule fwmark 0x1 lookup 100; ip route local 0.0.0.0/0 dev lo table 100; iptables -t mangle -A PREROUTING -s 172.16.0.11/32 -p tcp -m tcp --sport 8080 -m comment --comment dsrctl -j MARK --set-xmark 0x1/0xffffffff; iptables -t mangle -A PREROUTING -s 172.16.0.12/32 -p tcp -m tcp --sport 8080 -m comment --comment dsrctl -j MARK --set-xmark 0x1/0xffffffff; iptables -t nat -A POSTROUTING -s 172.16.0.11/32 -o pub0 -m comment --comment dsrctl -j MASQUERADE; iptables -t nat -A POSTROUTING -s 172.16.0.12/32 -o pub0 -m comment --comment dsrctl -j MASQUERADE; the dead-man's switch does not survive a reboot here (files stay as the run left them)",
    ]);
  });
});

describe('boot lines of every kernel-side resource kind', () => {
  const lines = (inv: Inventory, name: string, facts: HostFacts) => {
    const pb = loadPlaybook(inv.mode);
    const target = desiredHosts(inv, pb).find((t) => t.name === name)!;
    return bootItems(target, facts, planContext(inv, pb, target)).flatMap((i) => i.lines);
  };
  it('Method 1 with masquerade: forward filter, ip_forward, rule, local route, MARK and MASQUERADE', () => {
    const inv = inventory('ip-transparency', { proxy: { ...inventory().proxy, masquerade: true }, upstreams: [{ name: 'dev1', ssh_host: '10.211.0.11', ip: '172.16.0.11' }] });
    expect(lines(inv, 'proxy', fixture('proxy-applied'))).toEqual([
      [
        "if [ \"$(iptables -w -t filter -S DSRCTL-FORWARD 2>/dev/null)\" != \"$(printf '%s\\n' '-N DSRCTL-FORWARD' '-A DSRCTL-FORWARD -s 172.16.0.11/32 -i priv0 -o pub0 -j ACCEPT' '-A DSRCTL-FORWARD -d 172.16.0.11/32 -i pub0 -o priv0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT' '-A DSRCTL-FORWARD -i priv0 -o pub0 -j DROP' '-A DSRCTL-FORWARD -i pub0 -o priv0 -j DROP')\" ]; then",
        '  iptables -w -t filter -N DSRCTL-FORWARD 2>/dev/null; iptables -w -t filter -F DSRCTL-FORWARD &&',
        '  iptables -w -t filter -A DSRCTL-FORWARD -s 172.16.0.11/32 -i priv0 -o pub0 -j ACCEPT &&',
        '  iptables -w -t filter -A DSRCTL-FORWARD -d 172.16.0.11/32 -i pub0 -o priv0 -m conntrack --ctstate RELATED\\,ESTABLISHED -j ACCEPT &&',
        '  iptables -w -t filter -A DSRCTL-FORWARD -i priv0 -o pub0 -j DROP &&',
        '  iptables -w -t filter -A DSRCTL-FORWARD -i pub0 -o priv0 -j DROP &&',
        '  true',
        'fi',
      ].join('\n'),
      'iptables -w -t filter -C FORWARD -m comment --comment dsrctl -j DSRCTL-FORWARD 2>/dev/null || iptables -w -t filter -I FORWARD 1 -m comment --comment dsrctl -j DSRCTL-FORWARD',
      'sysctl -q -w net.ipv4.ip_forward\\=1',
      'ip rule list fwmark 0x1 lookup 100 | grep -q . || ip rule add fwmark 0x1 lookup 100',
      'ip route replace local 0.0.0.0/0 dev lo table 100',
      'iptables -w -t mangle -C PREROUTING -s 172.16.0.11/32 -p tcp -m tcp --sport 8080 -m comment --comment dsrctl -j MARK --set-xmark 0x1/0xffffffff 2>/dev/null || iptables -w -t mangle -A PREROUTING -s 172.16.0.11/32 -p tcp -m tcp --sport 8080 -m comment --comment dsrctl -j MARK --set-xmark 0x1/0xffffffff',
      'iptables -w -t nat -C POSTROUTING -s 172.16.0.11/32 -o pub0 -m comment --comment dsrctl -j MASQUERADE 2>/dev/null || iptables -w -t nat -A POSTROUTING -s 172.16.0.11/32 -o pub0 -m comment --comment dsrctl -j MASQUERADE',
    ]);
  });
  it('an upstream of Method 1 and router NAT: its default route', () => {
    expect(lines(inventory(), 'dev1', fixture('pristine-upstream'))).toEqual(['dsrctl_default_via 172.16.0.1']);
  });
  it('router NAT (nft on this kernel): the table replaced in one nft transaction; udp_early_demux and ip_forward', () => {
    const l = lines(inventory('dsr-router-nat', { upstreams: [{ name: 'dev1', ssh_host: '10.211.0.11', ip: '172.16.0.11' }] }), 'proxy', fixture('proxy-applied'));
    expect(l.filter((x) => x.startsWith('sysctl'))).toEqual(['sysctl -q -w net.ipv4.ip_forward\\=1', 'sysctl -q -w net.ipv4.udp_early_demux\\=0']);
    const nft = l.find((x) => x.includes('nft -f'))!;
    const text = Buffer.from(/printf '%s' '([^']+)'/.exec(nft)![1]!, 'base64').toString();
    expect(text).toBe(
      'table netdev dsrctl_nat_pub0\ndelete table netdev dsrctl_nat_pub0\ntable netdev dsrctl_nat_pub0 {\n\tchain egress {\n\t\ttype filter hook egress device "pub0" priority filter; policy accept;\n\t\tip saddr 172.16.0.11 udp sport 53 ip saddr set 192.168.99.10 comment "dsrctl dev1"\n\t}\n}\n',
    );
  });
  it('origin NAT with the tc backend: the qdisc and filters rebuilt only when not all there', () => {
    const f = fixture('pristine-upstream');
    f.nat = { actNat: 'module', tc: true, nft: true };
    const inv = inventory('dsr-origin-nat', { nat: { backend: 'tc' } });
    expect(lines(inv, 'dev1', f)).toEqual([
      [
        "if ! { tc qdisc show dev priv0 root | grep -q '^qdisc htb 10: ' && [ \"$(tc filter show dev priv0 parent 10\\: | grep -c ' nat egress ')\" = 1 ]; }; then",
        '  tc qdisc del dev priv0 root 2>/dev/null',
        '  tc qdisc add dev priv0 root handle 10\\: htb &&',
        '  tc filter add dev priv0 parent 10\\: protocol ip prio 9 u32 match ip src 172.16.0.11/32 match ip dst 172.16.0.1/32 action ok &&',
        '  tc filter add dev priv0 parent 10\\: protocol ip prio 10 u32 match ip src 172.16.0.11/32 match ip sport 53 0xffff action nat egress 172.16.0.11/32 192.168.99.10 &&',
        '  true',
        'fi',
      ].join('\n'),
    ]);
  });
  it('origin NAT proxy and nginx-only resources: nothing kernel-side', () => {
    expect(lines(inventory('dsr-origin-nat'), 'proxy', fixture('proxy-applied'))).toEqual([]);
  });
});

describe('unit files', () => {
  it('the restore unit: after the network is online, before nginx, part of the network manager', () => {
    expect(renderPersistUnit('systemd-networkd')).toBe(
      [
        '# generated by dsrctl: restores the kernel state dsrctl applied (do not edit; dsrctl rollback removes it)',
        '[Unit]',
        'Description=dsrctl: restore routes, rules, sysctls, firewall and NAT applied by dsrctl',
        'Wants=network-online.target',
        'After=network-online.target dsrctl-boot-revert.service systemd-networkd.service',
        'Before=nginx.service',
        'PartOf=systemd-networkd.service',
        'ConditionPathExists=/var/lib/dsrctl/persist.sh',
        '',
        '[Service]',
        'Type=oneshot',
        'RemainAfterExit=yes',
        'ExecStart=/bin/sh /var/lib/dsrctl/persist.sh',
        '',
        '[Install]',
        'WantedBy=multi-user.target',
        '',
      ].join('\n'),
    );
    expect(renderPersistUnit(null)).not.toContain('PartOf');
    // nftables.service flushes the whole ruleset on stop and restart: the restore follows it
    expect(renderPersistUnit('systemd-networkd', { nftables: true })).toContain('After=network-online.target dsrctl-boot-revert.service systemd-networkd.service nftables.service\nBefore=nginx.service\nPartOf=systemd-networkd.service nftables.service\n');
    expect(renderPersistUnit(null, { nftables: true })).toContain('PartOf=nftables.service\n');
  });
  it('the boot-time revert: early, before the network and nginx, runs rollback.sh --boot', () => {
    const u = renderBootRevertUnit();
    expect(u).toContain('DefaultDependencies=no\nAfter=local-fs.target\nBefore=network-pre.target sysinit.target dsrctl-persist.service nginx.service shutdown.target\n');
    expect(u).toContain('ExecStart=/bin/sh /var/lib/dsrctl/rollback.sh --boot\n');
    expect(u).toContain('[Install]\nWantedBy=sysinit.target\n');
  });
});

describe('networkd: no default route of its own beside the one via the proxy', () => {
  it('[Network] Gateway= is commented out, IPv6 gateways are left alone', () => {
    const e = editNetworkFile('/etc/systemd/network/a.network', '[Network]\nAddress=172.16.0.11/24\nGateway=172.16.0.254\nGateway=fe80::1\n', '172.16.0.1')!;
    expect(e.after).toBe('[Network]\nAddress=172.16.0.11/24\n#dsrctl# Gateway=172.16.0.254\nGateway=fe80::1\n');
  });
  it('a [Route] with a Gateway= and no Destination= is a default route; one with a Destination or another table is not', () => {
    const text = '[Route]\nGateway=172.16.0.254\nMetric=10\n\n[Route]\nDestination=10.0.0.0/8\nGateway=172.16.0.254\n\n[Route]\nGateway=172.16.0.254\nTable=100\n';
    const e = editNetworkFile('/x.network', text, '172.16.0.1')!;
    expect(e.after).toBe(text.replace('[Route]\nGateway=172.16.0.254\nMetric=10', '[Route]\n#dsrctl# Gateway=172.16.0.254\nMetric=10'));
  });
  it('DHCP: [DHCPv4] UseGateway=no appended, unless UseGateway= or UseRoutes= already say no', () => {
    const e = editNetworkFile('/x.network', '[Network]\nDHCP=yes\n', '172.16.0.1')!;
    expect(e.after).toBe('[Network]\nDHCP=yes\n\n# dsrctl: the default route goes via the proxy (172.16.0.1), restored by dsrctl-persist.service\n[DHCPv4]\nUseGateway=no\n');
    expect(editNetworkFile('/x.network', '[Network]\nDHCP=ipv4\n[DHCPv4]\nUseRoutes=false\n', '172.16.0.1')).toBeNull();
    expect(editNetworkFile('/x.network', '[Network]\nDHCP=ipv6\nAddress=10.0.0.2/24\n', '172.16.0.1')).toBeNull();
  });
});

describe('the apply script of a host that reverts at boot', () => {
  it('syncs after the journal (status, last-run) and before every file it writes, removes or links; never for runtime changes; writes each change\'s boot undo', async () => {
    const { renderApplyScript } = await import('../apply/apply-script.js');
    const p = plan(inventory(), 'dev1', systemdUpstream());
    const s = renderApplyScript(p, 'RUN', { switchSeconds: 60 });
    const changeLines = s.split('\n').filter((l) => l.startsWith('{ ') && l.includes('2>"$run/changes/'));
    // the route change (3rd) is runtime only: no sync; every persistence change syncs before it writes
    expect(changeLines.map((l) => l.includes('sync'))).toEqual([true, true, false, true, true, true, true]);
    expect(changeLines[6]).toMatch(/^\{ cp -p -- .* && sync && \( umask 022 && printf/);
    expect(s).toMatch(/rm -f \/var\/lib\/dsrctl\/reverted\nsync\n/);
    expect(s.match(/\.boot && printf/g)).toHaveLength(6);
  });
  it('a host without boot revert (no systemd) never syncs', async () => {
    const { renderApplyScript } = await import('../apply/apply-script.js');
    const s = renderApplyScript(plan(inventory(), 'dev1', fixture('pristine-upstream')), 'RUN', { switchSeconds: 60 });
    expect(s).not.toMatch(/\bsync\b/);
  });
});

describe('doctor: runtime state against the persistent state', () => {
  it('names what a hand flush or a network restart removed; ok when they agree', async () => {
    const { persistDrift } = await import('../doctor/checks/persist.js');
    const inv = inventory();
    const f = systemdUpstream();
    // dev1 as dsrctl leaves it: every file of its plan in place, but the route via the proxy gone
    for (const c of plan(inv, 'dev1', f).changes.filter((c) => c.kind === 'persist')) {
      const path = c.id.replace(/^(file|symlink) /, '');
      const w = c.do.find((s) => 'write' in s) as { write: { content: string } } | undefined;
      if (w && path.startsWith('/etc/systemd/network/')) f.netmgr!.files[path]!.content = w.write.content;
      else if (w) f.files[path] = { ...absent(path), exists: true, type: 'file', content: w.write.content };
      else f.files[path] = { ...absent(path), exists: true, link: true, realpath: `/etc/systemd/system/${path.split('/').pop()}` };
    }
    const drift = persistDrift(inv, { name: 'dev1', role: 'upstream', facts: f });
    expect(drift.map((d) => [d.severity, d.evidence])).toEqual([['error', ['missing or different: default route via 172.16.0.254 dev priv0 proto boot metric 0 -> via 172.16.0.1']]]);
    f.routes = f.routes.map((r) => (r.dst === 'default' ? { ...r, gateway: '172.16.0.1' } : r));
    expect(persistDrift(inv, { name: 'dev1', role: 'upstream', facts: f }).map((d) => d.severity)).toEqual(['ok']);
    // no persist.sh (namespace lab, persist: false): nothing to compare
    expect(persistDrift(inv, { name: 'dev1', role: 'upstream', facts: fixture('pristine-upstream') })).toEqual([]);
  });
});

describe('on real facts of a systemd host (syslab\'s nspawn lab: Debian 12, systemd 252, networkd)', () => {
  it('the facts: systemd, networkd active, the .network file of each link with its content', () => {
    const f = fixture('systemd-upstream-networkd');
    expect(f.hasSystemd).toBe(true);
    expect(f.netmgr?.systemdVersion).toBe(252);
    expect(f.netmgr?.units).toEqual({ 'systemd-networkd': 'active', NetworkManager: 'inactive', networking: 'inactive' });
    expect(f.netmgr?.networkd.find((l) => l.name === 'priv0')).toEqual({ name: 'priv0', adminState: 'configured', networkFile: '/etc/systemd/network/10-priv0.network', dropins: [] });
    expect(f.netmgr?.files['/etc/systemd/network/10-priv0.network']?.content).toContain('Gateway=172.16.0.254');
    expect(f.routes.find((r) => r.dst === 'default')?.protocol).toBe('static');
  });
  it('a pristine upstream: the boot-time revert, the route, the restore and its unit, the networkd edit', () => {
    const p = plan(inventory(), 'dev1', fixture('systemd-upstream-networkd'));
    expect(p.changes.map((c) => `${c.action} ${c.id}`)).toEqual([
      'create file /etc/systemd/system/dsrctl-boot-revert.service',
      'create symlink /etc/systemd/system/sysinit.target.wants/dsrctl-boot-revert.service',
      'update ip route default',
      'create file /var/lib/dsrctl/persist.sh',
      'create file /etc/systemd/system/dsrctl-persist.service',
      'create symlink /etc/systemd/system/multi-user.target.wants/dsrctl-persist.service',
      'update file /etc/systemd/network/10-priv0.network',
    ]);
  });
  it('the same upstream after apply (unconfirmed, as the boot-time revert would find it): nothing left to do', () => {
    expect(plan(inventory(), 'dev1', fixture('systemd-upstream-applied')).changes).toEqual([]);
  });
});
