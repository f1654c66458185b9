/**
 * Can the proxy reach each upstream on its private interface? nginx connects to the upstreams
 * from the private address and the upstreams' replies must come back on that link (their default
 * route points at the proxy's private address), so every upstream address must sit inside a
 * network directly connected to proxy.private_interface. Pure: facts in, what is wrong out.
 */
import ipaddr from 'ipaddr.js';
import type { HostFacts } from '../facts/types.js';

/** Networks directly connected to an interface: its IPv4 address prefixes and its link routes. */
export function connectedNetworks(facts: Pick<HostFacts, 'interfaces' | 'routes'>, iface: string): string[] {
  const nets = new Set<string>();
  const i = facts.interfaces.find((x) => x.name === iface);
  for (const a of i?.addresses ?? [])
    if (a.family === 'inet') nets.add(`${ipaddr.IPv4.networkAddressFromCIDR(`${a.address}/${a.prefixlen}`).toString()}/${a.prefixlen}`);
  for (const r of facts.routes)
    if (r.dev === iface && !r.gateway && (r.table ?? 'main') === 'main' && (r.type ?? 'unicast') === 'unicast' && r.scope === 'link' && r.dst !== 'default')
      nets.add(r.dst.includes('/') ? r.dst : `${r.dst}/32`);
  return [...nets];
}

export function insideAny(address: string, nets: string[]): boolean {
  if (!ipaddr.IPv4.isValidFourPartDecimal(address)) return false;
  const a = ipaddr.IPv4.parse(address);
  return nets.some((n) => {
    const [net, len] = n.split('/');
    return a.match(ipaddr.IPv4.parse(net!), Number(len));
  });
}

export interface Unreachable {
  name: string;
  ip: string;
}

/**
 * The upstreams outside every network connected to the private interface. Undefined when the facts
 * do not show that interface at all (nothing to compare with; the interface's own checks say so).
 */
export function unreachableUpstreams(
  facts: Pick<HostFacts, 'interfaces' | 'routes'>,
  privateInterface: string,
  upstreams: { name: string; ip: string }[],
): { networks: string[]; outside: Unreachable[] } | undefined {
  if (!facts.interfaces.some((i) => i.name === privateInterface)) return undefined;
  const networks = connectedNetworks(facts, privateInterface);
  return { networks, outside: upstreams.filter((u) => !insideAny(u.ip, networks)).map((u) => ({ name: u.name, ip: u.ip })) };
}

/** The error text: every address outside, and the networks the interface does have. */
export function unreachableMessage(privateInterface: string, r: { networks: string[]; outside: Unreachable[] }): string {
  const nets = r.networks.length ? `its connected network${r.networks.length === 1 ? ' is' : 's are'} ${r.networks.join(', ')}` : 'it has no IPv4 network';
  return [
    `upstream address${r.outside.length === 1 ? '' : 'es'} ${r.outside.map((u) => `${u.ip} (${u.name})`).join(', ')} ${r.outside.length === 1 ? 'is' : 'are'} not on the proxy's private interface ${privateInterface}: ${nets}.`,
    `The proxy reaches the upstreams, and their replies come back, only on a network connected to ${privateInterface}. Nothing was changed.`,
    `Fix upstreams[].ip (their addresses on that network) or proxy.private_interface.`,
  ].join('\n');
}
