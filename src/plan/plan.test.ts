import { dirname } from 'node:path';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFacts } from '../facts/parse.js';
import type { HostFacts } from '../facts/types.js';
import { inventorySchema, type Inventory } from '../inventory/schema.js';
import { loadPlaybook, type Playbook } from '../playbook/load.js';
import { renderStep } from '../apply/render-step.js';
import { desiredHosts, factsRequest, type HostTarget } from './desired.js';
import { planHost } from './plan-host.js';
import { PlanError } from '../resources/types.js';
import { FACT_SECTIONS } from '../facts/sections/index.js';
import { persistFactsFiles } from '../persist/plan.js';

/** The notes a plan gives besides persistence's (persist.test.ts checks those). */
const otherNotes = (notes: string[]) => notes.filter((n) => !n.startsWith('persistence: '));

const fixture = (name: string): HostFacts => parseFacts(readFileSync(new URL(`../../test/fixtures/facts/${name}.txt`, import.meta.url), 'utf8'));
const MANAGED = '/etc/nginx/conf.d/dsrctl-does-not-exist.conf'; // the managed file the proxy fixtures read (absent there)

/** The lab: the guide's addresses, http 80 -> 8080. */
function labInventory(over: { masquerade?: boolean; protocol?: 'http' | 'tcp' | 'udp'; upstream_port?: number } = {}): Inventory {
  return inventorySchema.parse({
    mode: 'ip-transparency',
    service: { protocol: over.protocol ?? 'http', listen_port: 80, upstream_port: over.upstream_port ?? 8080 },
    proxy: {
      ssh_host: '10.211.0.10',
      public_ip: '192.168.99.10',
      public_interface: 'pub0',
      private_ip: '172.16.0.1',
      private_interface: 'priv0',
      masquerade: over.masquerade ?? false,
      managed_config: MANAGED,
    },
    upstreams: [1, 2, 3, 4].map((n) => ({ name: `dev${n}`, ssh_host: `10.211.0.1${n}`, ip: `172.16.0.1${n}`, interface: 'priv0' })),
  });
}

const pb: Playbook = loadPlaybook('ip-transparency');
const UPSTREAM_IPS = ['172.16.0.11', '172.16.0.12', '172.16.0.13', '172.16.0.14'];
const markRule = (ip: string, l4 = 'tcp', port = 8080) =>
  ['-s', `${ip}/32`, '-p', l4, '-m', l4, '--sport', String(port), '-m', 'comment', '--comment', 'dsrctl', '-j', 'MARK', '--set-xmark', '0x1/0xffffffff'];
const masqRule = (ip: string) => ['-s', `${ip}/32`, '-o', 'pub0', '-m', 'comment', '--comment', 'dsrctl', '-j', 'MASQUERADE'];

const host = (targets: HostTarget[], name: string) => targets.find((t) => t.name === name)!;
const rulesOf = (t: HostTarget, table: string) =>
  t.desired.filter((d) => d.kind === 'iptables-rule' && (d.spec as { table: string }).table === table).map((d) => (d.spec as { rule: string[] }).rule);

