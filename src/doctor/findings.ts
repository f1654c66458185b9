/**
 * The guide's Troubleshooting as pure functions: Inventory + each host's Facts + doctor's extra
 * read-only output in, findings out (each with its evidence and the fix). No I/O.
 */
import ipaddr from 'ipaddr.js';
import type { Inventory, Upstream } from '../inventory/schema.js';
import type { HostFacts, IpRoute } from '../facts/types.js';
import { chooseNatBackend, kernelAtLeast } from '../resources/nat-backend.js';
import { currentForwardFilter, FORWARD_CHAIN, needsForwarding } from '../resources/forward-filter.js';
import { CAP_NET_ADMIN, CAP_NET_RAW, NGINX_KEEPS_CAP, decodeCaps, versionAtLeast } from '../resources/nginx/user-decision.js';
import type { DoctorOutput, ProcInfo } from './collect.js';
import { ERROR_LOG_TAIL } from './collect.js';
import type { Finding } from './types.js';
import { conflictFixes, describeConflict, serviceConflicts, type ServiceConflicts } from '../resources/nginx-port.js';

/** One host as doctor saw it. `facts`/`doctor` are absent when that stage failed (`error` says why). */
export interface HostEvidence {
  name: string;
  role: 'proxy' | 'upstream';
  upstream?: Upstream;
  facts?: HostFacts;
  doctor?: DoctorOutput;
  error?: string;
}

export { CAP_NET_ADMIN, CAP_NET_RAW, NGINX_KEEPS_CAP, decodeCaps, versionAtLeast } from '../resources/nginx/user-decision.js';
/** the guide's "Missing Packets" fix */
export const GUIDE_RP_FILTER_FIX = 'for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f ; done';

/** "a.b.c.d/n" for an address or CIDR. */
function cidr(s: string): string {
  return s.includes('/') ? s : `${s}/32`;
}

function parseCidr(s: string): [ipaddr.IPv4, number] {
  const [a, l] = cidr(s).split('/');
  return [ipaddr.IPv4.parse(a!), Number(l)];
}

/** Do two IPv4 networks share an address? */
export function overlaps(a: string, b: string): boolean {
  const [aa, al] = parseCidr(a);
  const [ba, bl] = parseCidr(b);
  return al <= bl ? ba.match(aa, al) : aa.match(ba, bl);
}

function routeDstCidr(r: IpRoute): string | null {
  if (r.dst === 'default') return '0.0.0.0/0';
  const s = cidr(r.dst);
  return ipaddr.IPv4.isValidFourPartDecimal(s.split('/')[0]!) ? s : null;
}

/** A route as `ip route` prints it (good enough for evidence). */
export function formatRoute(r: IpRoute): string {
  const parts: string[] = [];
  if (r.type && r.type !== 'unicast') parts.push(r.type);
  parts.push(r.dst);
  if (r.gateway) parts.push('via', r.gateway);
  if (r.dev) parts.push('dev', r.dev);
  if (r.table && r.table !== 'main') parts.push('table', r.table);
  if (r.protocol && r.protocol !== 'boot') parts.push('proto', r.protocol);
  if (r.scope && r.scope !== 'global') parts.push('scope', r.scope);
  if (r.prefsrc) parts.push('src', r.prefsrc);
  if (r.metric) parts.push('metric', String(r.metric));
  return parts.join(' ');
}

function mainRoutes(f: HostFacts): IpRoute[] {
  return f.routes.filter((r) => (r.table ?? 'main') === 'main' && (r.type ?? 'unicast') === 'unicast');
}

/** The connected IPv4 subnets of a host (interface, "a.b.c.0/n"), loopback excluded. */
export function connectedSubnets(f: HostFacts): { iface: string; subnet: string; address: string }[] {
  const out: { iface: string; subnet: string; address: string }[] = [];
  for (const i of f.interfaces) {
    if (i.linkType === 'loopback' || i.name === 'lo') continue;
    for (const a of i.addresses) {
      if (a.family !== 'inet') continue;
      const net = ipaddr.IPv4.networkAddressFromCIDR(`${a.address}/${a.prefixlen}`).toString();
      out.push({ iface: i.name, subnet: `${net}/${a.prefixlen}`, address: `${a.address}/${a.prefixlen}` });
    }
  }
  return out;
}

/** The interface holding an address, if any. */
function ifaceOf(f: HostFacts, ip: string): string | undefined {
  return f.interfaces.find((i) => i.addresses.some((a) => a.address === ip))?.name;
}

/** The client addresses doctor knows of: client_networks and the probe's expected source. */
export function clientNetworks(inv: Inventory): { net: string; from: string }[] {
  const out = (inv.service.client_networks ?? []).map((n) => ({ net: cidr(n), from: 'service.client_networks' }));
  const src = inv.verify.probe?.expect_source;
  if (src && !out.some((o) => o.net === `${src}/32`)) out.push({ net: `${src}/32`, from: 'verify.probe.expect_source' });
  return out;
}

