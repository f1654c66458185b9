/**
 * Which connection a target gets: its own, or a shared one, reached directly or through its jump
 * host (`target.via`). A jumped target gets a `direct-tcpip` channel (forwardOut) over the jump
 * host's connection, then its own handshake over that channel (transport.ts): both host keys are
 * checked, each against its own known_hosts and under its own address. Jump host connections are
 * shared and closed after the last connection using them.
 */
import type { ClientChannel } from 'ssh2';
import { HostConnectionError, SshError, hostLabel } from './errors.js';
import type { Handle, SshConnection } from './connection.js';
import { describeTarget, formatTarget } from './targets.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, openTransport } from './transport.js';
import type { ConnectTarget } from './types.js';

/**
 * Connections that may be shared: jump hosts, and hosts connected with `{ share: true }` (so a
 * host that is also a jump host carries its tunnels on its own connection). Keyed by everything
 * that makes a connection different; a lost connection leaves the registry at once.
 */
const registry = new Map<string, { refs: number; conn: Promise<SshConnection> }>();

function shareKey(t: ConnectTarget): string {
  return JSON.stringify([
    t.name,
    t.user,
    t.host,
    t.port,
    t.privateKey ?? '',
    t.agent ?? '',
    t.knownHosts,
    t.password !== undefined,
    t.via ? shareKey(t.via) : '',
  ]);
}

/** A handle on the shared connection to `t`, opening it if there is none yet. */
export async function acquireShared(t: ConnectTarget): Promise<Handle> {
  const key = shareKey(t);
  let entry = registry.get(key);
  if (!entry) {
    const e = { refs: 0, conn: openConnection(t) };
    registry.set(key, e);
    const forget = () => {
      if (registry.get(key) === e) registry.delete(key);
    };
    e.conn.then((c) => c.onGone(forget), forget);
    entry = e;
  }
  const e = entry;
  e.refs++;
  let conn: SshConnection;
  try {
    conn = await e.conn;
  } catch (err) {
    e.refs--;
    throw err;
  }
  let released = false;
  return {
    conn,
    release: async () => {
      if (released) return;
      released = true;
      if (--e.refs > 0) return;
      if (registry.get(key) === e) registry.delete(key);
      await conn.close();
    },
  };
}

/** A connection to `t` of the caller's own. */
export async function acquireOwn(t: ConnectTarget): Promise<Handle> {
  const conn = await openConnection(t);
  return { conn, release: () => conn.close() };
}

/** Connections currently open or opening in the share registry (for tests). */
export function sharedConnectionCount(): number {
  return registry.size;
}

/** Why a jump host could not open the channel, with what to check. */
function forwardFailure(err: Error & { reason?: unknown; openChannels?: number }, jump: string, dest: string): string {
  const desc = err.message.replace(/^\(SSH\) (Channel open failure: ?)?/, '').trim();
  const why = desc ? ` (${desc})` : '';
  switch (err.reason) {
    case 1: // SSH_OPEN_ADMINISTRATIVELY_PROHIBITED
      return `${jump} refused to forward to ${dest}${why}: its sshd must allow TCP forwarding for this user (AllowTcpForwarding, PermitOpen)`;
    case 2: // SSH_OPEN_CONNECT_FAILED
      return `${jump} could not open a TCP connection to ${dest}${why}: is the address right, reachable from ${jump}, and sshd listening there?`;
    case 4: // SSH_OPEN_RESOURCE_SHORTAGE
      return `${jump} refused another channel to ${dest}${why}: out of resources, with ${err.openChannels ?? '?'} forwarding channels already open on its connection`;
    default:
      return `${jump} could not open a channel to ${dest}${why} (${err.openChannels ?? '?'} forwarding channels already open on its connection)`;
  }
}

/** Open a connection to `t`: directly, or through its jump host. */
async function openConnection(t: ConnectTarget): Promise<SshConnection> {
  const target = describeTarget(t);
  if (!t.via) return openTransport(t, target);
  const label = hostLabel(t.name, target);
  const jump = hostLabel(t.via.name, describeTarget(t.via));
  let hop: Handle;
  try {
    hop = await acquireShared(t.via);
  } catch (err) {
    throw new HostConnectionError(t.name, target, `cannot connect to ${label}: the jump host failed: ${(err as Error).message}`, 'connect', { cause: err });
  }
  try {
    let sock: ClientChannel;
    try {
      sock = await hop.conn.forwardOut(t.host, t.port, t.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    } catch (err) {
      if (err instanceof SshError)
        throw new HostConnectionError(t.name, target, `cannot connect to ${label}: ${err.message}`, 'connect', { cause: err });
      const dest = formatTarget(t).replace(/^[^@]*@/, '');
      throw new HostConnectionError(t.name, target, `cannot connect to ${label}: ${forwardFailure(err as Error, jump, dest)}`, 'connect', { cause: err });
    }
    const conn = await openTransport(t, target, sock);
    conn.setBastion(hop);
    return conn;
  } catch (err) {
    await hop.release();
    throw err;
  }
}
