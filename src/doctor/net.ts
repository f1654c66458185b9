/** Addresses, networks and routes as doctor compares them. Pure. */
import ipaddr from 'ipaddr.js';
import type { Inventory } from '../inventory/schema.js';
import type { HostFacts, IpRoute } from '../facts/types.js';

/** "a.b.c.d/n" for an address or CIDR. */
export function cidr(s: string): string {
  return s.includes('/') ? s : `${s}/32`;
}

export function parseCidr(s: string): [ipaddr.IPv4, number] {
  const [a, l] = cidr(s).split('/');
  return [ipaddr.IPv4.parse(a!), Number(l)];
}

/** Do two IPv4 networks share an address? */
export function overlaps(a: string, b: string): boolean {
  const [aa, al] = parseCidr(a);
  const [ba, bl] = parseCidr(b);
  return al <= bl ? ba.match(aa, al) : aa.match(ba, bl);
}

export function routeDstCidr(r: IpRoute): string | null {
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

export function mainRoutes(f: HostFacts): IpRoute[] {
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
export function ifaceOf(f: HostFacts, ip: string): string | undefined {
  return f.interfaces.find((i) => i.addresses.some((a) => a.address === ip))?.name;
}

/** The client addresses doctor knows of: client_networks and the probe's expected source. */
export function clientNetworks(inv: Inventory): { net: string; from: string }[] {
  const out = (inv.service.client_networks ?? []).map((n) => ({ net: cidr(n), from: 'service.client_networks' }));
  const src = inv.verify.probe?.expect_source;
  if (src && !out.some((o) => o.net === `${src}/32`)) out.push({ net: `${src}/32`, from: 'verify.probe.expect_source' });
  return out;
}