describe('desiredHosts (lab inventory x ip-transparency playbook)', () => {
  it('gives the proxy the guide\'s resources and each upstream a default route via the proxy', () => {
    const targets = desiredHosts(labInventory(), pb);
    expect(targets.map((t) => [t.name, t.role])).toEqual([
      ['proxy', 'proxy'],
      ['dev1', 'upstream'],
      ['dev2', 'upstream'],
      ['dev3', 'upstream'],
      ['dev4', 'upstream'],
    ]);
    expect(host(targets, 'proxy').desired).toEqual([
      { kind: 'nginx-user', spec: {} },
      { kind: 'nginx-exclusive-port', spec: {} },
      { kind: 'nginx-managed-config', spec: {} },
      { kind: 'health-checker', spec: {} },
      // no forwarding without masquerade: replies are delivered to nginx locally (and forwarding an
      // earlier dsrctl run turned on goes back off)
      { kind: 'forwarding-put-back', spec: {} },
      { kind: 'ip-rule', spec: { fwmark: '0x1', table: '100' } },
      { kind: 'ip-route', spec: { type: 'local', dst: '0.0.0.0/0', dev: 'lo', table: '100' } },
      ...UPSTREAM_IPS.map((ip) => ({ kind: 'iptables-rule', spec: { table: 'mangle', chain: 'PREROUTING', rule: markRule(ip) } })),
    ]);
    for (const [i, name] of ['dev1', 'dev2', 'dev3', 'dev4'].entries()) {
      const t = host(targets, name);
      expect(t.upstream?.ip).toBe(UPSTREAM_IPS[i]);
      expect(t.desired).toEqual([{ kind: 'default-route', spec: { via: '172.16.0.1' } }]);
    }
  });

  it('has no MASQUERADE unless masquerade: true, then one per upstream out of the public interface', () => {
    expect(rulesOf(host(desiredHosts(labInventory(), pb), 'proxy'), 'nat')).toEqual([]);
    const proxy = host(desiredHosts(labInventory({ masquerade: true }), pb), 'proxy');
    expect(rulesOf(proxy, 'mangle')).toEqual(UPSTREAM_IPS.map((ip) => markRule(ip)));
    expect(rulesOf(proxy, 'nat')).toEqual(UPSTREAM_IPS.map(masqRule));
    const chains = proxy.desired.filter((d) => d.kind === 'iptables-rule').map((d) => `${(d.spec as { table: string }).table} ${(d.spec as { chain: string }).chain}`);
    expect(chains).toEqual([...Array(4).fill('mangle PREROUTING'), ...Array(4).fill('nat POSTROUTING')]);
  });

  it('marks udp replies with -p udp -m udp, tcp replies with -p tcp -m tcp, from the upstream port', () => {
    expect(rulesOf(host(desiredHosts(labInventory({ protocol: 'udp', upstream_port: 53 }), pb), 'proxy'), 'mangle')).toEqual(
      UPSTREAM_IPS.map((ip) => markRule(ip, 'udp', 53)),
    );
    expect(rulesOf(host(desiredHosts(labInventory({ protocol: 'tcp', upstream_port: 5432 }), pb), 'proxy'), 'mangle')).toEqual(
      UPSTREAM_IPS.map((ip) => markRule(ip, 'tcp', 5432)),
    );
  });

  it('names the playbook entry whose {{ }} has no value', () => {
    const broken: Playbook = { ...pb, upstream: [{ kind: 'default-route', via: '{{proxy.gateway}}' }] };
    expect(() => desiredHosts(labInventory(), broken)).toThrow(/playbook entry 0 \(default-route\): \{\{proxy\.gateway\}\} has no value/);
  });

  it('rejects an unknown resource kind, naming the entry', () => {
    const broken: Playbook = { ...pb, proxy: [...pb.proxy, { kind: 'tc-qdisc-typo' }] };
    expect(() => desiredHosts(labInventory(), broken)).toThrow(`playbook entry ${pb.proxy.length}: unknown resource kind "tc-qdisc-typo"`);
  });

  it('with masquerade: the forward filter, then ip_forward on', () => {
    const kinds = host(desiredHosts(labInventory({ masquerade: true }), pb), 'proxy').desired.map((d) => d.kind);
    expect(kinds.slice(kinds.indexOf('forward-filter'), kinds.indexOf('forward-filter') + 2)).toEqual(['forward-filter', 'sysctl']);
  });

  it('asks the facts exec for the two nginx files and the managed file directory on the proxy (ip_forward only with masquerade), nothing extra on upstreams', () => {
    const inv = labInventory();
    const targets = desiredHosts(inv, pb);
    expect(factsRequest(labInventory({ masquerade: true }), pb, host(desiredHosts(labInventory({ masquerade: true }), pb), 'proxy')).sysctls).toEqual(['net.ipv4.ip_forward', 'net.ipv4.conf.all.accept_redirects']);
    // nginx.conf as the oldest dsrctl run still in place found it: the user it had before `user root;`
    // ip_forward (and the earlier run's record of it): forwarding a dsrctl run turned on goes back off
    expect(factsRequest(inv, pb, host(targets, 'proxy'))).toMatchObject({ sysctls: ['net.ipv4.ip_forward', 'net.ipv4.conf.all.accept_redirects'], interfaces: [], journalFiles: ['/etc/nginx/nginx.conf'], journalChanges: ['sysctl net.ipv4.ip_forward'] });
    expect(factsRequest(inv, pb, host(targets, 'proxy')).files).toEqual(expect.arrayContaining(['/etc/nginx/nginx.conf', MANAGED, dirname(MANAGED)]));
    expect(factsRequest(inv, pb, host(targets, 'proxy')).reads).toEqual(['/etc/nginx/dsrctl-health.servers', '/var/lib/dsrctl/health/state']);
    // every host: the persistence files (read-only; what happens to them is the plan's decision)
    expect(factsRequest(inv, pb, host(targets, 'dev1'))).toEqual({ sysctls: [], files: persistFactsFiles(), interfaces: [], sections: ['netmgr'] });
    expect(factsRequest(inv, pb, host(targets, 'proxy')).sections).toEqual(['nginx', 'health', 'iptables', 'netmgr']);
    // persist: false needs no network manager facts
    expect(factsRequest({ ...inv, persist: false }, pb, host(targets, 'dev1')).sections).toEqual([]);
  });
});

