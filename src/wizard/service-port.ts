/** The service port on the proxy: a server already there, upstream addresses off the private network. */
import type { Inventory } from '../inventory/schema.js';
import { describeConflict, serviceConflicts, type ServiceConflicts } from '../resources/nginx-port.js';
import { connectedNetworks, insideAny } from '../plan/upstream-reach.js';
import { defaultManagedConfig, type Choice, type Protocol } from './questions.js';
import type { WizardIo, WizardState } from './state.js';

// ------------------------------------------------------------------------------- the service port

/**
 * nginx servers already on the service's port (from the proxy's nginx -T): named with file:line,
 * and offered as the file dsrctl manages (a regular file holding all of them: backed up, replaced,
 * restored byte for byte on rollback) or taken over (proxy.take_over_port: their sites-enabled
 * links are removed and put back on rollback). Returns the default for the managed file question.
 */
export async function offerServerOnPort(io: WizardIo, state: WizardState, protocol: Protocol): Promise<string> {
  const d = state.draft;
  const def = defaultManagedConfig(protocol);
  const cfg = state.proxyFacts?.nginxConfig;
  if (cfg?.status !== 'ok' || !d.proxy?.public_ip || !d.service?.listen_port) return def;
  const inv = { service: { protocol, listen_port: d.service.listen_port }, proxy: { public_ip: d.proxy.public_ip, managed_config: def } } as unknown as Inventory;
  let found: ServiceConflicts;
  try {
    found = serviceConflicts(inv, cfg.dump, cfg.links);
  } catch {
    return def; // plan reads nginx -T again and says what is wrong with it
  }
  if (!found.conflicts.length) return def;
  io.say('');
  io.say(`On the proxy, ${found.head}`);
  for (const c of found.conflicts) io.say(`  ${describeConflict(c)}`);
  const files = [...new Set(found.conflicts.map((c) => c.listen.serverFile))];
  const own = files.length === 1 && !cfg.links[files[0]!] && found.conflicts.every((c) => c.listen.serverInclude) ? files[0] : undefined;
  const canTake = found.takeOver.sites.length > 0 && found.takeOver.refused.length === 0;
  const choices: Choice<'manage' | 'take' | 'keep'>[] = [
    ...(own ? [{ value: 'manage' as const, name: `let dsrctl manage ${own}`, description: 'it is backed up and replaced by dsrctl\'s server; rollback restores it byte for byte' }] : []),
    ...(canTake ? [{ value: 'take' as const, name: `take over the port: disable ${found.takeOver.sites.map((x) => x.link).join(', ')}`, description: 'proxy.take_over_port: true; rollback puts the links back' }] : []),
    { value: 'keep', name: `keep ${def}; I will free the port myself`, description: 'plan refuses until no other server answers on the port' },
  ];
  const pick = await io.ask.select({ message: `Port ${d.service.listen_port} is taken on the proxy: what should dsrctl do?`, choices });
  if (pick === 'manage') return own!;
  if (pick === 'take') d.proxy.take_over_port = true;
  return def;
}

/** Why an upstream address cannot be reached from the proxy's private interface, per its facts. */
export function outsidePrivate(state: WizardState, ip: string): true | string {
  const iface = state.draft.proxy?.private_interface;
  const f = state.proxyFacts;
  if (!f || !iface || !f.interfaces.some((i) => i.name === iface)) return true;
  const nets = connectedNetworks(f, iface);
  if (insideAny(ip, nets)) return true;
  return `${ip} is not on the proxy's private network: ${iface} has ${nets.length ? nets.join(', ') : 'no IPv4 network'} (the proxy reaches the upstreams only there)`;
}