const fixApply = (what: string) => `${what}, or run \`dsrctl apply -i INVENTORY\`, which does it`;
const procText = (p: ProcInfo) => {
  const caps = decodeCaps(p.capEff);
  const named = [caps.has(CAP_NET_ADMIN) && 'CAP_NET_ADMIN', caps.has(CAP_NET_RAW) && 'CAP_NET_RAW'].filter(Boolean);
  const bnd = p.capBnd ? decodeCaps(p.capBnd) : null;
  const cut = bnd && !bnd.has(CAP_NET_RAW) ? ` (no CAP_NET_RAW${bnd.has(CAP_NET_ADMIN) ? '' : ', no CAP_NET_ADMIN'})` : '';
  return `pid ${p.pid} "${p.cmd}": uid ${new Set(p.uids).size === 1 ? p.uids[0] : p.uids.join(' ')}${p.user ? ` (${p.user})` : ''}, CapEff ${p.capEff}${named.length ? ` = ${named.join(' + ')}${caps.size > named.length ? ' among others' : ' only'}` : ' (no CAP_NET_RAW, no CAP_NET_ADMIN)'}${p.capBnd ? `, CapBnd ${p.capBnd}${cut}` : ''}`;
};

// ---------------------------------------------------------------------------------------------
// per-check functions: each returns the findings of one check on one host

function dsrctlState(h: HostEvidence): Finding[] {
  const f = h.facts!;
  const run = f.dsrctl.journal?.trim();
  const out: Finding[] = [];
  if (f.dsrctl.reverted)
    out.push({
      id: 'dsrctl-state',
      host: h.name,
      severity: 'warn',
      title: "dsrctl's dead-man's switch reverted a run here by itself: the host is not in the applied state",
      evidence: [`/var/lib/dsrctl/reverted: ${f.dsrctl.reverted.trim()}`],
      fix: 'find out why the run was never confirmed (connection lost?), then `dsrctl apply -i INVENTORY` again',
    });
  else {
    const status = h.doctor?.lastRunStatus;
    const evidence = [
      ...(run && status ? [`/var/lib/dsrctl/runs/${run}/status: ${status}`] : []),
      ...(f.dsrctl.lock ? [`/var/lib/dsrctl/lock (a run in progress, or a dead one's): ${f.dsrctl.lock.trim()}`] : []),
    ];
    out.push({ id: 'dsrctl-state', host: h.name, evidence, ...runState(run, status) });
  }
  return out;
}

/** What the last run's status says about the host: applied, undone, or needing a person. */
function runState(run: string | undefined, status: string | undefined): Pick<Finding, 'severity' | 'title' | 'fix'> {
  if (!run) return { severity: 'info', title: 'dsrctl has applied nothing here yet (no /var/lib/dsrctl/last-run)' };
  switch (status) {
    case 'rolled-back':
    case 'committed-rolled-back':
      return { severity: 'info', title: `dsrctl run ${run}, the last one here, was rolled back: nothing dsrctl applied is in place`, fix: '`dsrctl apply -i INVENTORY` applies the mode again' };
    case 'rollback-failed':
      return { severity: 'error', title: `the rollback of dsrctl run ${run} did not complete: the host is neither as applied nor as before`, fix: 'look at /var/lib/dsrctl/runs/' + run + '/ (what each undo printed), then `dsrctl rollback -i INVENTORY` again' };
    case 'applying':
    case 'applied':
      return { severity: 'warn', title: `dsrctl run ${run} was applied here but never confirmed (status ${status}): its dead-man's switch may still revert it`, fix: 'wait for the run to finish, or `dsrctl verify -i INVENTORY`, then apply again' };
    default:
      return { severity: 'info', title: `dsrctl run ${run} is the last one applied here${status ? ` (${status})` : ''}` };
  }
}

/** Another nginx server on the service's port answers the clients (the plan refuses it too). */
function portConflicts(inv: Inventory, h: HostEvidence): Finding[] {
  const cfg = h.facts!.nginxConfig;
  if (!cfg || cfg.status === 'absent') return [];
  const { protocol, listen_port: port } = inv.service;
  const where = `port ${port}/${protocol === 'udp' ? 'udp' : 'tcp'} on ${inv.proxy.public_ip}`;
  const base = { id: 'port-conflict', host: h.name };
  if (cfg.status === 'failed')
    return [{ ...base, severity: 'warn', title: `nginx -T failed: which servers hold ${where} is unknown`, evidence: cfg.error.split('\n').filter(Boolean), fix: "fix nginx's configuration (nginx -t says where), or connect as root" }];
  let found: ServiceConflicts;
  try {
    found = serviceConflicts(inv, cfg.dump, cfg.links);
  } catch (e) {
    return [{ ...base, severity: 'warn', title: `nginx -T's output could not be read: ${where} not checked`, evidence: [(e as Error).message] }];
  }
  if (!found.conflicts.length) return [{ ...base, severity: 'ok', title: `no other nginx server answers on ${where}`, evidence: [] }];
  return [
    {
      ...base,
      severity: 'error',
      title: found.head.replace(/:$/, ''),
      evidence: found.conflicts.map(describeConflict),
      fix: `do one of: ${conflictFixes(found).map((l) => l.replace(/^\s*- /, '')).join('; ')}`,
    },
  ];
}

