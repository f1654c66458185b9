/** Packet filtering and NAT: iptables legacy mixed with nft, the stateless NAT backend, the proxy's sysctls and forwarding. Pure: evidence in, findings out. */
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

export function iptablesMixed(h: HostEvidence): Finding[] {
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

export function natBackend(inv: Inventory, h: HostEvidence): Finding[] {
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

export function proxySysctls(inv: Inventory, h: HostEvidence): Finding[] {
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
