import type { Inventory, SshOptions } from '../inventory/schema.js';
import type { ConnectTarget } from './types.js';
import { UserError } from '../util/errors.js';

/** Host-level ssh settings override the inventory's `ssh:` defaults field by field. */
export function connectTarget(name: string, host: string, defaults: SshOptions, own: SshOptions | undefined, fieldPrefix: string): ConnectTarget {
  const o = { ...defaults, ...(own ?? {}) };
  if (!o.known_hosts) throw new UserError(`${fieldPrefix}.known_hosts (or ssh.known_hosts): required; dsrctl never accepts an unknown host key`);
  if (!o.private_key && !o.password && !o.agent && !process.env.SSH_AUTH_SOCK)
    throw new UserError(`${fieldPrefix}: no way to authenticate (set ssh.private_key, ssh.password, or ssh.agent / SSH_AUTH_SOCK)`);
  return {
    name,
    host,
    port: o.port ?? 22,
    user: o.user ?? 'root',
    privateKey: o.private_key,
    passphrase: o.passphrase,
    password: o.password,
    agent: o.agent ?? (o.private_key || o.password ? undefined : process.env.SSH_AUTH_SOCK),
    knownHosts: o.known_hosts,
    connectTimeoutMs: (o.connect_timeout ?? 10) * 1000,
  };
}

/** The proxy and every upstream, in inventory order. */
export function inventoryTargets(inv: Inventory): ConnectTarget[] {
  return [
    connectTarget('proxy', inv.proxy.ssh_host, inv.ssh, inv.proxy.ssh, 'proxy.ssh'),
    ...inv.upstreams.map((u, i) => connectTarget(u.name, u.ssh_host, inv.ssh, u.ssh, `upstreams[${i}].ssh`)),
  ];
}

export function probeTarget(inv: Inventory): ConnectTarget | undefined {
  const p = inv.verify.probe;
  return p ? connectTarget('probe', p.ssh_host, inv.ssh, p.ssh, 'verify.probe.ssh') : undefined;
}