function nginxWorkers(inv: Inventory, h: HostEvidence): Finding[] {
  const f = h.facts!;
  const d = h.doctor!;
  const n = f.nginx;
  if (!n.installed)
    return [{ id: 'nginx-workers', host: h.name, severity: 'error', title: 'nginx is not installed on the proxy', evidence: ['`nginx -V`: command not found'], fix: 'install nginx with the stream module (Debian: apt-get install nginx libnginx-mod-stream)' }];
  if (!n.running || !d.nginx)
    return [{ id: 'nginx-workers', host: h.name, severity: 'error', title: `nginx ${n.version ?? ''} is not running`.replace('  ', ' '), evidence: [`pid file ${n.pidFile ?? '?'}: no live nginx master`], fix: 'start nginx (systemctl start nginx, or `nginx`) and look at its error log if it does not stay up' }];
  const keeps = versionAtLeast(n.version, NGINX_KEEPS_CAP);
  const workers = d.nginx.workers.filter((w) => /worker process/.test(w.cmd));
  const evidence = [
    `nginx ${n.version} (${keeps ? `>= ${NGINX_KEEPS_CAP}: workers keep CAP_NET_RAW when the config uses \`transparent\`` : `< ${NGINX_KEEPS_CAP}: only root workers can bind to client addresses`})`,
    ...(d.nginx.master ? [`master ${procText(d.nginx.master)}`] : []),
    ...workers.map((w) => `worker ${procText(w)}`),
    ...(d.nginx.transparentLines.length ? d.nginx.transparentLines.map((l) => `config: ${l}`) : ['config: no `proxy_bind ... transparent` under the nginx config directory']),
  ];
  const base = { id: 'nginx-workers', host: h.name, evidence };
  const masterBnd = d.nginx.master?.capBnd ? decodeCaps(d.nginx.master.capBnd) : null;
  const bndCut = masterBnd !== null && !masterBnd.has(CAP_NET_RAW);
  const capsetLines = (d.nginx.errorLogs ?? []).flatMap((l) => l.lines.filter((x) => /capset\(\) failed/.test(x)).map((x) => `${l.path}: ${x}`));
  const cutFix = (adminLeft: boolean) =>
    `give nginx CAP_NET_RAW back (systemd: add it to the unit's CapabilityBoundingSet=, e.g. \`systemctl edit nginx\`; a container: cap_add NET_RAW), then restart nginx (a reload keeps the master's bounding set)${adminLeft ? "; or run the workers as root (`user root;`, proxy.nginx_user: root): CAP_NET_ADMIN is left, and root workers can use it" : ''}`;
  if (workers.length === 0) {
    if (capsetLines.length || bndCut)
      return [
        {
          ...base,
          evidence: [...evidence, ...capsetLines.slice(-3)],
          severity: 'error',
          title: `nginx has no worker processes: unprivileged workers exit at start because CAP_NET_RAW was cut from nginx's capability bounding set${d.nginx.master?.capBnd ? ` (CapBnd ${d.nginx.master.capBnd})` : ''}: with \`transparent\` in the config each worker must keep CAP_NET_RAW (nginx >= ${NGINX_KEEPS_CAP}), its capset() fails, and nginx gives up respawning it`,
          fix: cutFix(masterBnd?.has(CAP_NET_ADMIN) ?? false),
        },
      ];
    return [{ ...base, severity: 'warn', title: `nginx master ${n.masterPid} has no worker processes`, fix: 'reload or restart nginx and check its error log' }];
  }
  const euid = (w: ProcInfo) => w.uids[1] ?? w.uids[0];
  const who = (w: ProcInfo) => (euid(w) === 0 ? 'root' : w.user ? `${w.user} (uid ${euid(w)})` : `uid ${euid(w)}`);
  const capable = (w: ProcInfo) => decodeCaps(w.capEff).has(CAP_NET_RAW) || decodeCaps(w.capEff).has(CAP_NET_ADMIN);
  const root = workers.every((w) => euid(w) === 0);
  if (workers.every(capable)) {
    const title = root
      ? keeps
        ? `nginx workers run as root: \`user root\` works but is not needed with nginx ${n.version} (>= ${NGINX_KEEPS_CAP} keeps CAP_NET_RAW for \`transparent\`)`
        : `nginx workers run as root, as nginx ${n.version} (< ${NGINX_KEEPS_CAP}) needs for \`transparent\``
      : `nginx workers run as ${who(workers[0]!)} and hold CAP_NET_RAW: \`transparent\` binds work, \`user root\` is not needed`;
    return [{ ...base, severity: 'ok', title }];
  }
  const w0 = workers.find((w) => !capable(w))!;
  const config = d.nginx.transparentLines.length > 0;
  if (euid(w0) === 0)
    return [
      {
        ...base,
        severity: 'error',
        title: 'nginx workers run as root but without CAP_NET_RAW or CAP_NET_ADMIN: the capability bounding set was cut (systemd CapabilityBoundingSet=, a container, setpriv), so setsockopt(IP_TRANSPARENT) fails',
        fix: "give nginx CAP_NET_RAW back (e.g. add CAP_NET_RAW to the unit's CapabilityBoundingSet= / AmbientCapabilities=, or the container's cap_add), then restart nginx (a reload keeps the master's bounding set)",
      },
    ];
  if (bndCut || (w0.capBnd && !decodeCaps(w0.capBnd).has(CAP_NET_RAW)))
    return [
      {
        ...base,
        severity: 'error',
        title: `nginx workers run as ${who(w0)} without CAP_NET_RAW, and CAP_NET_RAW was cut from nginx's capability bounding set (CapBnd ${d.nginx.master?.capBnd ?? w0.capBnd}): unprivileged workers cannot keep it for \`transparent\`, so setsockopt(IP_TRANSPARENT) fails`,
        fix: cutFix((masterBnd ?? decodeCaps(w0.capBnd ?? '')).has(CAP_NET_ADMIN)),
      },
    ];
  return [
    {
      ...base,
      severity: 'error',
      title: `nginx workers run as ${who(w0)} without CAP_NET_RAW: they cannot bind to client addresses (setsockopt(IP_TRANSPARENT) fails)${config && keeps ? '; the config asks for `transparent`, but the workers predate it' : ''}`,
      fix: !keeps
        ? fixApply(`put \`user root;\` in ${inv.proxy.nginx_conf} (nginx ${n.version} is older than ${NGINX_KEEPS_CAP}) and reload nginx (nginx -s reload)`)
        : config
          ? 'reload nginx (nginx -s reload): workers started from a config with `proxy_bind ... transparent` keep CAP_NET_RAW; or set `user root;`'
          : fixApply(`add \`proxy_bind $remote_addr transparent;\` to the proxied server and reload nginx (with nginx ${n.version} its workers then keep CAP_NET_RAW; \`user root;\` is the guide's alternative)`),
    },
  ];
}

