/**
 * Connect targets: built from the inventory (`ssh:` defaults, per-host settings, jump hosts), and
 * how a target is named in messages.
 */
import type { Inventory, JumpHost, SshOptions } from '../inventory/schema.js';
import type { ConnectTarget } from './types.js';
import { UserError } from '../util/errors.js';

/** `{ ...a, ...b }` where fields b leaves undefined keep a's value. */
function merge<T extends object>(a: T, b: Partial<T> | undefined): T {
  const out = { ...a };
  for (const [k, v] of Object.entries(b ?? {})) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/**
 * Host-level ssh settings override the inventory's `ssh:` defaults field by field.
 * `jump: proxy` needs `proxy`: the proxy's own target, whose connection then carries the tunnel.
 * `isProxy`: this is the proxy itself, to which a default `jump: proxy` does not apply.
 */
export function connectTarget(
  name: string,
  host: string,
  defaults: SshOptions,
  own: SshOptions | undefined,
  fieldPrefix: string,
  jumpVia?: { proxy?: () => ConnectTarget; isProxy?: boolean },
): ConnectTarget {
  const o = merge(defaults, own);
  if (!o.known_hosts) throw new UserError(`${fieldPrefix}.known_hosts (or ssh.known_hosts): required; dsrctl never accepts an unknown host key`);
  if (!o.private_key && !o.password && !o.agent && !process.env.SSH_AUTH_SOCK)
    throw new UserError(`${fieldPrefix}: no way to authenticate (set ssh.private_key, ssh.password, or ssh.agent / SSH_AUTH_SOCK)`);
  const t: ConnectTarget = {
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
    fields: {
      privateKey: own?.private_key !== undefined ? `${fieldPrefix}.private_key` : 'ssh.private_key',
      knownHosts: own?.known_hosts !== undefined ? `${fieldPrefix}.known_hosts` : 'ssh.known_hosts',
    },
  };
  if (o.sudo) {
    t.sudo = true;
    if (o.sudo_password !== undefined) t.sudoPassword = o.sudo_password;
  }
  // where the jump setting came from, for messages
  const jumpField = own?.jump !== undefined ? `${fieldPrefix}.jump` : 'ssh.jump';
  const jump = jumpVia?.isProxy && own?.jump === undefined && defaults.jump === 'proxy' ? undefined : o.jump;
  if (jump === 'proxy') {
    if (jumpVia?.isProxy) throw new UserError(`${jumpField}: the proxy cannot be its own jump host`);
    if (!jumpVia?.proxy) throw new UserError(`${jumpField}: "proxy" is not available here`);
    t.via = jumpVia.proxy();
  } else if (jump && jump !== 'none') {
    t.via = jumpTarget(jump, defaults, jumpField);
  }
  return t;
}

/** A bastion from a `jump: { ssh_host, ... }` object: what it leaves out comes from the `ssh:` defaults. */
function jumpTarget(j: JumpHost, defaults: SshOptions, field: string): ConnectTarget {
  const { jump: _j, sudo: _s, sudo_password: _p, ...auth } = defaults;
  const { ssh_host, ...own } = j;
  return connectTarget(ssh_host, ssh_host, auth, own, field);
}

/** The proxy's target: reached directly or through its own bastion, never through itself. */
function proxyTarget(inv: Inventory): ConnectTarget {
  return connectTarget('proxy', inv.proxy.ssh_host, inv.ssh, inv.proxy.ssh, 'proxy.ssh', { isProxy: true });
}

/** The proxy and every upstream, in inventory order. Upstreams with `jump: proxy` tunnel through the proxy's target. */
export function inventoryTargets(inv: Inventory): ConnectTarget[] {
  const proxy = proxyTarget(inv);
  return [
    proxy,
    ...inv.upstreams.map((u, i) => connectTarget(u.name, u.ssh_host, inv.ssh, u.ssh, `upstreams[${i}].ssh`, { proxy: () => proxy })),
  ];
}

export function probeTarget(inv: Inventory): ConnectTarget | undefined {
  const p = inv.verify.probe;
  return p ? connectTarget('probe', p.ssh_host, inv.ssh, p.ssh, 'verify.probe.ssh', { proxy: () => proxyTarget(inv) }) : undefined;
}

/** "user@address:port" (IPv6 addresses bracketed). */
export function formatTarget(t: Pick<ConnectTarget, 'user' | 'host' | 'port'>): string {
  const host = t.host.includes(':') ? `[${t.host}]` : t.host;
  return `${t.user}@${host}:${t.port}`;
}

/**
 * "user@address:port", followed for a jumped target by its jump hosts:
 * "root@172.16.0.11:22 via proxy root@10.211.0.10:22".
 */
export function describeTarget(t: ConnectTarget): string {
  const base = formatTarget(t);
  if (!t.via) return base;
  const hop = t.via.name === t.via.host ? '' : `${t.via.name} `;
  return `${base} via ${hop}${describeTarget(t.via)}`;
}
