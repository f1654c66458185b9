/**
 * The guide's Troubleshooting, applied to the wizard's answers and the facts it read: warnings
 * about client networks that overlap the upstreams' ("No Overlapping IP Ranges") and about strict
 * reverse path filtering ("Missing Packets"). Pure: answers and facts in, lines of text out.
 */
import ipaddr from 'ipaddr.js';
import type { HostFacts } from '../facts/types.js';
import type { Mode } from './questions.js';

export interface HostNet {
  /** "proxy", "dev1" */
  name: string;
  /** IPv4 addresses per interface (loopback left out) */
  interfaces: { name: string; state: string; addresses: { address: string; prefixlen: number }[] }[];
  /** rp_filter values read: "all", "default" and interface names */
  rpFilter: Record<string, number>;
  /** device of the main table's default route, when there is one */
  defaultDev?: string;
}

/** The sysctl keys the wizard asks the facts script for: all, default and each interface. */
export function rpFilterKeys(interfaces: string[]): string[] {
  return ['all', 'default', ...interfaces].map((i) => `net.ipv4.conf.${i.replace(/\./g, '/')}.rp_filter`);
}

/** The wizard's view of one host's facts. */
export function hostNet(name: string, facts: HostFacts): HostNet {
  const rpFilter: Record<string, number> = {};
  for (const [key, value] of Object.entries(facts.sysctl)) {
    const m = /^net\.ipv4\.conf\.(.+)\.rp_filter$/.exec(key);
    if (m && /^\d+$/.test(value.trim())) rpFilter[m[1]!.replace(/\//g, '.')] = Number(value.trim());
  }
  const def = facts.routes.find((r) => r.dst === 'default' && (r.table ?? 'main') === 'main' && (r.type ?? 'unicast') === 'unicast');
  return {
    name,
    interfaces: facts.interfaces
      .filter((i) => i.linkType !== 'loopback' && i.name !== 'lo')
      .map((i) => ({
        name: i.name,
        state: i.state,
        addresses: i.addresses.filter((a) => a.family === 'inet').map((a) => ({ address: a.address, prefixlen: a.prefixlen })),
      })),
    rpFilter,
    ...(def?.dev ? { defaultDev: def.dev } : {}),
  };
}

/** "172.16.0.0/24" for 172.16.0.11/24 */
export function subnetOf(address: string, prefixlen: number): string {
  return `${ipaddr.IPv4.networkAddressFromCIDR(`${address}/${prefixlen}`).toString()}/${prefixlen}`;
}

function parseNet(net: string): [ipaddr.IPv4, number] {
  const [a, l] = net.includes('/') ? net.split('/') : [net, '32'];
  return [ipaddr.IPv4.parse(a!), Number(l)];
}

/** Do two networks (CIDR or single addresses) share any address? */
export function overlaps(a: string, b: string): boolean {
  const [aa, al] = parseNet(a);
  const [ba, bl] = parseNet(b);
  return aa.match(ba, Math.min(al, bl));
}

/** The interface (and its prefix) that holds an address, from facts. */
export function interfaceOf(host: HostNet, address: string): { name: string; prefixlen: number } | undefined {
  for (const i of host.interfaces) {
    const a = i.addresses.find((x) => x.address === address);
    if (a) return { name: i.name, prefixlen: a.prefixlen };
  }
  return undefined;
}

/** Effective rp_filter of an interface: the kernel uses the larger of conf.all and conf.<if>. */
export function effectiveRpFilter(host: HostNet, iface: string): number | undefined {
  const all = host.rpFilter.all;
  const own = host.rpFilter[iface];
  if (all === undefined && own === undefined) return undefined;
  return Math.max(all ?? 0, own ?? 0);
}

export interface NetworkAnswers {
  mode: Mode;
  clientNetworks: string[];
  proxy: { public_ip?: string; public_interface?: string; private_ip?: string; private_interface?: string; facts?: HostNet };
  upstreams: { name: string; ip: string; interface?: string; facts?: HostNet }[];
}

const GUIDE_OVERLAP = 'the guide\'s "No Overlapping IP Ranges"';
const RP_TEST = 'for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f; done';

/** Warnings, one line each, most serious first. */
export function networkWarnings(a: NetworkAnswers): string[] {
  const out: string[] = [];
  const px = a.proxy.facts;
  const pub = px && a.proxy.public_ip ? interfaceOf(px, a.proxy.public_ip) : undefined;
  const priv = px && a.proxy.private_ip ? interfaceOf(px, a.proxy.private_ip) : undefined;

  // where clients come from: the networks given, and the proxy's public subnet (the guide's clients live there)
  const clients: { net: string; what: string }[] = a.clientNetworks.map((n) => ({ net: n, what: `the client network ${n}` }));
  if (pub && a.proxy.public_ip) {
    const net = subnetOf(a.proxy.public_ip, pub.prefixlen);
    if (!clients.some((c) => c.net === net)) clients.push({ net, what: `the proxy's public subnet ${net}` });
  }

  if (px && a.proxy.public_ip && !pub) out.push(`proxy: ${a.proxy.public_ip} is not an address of the proxy (its interfaces: ${describeAddrs(px)})`);
  if (px && a.proxy.private_ip && !priv) out.push(`proxy: ${a.proxy.private_ip} is not an address of the proxy (its interfaces: ${describeAddrs(px)})`);
  if (pub && a.proxy.public_interface && pub.name !== a.proxy.public_interface)
    out.push(`proxy: ${a.proxy.public_ip} is on ${pub.name}, not on the public interface ${a.proxy.public_interface}`);
  if (priv && a.proxy.private_interface && priv.name !== a.proxy.private_interface)
    out.push(`proxy: ${a.proxy.private_ip} is on ${priv.name}, not on the private interface ${a.proxy.private_interface}`);

  // the proxy's two sides
  if (pub && priv && a.proxy.public_ip && a.proxy.private_ip) {
    const pubNet = subnetOf(a.proxy.public_ip, pub.prefixlen);
    const privNet = subnetOf(a.proxy.private_ip, priv.prefixlen);
    if (overlaps(pubNet, privNet))
      out.push(`proxy: its public subnet ${pubNet} and private subnet ${privNet} overlap: clients and upstreams would share a network (${GUIDE_OVERLAP})`);
  }
  if (priv && a.proxy.private_ip) {
    const privNet = subnetOf(a.proxy.private_ip, priv.prefixlen);
    for (const c of a.clientNetworks)
      if (overlaps(c, privNet)) out.push(`proxy: the upstreams' subnet ${privNet} overlaps ${`the client network ${c}`}: replies would skip the proxy and reverse path filtering may drop packets (${GUIDE_OVERLAP})`);
  }

  // each upstream: is it directly connected to where the clients are?
  for (const u of a.upstreams) {
    if (!u.facts) continue;
    if (!interfaceOf(u.facts, u.ip)) out.push(`${u.name}: ${u.ip} is not one of its addresses (${describeAddrs(u.facts)})`);
    for (const i of u.facts.interfaces)
      for (const addr of i.addresses) {
        const net = subnetOf(addr.address, addr.prefixlen);
        for (const c of clients)
          if (overlaps(net, c.net))
            out.push(
              `${u.name}: directly connected to ${net} on ${i.name}, which overlaps ${c.what}: its replies to those clients will not take the default route through the proxy, and reverse path filtering may drop packets (${GUIDE_OVERLAP})`,
            );
      }
  }

  // reverse path filtering: the kernel drops a packet whose source it would not route back out
  // of the interface it came in by (rp_filter=1). Harmless while routes match, but the guide's
  // Troubleshooting suspects it first when packets go missing.
  const rp = (host: HostNet, iface: string | undefined, fineWhile: string, dropsNow?: string) => {
    if (!iface) return;
    if (effectiveRpFilter(host, iface) !== 1) return;
    const detail = `net.ipv4.conf.all.rp_filter=${host.rpFilter.all ?? '?'}, net.ipv4.conf.${iface}.rp_filter=${host.rpFilter[iface] ?? '?'}`;
    out.push(
      dropsNow
        ? `${host.name}: rp_filter=1 (strict) on ${iface} (${detail}) ${dropsNow}: it will drop the packets nginx sends with the clients' addresses (the guide's "Missing Packets"; to test: ${RP_TEST})`
        : `${host.name}: rp_filter=1 (strict) on ${iface} (${detail}): fine while ${fineWhile}; the guide's "Missing Packets" suspects it first when packets go missing (to test: ${RP_TEST})`,
    );
  };
  if (px) {
    const pi = a.proxy.private_interface ?? priv?.name;
    const pu = a.proxy.public_interface ?? pub?.name;
    rp(px, pi, `the upstreams are routed via ${pi} and the clients via ${pu ?? 'the public interface'}`);
    if (pu) rp(px, pu, `the clients are routed via ${pu}`);
  }
  for (const u of a.upstreams) {
    if (!u.facts) continue;
    const iface = u.interface ?? interfaceOf(u.facts, u.ip)?.name;
    if (!iface) continue;
    if (a.mode === 'dsr-origin-nat') {
      // origin NAT keeps the upstream's own routing: a client's packet arriving on this interface
      // fails the check when the route back to the client leaves by another one
      const dev = u.facts.defaultDev;
      if (dev !== undefined && dev !== iface) rp(u.facts, iface, '', `while its default route leaves by ${dev}`);
      else rp(u.facts, iface, `its default route leaves by ${iface}`);
    } else rp(u.facts, iface, `its default route goes through the proxy on ${iface} (dsrctl sets it)`);
  }
  return [...new Set(out)];
}

function describeAddrs(h: HostNet): string {
  const parts = h.interfaces.flatMap((i) => i.addresses.map((a) => `${i.name} ${a.address}/${a.prefixlen}`));
  return parts.length ? parts.join(', ') : 'no IPv4 addresses';
}