function errorLog(h: HostEvidence): Finding[] {
  const logs = h.doctor?.nginx?.errorLogs ?? [];
  const read = logs.filter((l) => l.status === 'ok');
  const hits = read.flatMap((l) => l.lines.filter((x) => /setsockopt\(IP_TRANSPARENT\) failed/.test(x)).map((x) => ({ path: l.path, line: x })));
  const base = { id: 'nginx-error-log', host: h.name };
  if (hits.length) {
    const privileged = (h.doctor?.nginx?.workers ?? []).filter((w) => /worker process/.test(w.cmd)).every((w) => decodeCaps(w.capEff).has(CAP_NET_RAW) || decodeCaps(w.capEff).has(CAP_NET_ADMIN));
    const paths = [...new Set(hits.map((x) => x.path))].join(', ');
    return [
      {
        ...base,
        severity: privileged ? 'warn' : 'error',
        title: `${hits.length} \`setsockopt(IP_TRANSPARENT) failed\` line(s) in the last ${ERROR_LOG_TAIL} lines of ${paths}${privileged ? ' (the current workers hold CAP_NET_RAW: the lines may predate them)' : ''}`,
        evidence: hits.slice(-5).map((x) => `${x.path}: ${x.line}`),
        fix: privileged
          ? 'if new lines keep coming, reload nginx (nginx -s reload) and check that every worker holds CAP_NET_RAW (see nginx-workers)'
          : "give the workers CAP_NET_RAW (see nginx-workers): the guide's \"Run as root\" (`user root;` in nginx.conf), or with nginx >= 1.13.8 a loaded `proxy_bind ... transparent`; workers that already run as root lack it only when nginx's capability bounding set was cut; then reload (or restart) nginx",
      },
    ];
  }
  if (read.length)
    return [{ ...base, severity: 'ok', title: `no \`setsockopt(IP_TRANSPARENT) failed\` in the last ${ERROR_LOG_TAIL} lines of ${read.map((l) => l.path).join(', ')}`, evidence: [] }];
  return [
    {
      ...base,
      severity: 'info',
      title: "could not read nginx's error log",
      evidence: logs.map((l) => `${l.path}: ${l.status}`),
      fix: 'run doctor as a user that can read the error log (root), or look for `setsockopt(IP_TRANSPARENT) failed` in it by hand',
    },
  ];
}

function pings(inv: Inventory, h: HostEvidence): Finding[] {
  const ps = h.doctor?.pings ?? [];
  const line = (p: (typeof ps)[number]) => `ping -c 1 ${p.address} (${p.what}): ${p.ok ? `reply${p.rttMs !== undefined ? ` in ${p.rttMs} ms` : ''}` : 'no reply (twice, 1 s each)'}`;
  const ups = ps.filter((p) => inv.upstreams.some((u) => u.ip === p.address));
  const clients = ps.filter((p) => !ups.includes(p));
  const out: Finding[] = [];
  const badUp = ups.filter((p) => !p.ok);
  out.push(
    badUp.length
      ? {
          id: 'ping-upstreams',
          host: h.name,
          severity: 'error',
          title: `the proxy cannot ping ${badUp.map((p) => p.what.replace(/^upstream /, '')).join(', ')}`,
          evidence: ups.map(line),
          fix: `check the link and addresses between the proxy's ${inv.proxy.private_interface} (${inv.proxy.private_ip}) and each upstream (ip addr, ip route on both sides), and that no firewall drops ICMP`,
        }
      : { id: 'ping-upstreams', host: h.name, severity: 'ok', title: `the proxy pings every upstream (${ups.length})`, evidence: ups.map(line) },
  );
  if (clients.length) {
    const bad = clients.filter((p) => !p.ok);
    out.push(
      bad.length
        ? {
            id: 'ping-clients',
            host: h.name,
            severity: 'warn',
            title: `the proxy cannot ping the client address${bad.length > 1 ? 'es' : ''} ${bad.map((p) => p.address).join(', ')}`,
            evidence: clients.map(line),
            fix: `check the proxy's route to the clients (ip route get ${bad[0]!.address}) and its ${inv.proxy.public_interface} link; a client that drops ICMP also fails this`,
          }
        : { id: 'ping-clients', host: h.name, severity: 'ok', title: `the proxy pings the client address${clients.length > 1 ? 'es' : ''} ${clients.map((p) => p.address).join(', ')}`, evidence: clients.map(line) },
    );
  }
  return out;
}