/** A fixture's output as the facts script of `req` prints it on a host whose journal shows no leftovers: the optional facts not asked for are gone. */
function readAs(name: string, req: ReturnType<typeof factsRequest>): HostFacts {
  const text = readFileSync(new URL(`../../test/fixtures/facts/${name}.txt`, import.meta.url), 'utf8');
  const drop = new Set(FACT_SECTIONS.filter((s) => s.optional && !req.sections!.includes(s.id)).flatMap((s) => [...(s.single ?? []), ...(s.repeated ?? [])]));
  const out: string[] = [];
  let skipping = false;
  for (const line of text.split('\n')) {
    const b = /^@@dsrctl-facts:begin (\S+)@@$/.exec(line);
    if (b) skipping = drop.has(b[1]!);
    if (!skipping) out.push(line);
    if (/^@@dsrctl-facts:end /.test(line)) skipping = false;
  }
  return parseFacts(out.join('\n'));
}

describe('facts per role: a host reads only what its plan needs', () => {
  const cases: [string, 'proxy' | 'dev1', string][] = [
    ['ip-transparency', 'proxy', 'proxy-applied'],
    ['ip-transparency', 'proxy', 'stock-proxy-default-site'],
    ['ip-transparency', 'dev1', 'upstream-applied'],
    ['ip-transparency', 'dev1', 'pristine-upstream'],
    ['dsr-router-nat', 'dev1', 'pristine-upstream'],
    ['dsr-origin-nat', 'dev1', 'pristine-upstream'],
    ['dsr-router-nat', 'proxy', 'stock-proxy-default-site'],
    ['dsr-origin-nat', 'proxy', 'stock-proxy-default-site'],
  ];
  it.each(cases)('%s, %s from %s: the same plan as from every fact', (mode, name, fx) => {
    const inv = inventorySchema.parse({ ...labInventory({ protocol: mode === 'ip-transparency' ? 'http' : 'udp', upstream_port: mode === 'ip-transparency' ? 8080 : 53 }), mode });
    const p = loadPlaybook(mode as Inventory['mode']);
    const t = host(desiredHosts(inv, p), name);
    const req = factsRequest(inv, p, t);
    const plan = (f: HostFacts) => {
      try {
        return planHost(inv, p, t, f);
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(plan(readAs(fx, req))).toEqual(plan(fixture(fx)));
  });

  it('a Method 1 upstream reads neither nginx, nor iptables, nor nft', () => {
    const inv = labInventory();
    const req = factsRequest(inv, pb, host(desiredHosts(inv, pb), 'dev1'));
    const f = readAs('upstream-applied', req);
    // netmgr is asked for (persistence) but prints nothing where systemd does not run (the namespace lab)
    expect(f.notRead).toEqual(['iptables', 'nat', 'nginx', 'health', 'netmgr']);
  });
});

/** The proxy as it was before dsrctl: proxy-applied's real output without what the guide added, and a running Debian nginx (user www-data, full CapBnd). */
function pristineProxy(): HostFacts {
  const f = fixture('proxy-applied');
  f.nginx = fixture('proxy-nginx-www-data').nginx;
  f.rules = f.rules.filter((r) => r.fwmark === undefined);
  f.routes = f.routes.filter((r) => r.table !== '100');
  f.sysctl['net.ipv4.ip_forward'] = '0';
  f.iptables = { variant: 'nft', save: '', tables: {} };
  return f;
}

/** The proxy after a complete apply of the lab inventory (masquerade off). */
function fullyAppliedProxy(): HostFacts {
  const f = fixture('proxy-applied');
  const mangle = f.iptables.tables['mangle']!;
  mangle.rules = UPSTREAM_IPS.map((ip) => `-A PREROUTING ${markRule(ip).join(' ')}`);
  // masquerade is off in the lab inventory: a fully applied proxy has no MASQUERADE rule
  delete f.iptables.tables['nat'];
  const conf = f.files['/etc/nginx/nginx.conf']!;
  conf.content = conf.content!.replace(/^user www-data;/, 'user root;');
  const managed = readFileSync(new URL('../../test/fixtures/operations/nginx-managed-config/lab-http.conf', import.meta.url), 'utf8');
  f.files[MANAGED] = { path: MANAGED, exists: true, type: 'file', mode: '644', content: managed };
  return f;
}

function plan(name: string, facts: HostFacts, inv = labInventory()) {
  return planHost(inv, pb, host(desiredHosts(inv, pb), name), facts);
}
const ids = (p: ReturnType<typeof plan>) => p.changes.map((c) => c.id);

describe('planHost on real facts', () => {
  it('pristine proxy (Debian nginx, user www-data): `user` is kept, every other resource changes, in playbook order; the plan says why', () => {
    const p = plan('proxy', pristineProxy());
    expect(p.host).toBe('proxy');
    expect(p.role).toBe('proxy');
    expect(otherNotes(p.notes)).toEqual([
      "nginx user: keep (nginx 1.22.1 >= 1.13.8 and CAP_NET_RAW in its capability bounding set (CapBnd 000001fffeffffff): the workers keep their user and hold only CAP_NET_RAW for `transparent` (proxy.nginx_user: keep, the default here; root is the guide's way))",
    ]);
    expect(ids(p)).toEqual([
      `file ${MANAGED}`,
      'ip rule fwmark 0x1 lookup 100',
      'ip route local 0.0.0.0/0 dev lo table 100',
      ...UPSTREAM_IPS.map((ip) => `iptables -t mangle -A PREROUTING ${markRule(ip).join(' ')}`),
    ]);
    // only the first rule in the table iptables-nft will create carries the table guard
    const guards = p.changes.map((c) => c.undo.filter((s) => 'sh' in s).length);
    expect(guards).toEqual([0, 0, 0, 1, 0, 0, 0]);
    const reload = p.changes.filter((c) => c.notify?.includes('nginx-reload')).map((c) => c.kind);
    expect(reload).toEqual(['nginx-managed-config']);
  });

  it('pristine proxy with nginx_user: root: the guide\'s `user root;` first', () => {
    const inv = labInventory();
    const p = plan('proxy', pristineProxy(), { ...inv, proxy: { ...inv.proxy, nginx_user: 'root' } });
    expect(p.changes[0]!.summary).toBe('/etc/nginx/nginx.conf: user www-data; -> user root;');
    expect(otherNotes(p.notes)).toEqual(["nginx user: root (proxy.nginx_user: root: the guide's `user root;`)"]);
  });

  it('pristine proxy with masquerade: the forward filter, ip_forward and 4 MASQUERADE rules more, the first nat rule guarding its table too', () => {
    const p = plan('proxy', pristineProxy(), labInventory({ masquerade: true }));
    expect(p.changes).toHaveLength(13);
    expect(p.changes.slice(1, 3).map((c) => c.id)).toEqual(['iptables -t filter chain DSRCTL-FORWARD', 'sysctl net.ipv4.ip_forward']);
    const nat = p.changes.slice(9);
    expect(nat.map((c) => renderStep(c.do[0]!, '/r'))).toEqual(
      UPSTREAM_IPS.map((ip) => `iptables -w -t nat -A POSTROUTING -s ${ip}/32 -o pub0 -m comment --comment dsrctl -j MASQUERADE`),
    );
    expect(nat.map((c) => c.undo.length)).toEqual([2, 1, 1, 1]);
  });

  it('proxy-applied fixture: the unwanted tagged MASQUERADE goes first, then only nginx.conf, the managed file and the MARK rules of dev2-dev4 differ', () => {
    const p = plan('proxy', fixture('proxy-applied'));
    expect(ids(p)).toEqual([
      'iptables -t nat -A POSTROUTING -s 172.16.0.0/24 -o pub0 -m comment --comment dsrctl -j MASQUERADE',
      'file /etc/nginx/nginx.conf',
      `file ${MANAGED}`,
      ...UPSTREAM_IPS.slice(1).map((ip) => `iptables -t mangle -A PREROUTING ${markRule(ip).join(' ')}`),
    ]);
    expect(p.changes.map((c) => c.action)).toEqual(['delete', 'update', 'create', 'create', 'create', 'create']);
    // mangle exists there: no rule may drop the table on undo
    expect(p.changes.flatMap((c) => c.undo).filter((s) => 'sh' in s)).toEqual([]);
  });

  it('proxy-applied with masquerade: the /24 MASQUERADE there does not stand in for the per-upstream rules, and is replaced by them', () => {
    const p = plan('proxy', fixture('proxy-applied'), labInventory({ masquerade: true }));
    expect(p.changes).toHaveLength(11);
    expect(p.changes[0]!.action).toBe('delete');
    expect(p.changes.slice(7).every((c) => c.id.startsWith('iptables -t nat -A POSTROUTING -s 172.16.0.1'))).toBe(true);
  });

  it('refuses upstream addresses outside the networks of the proxy\'s private interface, naming each and the networks (exit 2)', () => {
    const inv = labInventory();
    inv.upstreams[1]!.ip = '10.0.0.12';
    inv.upstreams[3]!.ip = '10.0.0.14';
    let err: unknown;
    try {
      plan('proxy', pristineProxy(), inv);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlanError);
    expect((err as PlanError).usage).toBe(true);
    expect((err as Error).message.split('\n')[0]).toBe(
      "proxy: upstream addresses 10.0.0.12 (dev2), 10.0.0.14 (dev4) are not on the proxy's private interface priv0: its connected network is 172.16.0.0/24.",
    );
    // the upstreams themselves still plan: the proxy is the host that cannot reach them
    expect(() => plan('dev2', fixture('pristine-upstream'), inv)).not.toThrow();
  });

  it('a fully applied proxy plans nothing (a second apply is a no-op)', () => {
    expect(plan('proxy', fullyAppliedProxy()).changes).toEqual([]);
  });

  it('pristine upstream: one change, the default route via the proxy', () => {
    const p = plan('dev1', fixture('pristine-upstream'));
    expect(p.role).toBe('upstream');
    expect(p.changes).toHaveLength(1);
    expect(p.changes[0]!.do.map((s) => renderStep(s, '/r'))).toEqual([
      'ip route del default via 172.16.0.254 dev priv0 proto boot metric 0',
      'ip route add default via 172.16.0.1',
    ]);
    // a namespace-lab host: no systemd, so nothing persists, and the plan says what a reboot loses
    expect(p.notes).toEqual([
      "persistence: not persisted (no systemd on this host: /run/systemd/system is absent), a reboot loses: default route via 172.16.0.1 (the only default route of table main); the dead-man's switch does not survive a reboot here (files stay as the run left them)",
    ]);
  });

  it('upstream-applied: the leftover metric-100 default is the one change', () => {
    const p = plan('dev1', fixture('upstream-applied'));
    expect(p.changes.map((c) => c.summary)).toEqual([
      'default route via 172.16.0.1 dev priv0 proto boot metric 0; via 172.16.0.254 dev priv0 proto boot metric 100 -> via 172.16.0.1',
    ]);
  });

  it('a non-root connection still plans, and says the changes need root', () => {
    const p = plan('dev1', fixture('pristine-upstream-nonroot'));
    expect(p.changes).toHaveLength(1);
    expect(otherNotes(p.notes)).toEqual(['connected as uid 65534: the changes need root (set ssh.sudo: true, or log in as root)']);
  });

  it('is pure: planning twice from the same facts gives the same plan and leaves the facts alone', () => {
    const facts = pristineProxy();
    const before = structuredClone(facts);
    expect(plan('proxy', facts)).toEqual(plan('proxy', facts));
    expect(facts).toEqual(before);
  });
});
