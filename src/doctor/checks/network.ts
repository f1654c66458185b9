/** Reachability and routing: pings, overlapping networks, rp_filter, the upstreams' default route, the proxy's policy routing. Pure: evidence in, findings out. */
import ipaddr from 'ipaddr.js';
import type { Inventory, Upstream } from '../../inventory/schema.js';
import type { HostFacts, IpRoute } from '../../facts/types.js';
import { chooseNatBackend, kernelAtLeast } from '../../resources/nat-backend.js';
import { currentForwardFilter, FORWARD_CHAIN, needsForwarding } from '../../resources/forward-filter.js';
import { CAP_NET_ADMIN, CAP_NET_RAW, NGINX_KEEPS_CAP, decodeCaps, versionAtLeast } from '../../resources/nginx/user-decision.js';
import type { DoctorOutput, ProcInfo } from '../collect.js';
import { ERROR_LOG_TAIL } from '../collect.js';
import type { Finding } from '../types.js';
import { conflictFixes, describeConflict, serviceConflicts, type ServiceConflicts } from '../../resources/nginx-port.js';

import type { HostEvidence } from '../findings.js';
import { fixApply, procText, GUIDE_RP_FILTER_FIX } from './common.js';
import { cidr, parseCidr, overlaps, routeDstCidr, formatRoute, mainRoutes, connectedSubnets, ifaceOf, clientNetworks } from '../net.js';

export function pings(inv: Inventory, h: HostEvidence): Finding[] {
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

export function overlap(inv: Inventory, h: HostEvidence): Finding[] {
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

export function rpFilter(inv: Inventory, h: HostEvidence): Finding[] {
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

export function upstreamRouting(inv: Inventory, h: HostEvidence): Finding[] {
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

/** Method 1 on the proxy: fwmark rule, local route in table 100, mangle MARK per upstream. */
export function policyRouting(inv: Inventory, h: HostEvidence): Finding[] {
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