function overlap(inv: Inventory, h: HostEvidence): Finding[] {
  const clients = clientNetworks(inv);
  if (!clients.length)
    return h.role === 'proxy'
      ? [
          {
            id: 'overlap',
            host: h.name,
            severity: 'info',
            title: 'no client network known: overlapping ranges not checked',
            evidence: [],
            fix: 'list the clients\' networks in service.client_networks (or set verify.probe.expect_source) so that doctor can check the guide\'s "No Overlapping IP Ranges"',
          },
        ]
      : [];
  const subnets = connectedSubnets(h.facts!);
  const relevant = h.role === 'proxy' ? subnets.filter((s) => s.iface === inv.proxy.private_interface) : subnets;
  const clash = clients.flatMap((c) => relevant.filter((s) => overlaps(c.net, s.subnet)).map((s) => ({ c, s })));
  const where = h.role === 'proxy' ? `the proxy's private network (${inv.proxy.private_interface})` : `${h.name}'s connected networks`;
  const evidence = [
    ...clients.map((c) => `client ${c.net} (${c.from})`),
    ...relevant.map((s) => `${h.name} ${s.iface}: ${s.address} -> connected ${s.subnet}`),
  ];
  if (!clash.length) return [{ id: 'overlap', host: h.name, severity: 'ok', title: `client networks do not overlap ${where}`, evidence }];
  return [
    {
      id: 'overlap',
      host: h.name,
      severity: 'error',
      title: `client network ${clash.map((x) => `${x.c.net} overlaps ${x.s.subnet} on ${x.s.iface}`).join('; ')}: reverse path filtering may drop the proxy's packets and replies go straight to the client (the guide's "No Overlapping IP Ranges")`,
      evidence,
      fix: 'renumber so that the clients\' subnets are not directly connected to the upstreams (or to the proxy\'s private side): move the upstreams to a private range of their own, or take the address off that interface',
    },
  ];
}

/** An interface's effective rp_filter: the kernel uses max(all, iface). */
function effectiveRp(d: DoctorOutput, iface: string): number | undefined {
  const own = d.rpFilter[iface];
  const all = d.rpFilter.all;
  if (own === undefined && all === undefined) return undefined;
  return Math.max(own ?? 0, all ?? 0);
}

function rpFilter(inv: Inventory, h: HostEvidence): Finding[] {
  const d = h.doctor!;
  const ifaces =
    h.role === 'proxy'
      ? [inv.proxy.public_interface, inv.proxy.private_interface]
      : [h.upstream!.interface ?? ifaceOf(h.facts!, h.upstream!.ip)].filter((x): x is string => !!x);
  const vals = ifaces.map((i) => ({ i, own: d.rpFilter[i], eff: effectiveRp(d, i) }));
  const evidence = [
    `net.ipv4.conf.all.rp_filter = ${d.rpFilter.all ?? '?'}`,
    ...vals.map((v) => `net.ipv4.conf.${v.i}.rp_filter = ${v.own ?? '(no such interface)'}${v.eff !== undefined && v.eff !== v.own ? ` (effective ${v.eff}: max of all and ${v.i})` : ''}`),
  ];
  const strict = vals.filter((v) => v.eff === 1);
  if (!strict.length) return [{ id: 'rp-filter', host: h.name, severity: 'ok', title: `reverse path filtering is not strict on ${ifaces.join(', ') || 'the interfaces involved'}`, evidence }];
  const sets = [...(d.rpFilter.all === 1 ? ['all'] : []), ...strict.filter((v) => v.own === 1).map((v) => v.i)];
  return [
    {
      id: 'rp-filter',
      host: h.name,
      severity: 'warn',
      title: `strict reverse path filtering (rp_filter=1) on ${strict.map((v) => v.i).join(', ')}: a silent culprit when packets go missing (the guide's "Missing Packets")`,
      evidence,
      fix: `${sets.map((s) => `sysctl -w net.ipv4.conf.${s}.rp_filter=0`).join('; ')} (or =2, loose); the guide disables it everywhere: ${GUIDE_RP_FILTER_FIX}`,
    },
  ];
}

function upstreamRouting(inv: Inventory, h: HostEvidence): Finding[] {
  const f = h.facts!;
  const u = h.upstream!;
  const gw = inv.proxy.private_ip;
  const routes = mainRoutes(f);
  const table = routes.map(formatRoute);
  const dev = routes.find((r) => r.scope === 'link' && r.dev && routeDstCidr(r) && overlaps(routeDstCidr(r)!, `${gw}/32`))?.dev ?? u.interface ?? 'IFACE';
  const out: Finding[] = [];
  const defaults = routes.filter((r) => r.dst === 'default').sort((a, b) => (a.metric ?? 0) - (b.metric ?? 0));
  const def = defaults[0];
  const viaProxy = (r: IpRoute) => r.gateway === gw || (Array.isArray(r.nexthops) && (r.nexthops as { gateway?: string }[]).every((n) => n.gateway === gw));
  if (inv.mode === 'dsr-origin-nat') {
    out.push({
      id: 'upstream-default-route',
      host: h.name,
      severity: def ? 'ok' : 'warn',
      title: def ? `origin NAT: replies leave by ${h.name}'s own default route (${formatRoute(def)}), not through the proxy` : `${h.name} has no default route: replies to clients outside its connected networks cannot leave`,
      evidence: ['ip route (table main):', ...table.map((l) => `  ${l}`)],
      ...(def ? {} : { fix: `ip route add default via ROUTER dev ${u.interface ?? dev}` }),
    });
  } else if (!def || !viaProxy(def)) {
    out.push({
      id: 'upstream-default-route',
      host: h.name,
      severity: 'error',
      title: def
        ? `default route goes via ${def.gateway ?? def.dev}, not via the proxy (${gw}): replies to clients bypass the proxy (${inv.mode} needs every egress packet routed through it)`
        : `no default route: replies to clients have no way back through the proxy (${gw})`,
      evidence: ['ip route (table main):', ...table.map((l) => `  ${l}`)],
      fix: fixApply(`ip route replace default via ${gw} dev ${dev}`),
    });
  } else out.push({ id: 'upstream-default-route', host: h.name, severity: 'ok', title: `default route via the proxy (${formatRoute(def)})`, evidence: ['ip route (table main):', ...table.map((l) => `  ${l}`)] });

  // more specific routes to the clients that do not go through the proxy
  const clients = clientNetworks(inv);
  if (inv.mode !== 'dsr-origin-nat' && clients.length) {
    const bypass = routes.filter((r) => {
      const dst = routeDstCidr(r);
      if (!dst || r.dst === 'default' || viaProxy(r)) return false;
      if (r.protocol === 'kernel' && r.scope === 'link') return false; // connected: the overlap finding
      return clients.some((c) => overlaps(c.net, dst));
    });
    out.push(
      bypass.length
        ? {
            id: 'upstream-client-route',
            host: h.name,
            severity: 'error',
            title: `more specific route${bypass.length > 1 ? 's' : ''} to the clients bypass the proxy: ${bypass.map(formatRoute).join('; ')}`,
            evidence: [...clients.map((c) => `client ${c.net} (${c.from})`), ...bypass.map((r) => `route: ${formatRoute(r)}`)],
            fix: `${bypass.map((r) => `ip route del ${r.dst}${r.dev ? ` dev ${r.dev}` : ''}`).join('; ')} (or point it via ${gw}): in ${inv.mode} replies must go through the proxy`,
          }
        : { id: 'upstream-client-route', host: h.name, severity: 'ok', title: `no route to the clients bypasses the default route (${clients.map((c) => c.net).join(', ')})`, evidence: [] },
    );
  }
  return out;
}

function iptablesMixed(h: HostEvidence): Finding[] {
  const { legacy, nft } = h.doctor!.iptables;
  const f = h.facts!;
  if (!legacy.available && !nft.available) return [];
  const count = (b: typeof legacy, name: string) => (b.available ? (b.rc === 0 ? `${name}: ${b.rules.length} rule(s)` : `${name}: failed (exit ${b.rc}; not root?)`) : `${name}: not installed`);
  const evidence = [
    `\`iptables\` is ${f.iptables.variant ?? 'not installed'}${f.iptables.variant ? ` (iptables -V)` : ''}`,
    count(legacy, 'iptables-legacy-save'),
    count(nft, 'iptables-nft-save'),
    ...nft.warnings,
    ...legacy.rules.slice(0, 10).map((r) => `legacy ${r}`),
    ...(legacy.rules.length > 10 ? [`legacy ... ${legacy.rules.length - 10} more`] : []),
    ...nft.rules.slice(0, 10).map((r) => `nft ${r}`),
    ...(nft.rules.length > 10 ? [`nft ... ${nft.rules.length - 10} more`] : []),
  ];
  if (legacy.rules.length && nft.rules.length)
    return [
      {
        id: 'iptables-mixed',
        host: h.name,
        severity: 'warn',
        title: `iptables rules in both backends (legacy ${legacy.rules.length}, nft ${nft.rules.length}): both apply to every packet, and \`iptables\` (${f.iptables.variant ?? '?'}) shows only one of them`,
        evidence,
        fix: `keep one backend: move the ${f.iptables.variant === 'nft' ? 'legacy' : 'nft'} rules over (e.g. iptables-${f.iptables.variant === 'nft' ? 'legacy' : 'nft'}-save > rules.v4; iptables-${f.iptables.variant ?? 'nft'}-restore --noflush < rules.v4) and flush the other (iptables-${f.iptables.variant === 'nft' ? 'legacy' : 'nft'} -F per table)`,
      },
    ];
  const other = f.iptables.variant === 'nft' ? legacy : f.iptables.variant === 'legacy' ? nft : null;
  if (other && other.rules.length)
    return [
      {
        id: 'iptables-mixed',
        host: h.name,
        severity: 'info',
        title: `iptables rules live only in the ${f.iptables.variant === 'nft' ? 'legacy' : 'nft'} backend, while \`iptables\` is ${f.iptables.variant}: \`iptables -L\` does not show them`,
        evidence,
      },
    ];
  return [{ id: 'iptables-mixed', host: h.name, severity: 'ok', title: 'iptables-legacy and iptables-nft are not mixed', evidence }];
}

function natBackend(inv: Inventory, h: HostEvidence): Finding[] {
  const f = h.facts!;
  const portRewrite = inv.service.listen_port !== inv.service.upstream_port;
  const evidence = [
    `kernel ${f.kernel} (${kernelAtLeast(f.kernel, 5, 16) ? '>= 5.16: netdev egress hook' : '< 5.16: no netdev egress hook'})`,
    `act_nat: ${f.nat.actNat}`,
    `tc: ${f.nat.tc ? 'installed' : 'not installed'}`,
    `nft: ${f.nat.nft ? 'installed' : 'not installed'}`,
    `nat.backend: ${inv.nat.backend}${portRewrite ? ` (ports ${inv.service.listen_port} != ${inv.service.upstream_port}: the source port must be rewritten too)` : ''}`,
  ];
  try {
    const c = chooseNatBackend(inv.nat.backend, f, portRewrite, h.name);
    return [{ id: 'nat-backend', host: h.name, severity: 'ok', title: `stateless NAT backend available: ${c.backend === 'tc' ? 'tc action nat' : 'nftables netdev egress'} (${c.reason})`, evidence }];
  } catch (e) {
    return [
      {
        id: 'nat-backend',
        host: h.name,
        severity: 'error',
        title: (e as Error).message.replace(/^[^:]*: /, ''),
        evidence,
        fix: 'install nftables on a kernel >= 5.16 (netdev egress), or tc (iproute2) on a kernel with act_nat (CONFIG_NET_ACT_NAT, Debian: linux-image-amd64), and set nat.backend to match',
      },
    ];
  }
}

function proxySysctls(inv: Inventory, h: HostEvidence): Finding[] {
  const s = h.doctor!.sysctl;
  const out: Finding[] = [];
  // the playbooks: router NAT forwards the replies; Method 1 forwards only for masquerade; origin NAT never
  const needForward = needsForwarding(inv);
  const why = inv.mode === 'dsr-origin-nat' ? 'the replies never cross the proxy' : 'replies are delivered to nginx locally';
  const fwd = s.ip_forward;
  if (fwd !== undefined) {
    const ev = [`net.ipv4.ip_forward = ${fwd}`];
    if (needForward && fwd !== '1')
      out.push({
        id: 'ip-forward',
        host: h.name,
        severity: 'error',
        title: `IP forwarding is off: ${inv.mode === 'dsr-router-nat' ? 'the upstreams\' replies cannot be routed to the clients' : 'masquerade cannot let the upstreams reach external hosts'}`,
        evidence: ev,
        fix: fixApply('sysctl -w net.ipv4.ip_forward=1'),
      });
    else if (!needForward && fwd === '1')
      out.push({
        id: 'ip-forward',
        host: h.name,
        severity: 'warn',
        title: `IP forwarding is on, though ${inv.mode}${inv.mode === 'ip-transparency' ? ' without masquerade' : ''} does not need it (${why}): anyone on the public side who routes ${inv.proxy.private_interface}'s network via the proxy reaches the upstreams directly`,
        evidence: ev,
        fix: `sysctl -w net.ipv4.ip_forward=0 (and take it out of /etc/sysctl.conf, /etc/sysctl.d), unless this host routes for something else; or set proxy.masquerade: true if the upstreams must reach external hosts (dsrctl then limits forwarding to their traffic)`,
      });
    else
      out.push({
        id: 'ip-forward',
        host: h.name,
        severity: 'ok',
        title: needForward ? 'IP forwarding is on' : `IP forwarding is off, as ${inv.mode}${inv.mode === 'ip-transparency' ? ' without masquerade' : ''} wants (${why})`,
        evidence: ev,
      });
    if (needForward && fwd === '1' && !h.facts!.iptables.error && h.facts!.iptables.variant) {
      const cur = currentForwardFilter(h.facts!);
      const filterEv = [
        cur.jumpAt !== null ? `iptables -t filter: FORWARD rule ${cur.jumpAt} jumps to ${FORWARD_CHAIN}` : `iptables -t filter: no jump to ${FORWARD_CHAIN} in FORWARD`,
        ...cur.rules.map((r) => `iptables -t filter: -A ${FORWARD_CHAIN} ${r.join(' ')}`),
      ];
      out.push(
        cur.exists && cur.jumpAt !== null
          ? { id: 'forward-filter', host: h.name, severity: 'ok', title: `forwarding between ${inv.proxy.private_interface} and ${inv.proxy.public_interface} is limited to what ${inv.mode} needs (${FORWARD_CHAIN})`, evidence: filterEv }
          : {
              id: 'forward-filter',
              host: h.name,
              severity: 'warn',
              title: `forwarding is not limited: anyone on the public side who routes ${inv.proxy.private_interface}'s network via the proxy reaches the upstreams directly`,
              evidence: filterEv,
              fix: "run `dsrctl apply -i INVENTORY`: it forwards only the upstreams' replies (and with masquerade their outbound traffic) in a chain of its own",
            },
      );
    }
  }
  if (inv.mode === 'dsr-router-nat' && s.udp_early_demux !== undefined) {
    const ev = [`net.ipv4.udp_early_demux = ${s.udp_early_demux}`];
    out.push(
      s.udp_early_demux !== '0'
        ? {
            id: 'udp-early-demux',
            host: h.name,
            severity: 'warn',
            title: "UDP early demux is on: forwarded replies that match nginx's still-open transparent socket are delivered locally instead of forwarded (measured in the lab: 2-7 of 30 DNS replies lost)",
            evidence: ev,
            fix: fixApply('sysctl -w net.ipv4.udp_early_demux=0'),
          }
        : { id: 'udp-early-demux', host: h.name, severity: 'ok', title: 'UDP early demux is off: forwarded replies are not captured by nginx\'s transparent sockets', evidence: ev },
    );
  }
  return out;
}

/** Method 1 on the proxy: fwmark rule, local route in table 100, mangle MARK per upstream. */
function policyRouting(inv: Inventory, h: HostEvidence): Finding[] {
  const f = h.facts!;
  const rule = f.rules.find((r) => r.fwmark !== undefined && Number(r.fwmark) === 1 && r.table === '100');
  const local = f.routes.find((r) => r.table === '100' && r.type === 'local' && r.dst === 'default');
  const mangle = f.iptables.tables.mangle?.rules ?? [];
  const l4 = inv.service.protocol === 'udp' ? 'udp' : 'tcp';
  const marked = (ip: string) => mangle.some((r) => r.includes(`-s ${ip}/32`) && /-j MARK/.test(r) && r.includes(`--sport ${inv.service.upstream_port}`));
  const unmarked = inv.upstreams.filter((u) => !marked(u.ip));
  const evidence = [
    `ip rule: ${rule ? `${rule.priority}: from ${rule.src ?? 'all'} fwmark ${rule.fwmark} lookup ${rule.table}` : 'no `fwmark 0x1 lookup 100` rule'}`,
    `ip route show table 100: ${local ? formatRoute(local) : 'no `local default dev lo`'}`,
    ...(mangle.length ? mangle.map((r) => `iptables -t mangle: ${r}`) : ['iptables -t mangle: no rules']),
  ];
  const missing = [
    ...(rule ? [] : ['ip rule add fwmark 1 lookup 100']),
    ...(local ? [] : ['ip route add local 0.0.0.0/0 dev lo table 100']),
    ...(unmarked.length === 1
      ? [`iptables -t mangle -A PREROUTING -p ${l4} -s ${unmarked[0]!.ip} --sport ${inv.service.upstream_port} -j MARK --set-xmark 0x1/0xffffffff`]
      : unmarked.length
        ? [`for s in ${unmarked.map((u) => u.ip).join(' ')}; do iptables -t mangle -A PREROUTING -p ${l4} -s $s --sport ${inv.service.upstream_port} -j MARK --set-xmark 0x1/0xffffffff; done`]
        : []),
  ];
  if (!missing.length) return [{ id: 'proxy-policy-routing', host: h.name, severity: 'ok', title: "the upstreams' replies are marked and delivered to nginx (fwmark rule, table 100, mangle MARK)", evidence }];
  return [
    {
      id: 'proxy-policy-routing',
      host: h.name,
      severity: 'error',
      title: `replies from the upstreams do not reach nginx's transparent sockets: missing ${[!rule && 'the fwmark rule', !local && 'the local route in table 100', unmarked.length && `the MARK rule for ${unmarked.map((u) => u.name).join(', ')}`].filter(Boolean).join(', ')}`,
      evidence,
      fix: fixApply(missing.join('; ')),
    },
  ];
}

// ---------------------------------------------------------------------------------------------

/** Every finding for every host, in inventory order (proxy first). Pure. */
export function diagnose(inv: Inventory, hosts: HostEvidence[]): Finding[] {
  const out: Finding[] = [];
  for (const h of hosts) {
    if (!h.facts || !h.doctor) {
      out.push({
        id: 'reach',
        host: h.name,
        severity: 'error',
        title: `could not examine ${h.name}`,
        evidence: [h.error ?? 'unknown error'],
        fix: 'check the SSH settings of this host in the inventory and that it is up (dsrctl verify uses the same connection)',
      });
      continue;
    }
    out.push(...dsrctlState(h));
    if (h.role === 'proxy') {
      out.push(...nginxWorkers(inv, h), ...portConflicts(inv, h));
      if (h.facts.nginx.running) out.push(...errorLog(h));
      out.push(...pings(inv, h), ...overlap(inv, h), ...rpFilter(inv, h), ...proxySysctls(inv, h));
      if (inv.mode === 'ip-transparency') out.push(...policyRouting(inv, h));
      if (inv.mode === 'dsr-router-nat') out.push(...natBackend(inv, h));
      out.push(...iptablesMixed(h));
    } else {
      out.push(...upstreamRouting(inv, h), ...overlap(inv, h), ...rpFilter(inv, h));
      if (inv.mode === 'dsr-origin-nat') out.push(...natBackend(inv, h));
      out.push(...iptablesMixed(h));
    }
  }
  return out;
}
