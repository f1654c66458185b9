/**
 * SSH sessions on top of ssh2's Client.
 *
 * - Host keys are checked against `target.knownHosts`; unknown, mismatching or
 *   revoked keys abort the handshake with a HostKeyError. Never accepted silently.
 * - Auth methods are tried in the order publickey (file), agent, password.
 * - Execs run `sh -s` with the script on stdin, one at a time per connection.
 * - On timeout the exec rejects at once with ExecTimeoutError; the command is
 *   sent KILL, its channel closed, and its remote process group killed through
 *   a second exec (see PGID_PREAMBLE); the session stays usable.
 * - Every ssh2 `error`/`end`/`close` event is handled. Once the connection is
 *   gone, in-flight and later execs reject with HostConnectionError.
 * - Jump hosts (`target.via`): a `direct-tcpip` channel (forwardOut) over the
 *   jump host's connection, then `connect({ sock })`. Both host keys are checked,
 *   each against its own known_hosts and under its own address. Jump connections
 *   are shared (see `acquireShared`) and closed after the last session using them.
 * - sudo (`target.sudo`): scripts run as `sudo -n sh -s`; with a sudo password,
 *   as `sudo -S` with a prompt/ready handshake so that the password is written
 *   only when sudo asks for it and the script only once sudo has started sh.
 */
import { readFile } from 'node:fs/promises';
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig } from 'ssh2';
import {
  AuthError,
  SudoError,
  ExecError,
  ExecTimeoutError,
  HostConnectionError,
  HostKeyError,
  SshConfigError,
  SshError,
  hostLabel,
} from './errors.js';
import { checkHostKey, preferredHostKeyAlgorithms } from './known-hosts.js';
import type { ConnectOptions, ConnectTarget, ExecOptions, ExecResult, HostSession } from './types.js';
import { SET_PATH } from '../util/remote-env.js';

const { Client, utils } = ssh2;
type SshClient = InstanceType<typeof Client>;
type LeveledError = Error & { level?: string };

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
const KEEPALIVE_INTERVAL_MS = 5_000;
const KEEPALIVE_COUNT_MAX = 3;
/** After a timeout, wait this long for the killed channel to close before the next exec starts. */
const KILLED_CHANNEL_GRACE_MS = 3_000;
/** Upper bound for the exec that kills a timed-out command's process group. */
const KILL_EXEC_TIMEOUT_MS = 2_500;
/** close(): wait this long for a clean disconnect before destroying the socket. */
const CLOSE_GRACE_MS = 2_000;

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

async function readLocal(
  t: ConnectTarget,
  target: string,
  path: string,
  what: string,
): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${(err as Error).message})`;
    throw new SshConfigError(t.name, target, `${hostLabel(t.name, target)}: ${what} ${path} ${why}`, {
      cause: err,
    });
  }
}

/** One SSH connection: TCP (or `sock`), handshake, host key check, authentication. */
async function openTransport(t: ConnectTarget, target: string, sock?: ClientChannel): Promise<SshConnection> {
  const label = hostLabel(t.name, target);
  const connectTimeoutMs = t.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;

  const knownHostsText = (await readLocal(t, target, t.knownHosts, 'known_hosts file')).toString('utf8');

  let privateKey: Buffer | undefined;
  if (t.privateKey !== undefined) {
    privateKey = await readLocal(t, target, t.privateKey, 'private key file');
    const parsed = utils.parseKey(privateKey, t.passphrase);
    if (parsed instanceof Error) {
      throw new SshConfigError(
        t.name,
        target,
        `${label}: cannot load private key ${t.privateKey}: ${parsed.message}`,
        { cause: parsed },
      );
    }
  }

  const methods: Array<'publickey' | 'agent' | 'password'> = [];
  if (privateKey) methods.push('publickey');
  if (t.agent) methods.push('agent');
  if (t.password !== undefined) methods.push('password');
  if (methods.length === 0) {
    throw new SshConfigError(
      t.name,
      target,
      `${label}: no authentication method configured (need a private key, an ssh-agent socket or a password)`,
    );
  }

  return new Promise<SshConnection>((resolve, reject) => {
    const client = new Client();
    let phase: 'connecting' | 'ready' = 'connecting';
    let settled = false;
    let hostKeyError: HostKeyError | undefined;
    let lastError: LeveledError | undefined;
    const authNotes: string[] = [];
    let session: SshConnection | undefined;

    const fail = (err: SshError) => {
      if (settled) return;
      settled = true;
      clearTimeout(backstop);
      try {
        client.destroy();
      } catch {
        /* already gone */
      }
      reject(err);
    };

    const classify = (err: LeveledError): SshError => {
      if (hostKeyError) return hostKeyError;
      if (err.message === 'All configured authentication methods failed') {
        const notes = authNotes.length ? ` (${[...new Set(authNotes)].join('; ')})` : '';
        return new AuthError(
          t.name,
          target,
          `${label}: authentication failed: the server rejected ${methods.join(', ')}${notes}`,
          [...methods],
          { cause: err },
        );
      }
      if (err.level === 'client-timeout') {
        return new HostConnectionError(
          t.name,
          target,
          `cannot connect to ${label}: no SSH handshake within ${connectTimeoutMs} ms`,
          'connect',
          { cause: err },
        );
      }
      return new HostConnectionError(t.name, target, `cannot connect to ${label}: ${err.message}`, 'connect', {
        cause: err,
      });
    };

    // This listener stays attached for the client's whole life: ssh2 emits
    // 'error' freely (including after close) and an unhandled one would crash.
    client.on('error', (err: LeveledError) => {
      lastError = err;
      if (phase === 'connecting') {
        // Non-fatal: ssh2 reports these and moves on to the next auth method.
        const nonFatal =
          err.level === 'agent' ||
          (err.level === 'client-authentication' &&
            err.message !== 'All configured authentication methods failed');
        if (nonFatal) {
          authNotes.push(err.level === 'agent' ? `ssh-agent: ${err.message}` : err.message);
          return;
        }
        fail(classify(err));
      } else {
        session?.noteError(hostKeyError ?? err);
      }
    });

    const onGone = () => {
      if (phase === 'connecting') {
        fail(
          lastError
            ? classify(lastError)
            : hostKeyError ??
                new HostConnectionError(
                  t.name,
                  target,
                  `cannot connect to ${label}: connection closed during the SSH handshake`,
                  'connect',
                ),
        );
      } else {
        session?.onTransportGone();
      }
    };
    client.on('end', onGone);
    client.on('close', () => {
      session?.onSocketClosed();
      onGone();
    });

    client.on('ready', () => {
      if (settled) {
        // lost the race against a failure/timeout: do not leak the connection
        client.end();
        return;
      }
      phase = 'ready';
      settled = true;
      clearTimeout(backstop);
      session = new SshConnection(t.name, target, client);
      resolve(session);
    });

    // ssh2's readyTimeout should always fire first; this only guards against
    // a wedged handshake that somehow escapes it.
    const backstop = setTimeout(() => {
      fail(
        new HostConnectionError(
          t.name,
          target,
          `cannot connect to ${label}: no SSH handshake within ${connectTimeoutMs} ms`,
          'connect',
        ),
      );
    }, connectTimeoutMs + 5_000);

    const config: ConnectConfig = {
      host: t.host,
      port: t.port,
      username: t.user,
      readyTimeout: connectTimeoutMs,
      keepaliveInterval: KEEPALIVE_INTERVAL_MS,
      keepaliveCountMax: KEEPALIVE_COUNT_MAX,
      authHandler: [...methods],
      algorithms: { serverHostKey: preferredHostKeyAlgorithms(knownHostsText, t.host, t.port) },
      hostVerifier: (key: Buffer): boolean => {
        let check;
        try {
          check = checkHostKey(knownHostsText, t.host, t.port, key);
        } catch (err) {
          hostKeyError = new HostKeyError(
            t.name,
            target,
            `${label}: cannot check host key against ${t.knownHosts}: ${(err as Error).message}; refusing to connect`,
            { reason: 'unknown', fingerprint: '?', keyType: '?', knownHostsPath: t.knownHosts },
          );
          return false;
        }
        if (check.ok) return true;
        const key_ = `host key ${check.fingerprint} (${check.keyType})`;
        const message =
          check.reason === 'unknown'
            ? `${label}: ${key_} is not in ${t.knownHosts}; add it after checking it out of band`
            : check.reason === 'mismatch'
              ? `${label}: ${key_} does not match the key recorded in ${t.knownHosts} ` +
                `(${(check.expected ?? []).join(', ')}) — possible man-in-the-middle; refusing to connect`
              : `${label}: ${key_} is marked @revoked in ${t.knownHosts}; refusing to connect`;
        hostKeyError = new HostKeyError(t.name, target, message, {
          reason: check.reason,
          fingerprint: check.fingerprint,
          keyType: check.keyType,
          ...(check.expected ? { expected: check.expected } : {}),
          knownHostsPath: t.knownHosts,
        });
        return false;
      },
    };
    if (privateKey) {
      config.privateKey = privateKey;
      if (t.passphrase !== undefined) config.passphrase = t.passphrase;
    }
    if (t.agent) config.agent = t.agent;
    if (t.password !== undefined) config.password = t.password;
    if (sock ?? t.sock) config.sock = sock ?? t.sock;

    try {
      client.connect(config);
    } catch (err) {
      fail(
        new SshConfigError(t.name, target, `${label}: invalid SSH configuration: ${(err as Error).message}`, {
          cause: err,
        }),
      );
    }
  });
}

/** A reference to a connection; the connection closes when its last handle is released. */
interface Handle {
  conn: SshConnection;
  release(): Promise<void>;
}

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

async function acquireShared(t: ConnectTarget): Promise<Handle> {
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

async function acquireOwn(t: ConnectTarget): Promise<Handle> {
  const conn = await openConnection(t);
  return { conn, release: () => conn.close() };
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

/**
 * Connect to a host (through its jump hosts, if any). Never accepts an unknown host key; see the
 * module comment. With `share`, the connection can also carry other targets' tunnels.
 */
export async function connect(t: ConnectTarget, opts: ConnectOptions = {}): Promise<HostSession> {
  const handle = opts.share && !t.sock ? await acquireShared(t) : await acquireOwn(t);
  return new Lease(t, handle);
}

/** Connections currently open or opening in the share registry (for tests). */
export function sharedConnectionCount(): number {
  return registry.size;
}

/** What a caller holds: its own exec count, sudo setting and closed state over a (maybe shared) connection. */
class Lease implements HostSession {
  readonly name: string;
  readonly target: string;
  private readonly label: string;
  private readonly sudo: SudoSpec | undefined;
  private count = 0;
  private closedError: HostConnectionError | undefined;
  private closing: Promise<void> | undefined;
  private readonly inflight = new Set<(e: Error) => void>();

  constructor(
    t: ConnectTarget,
    private readonly handle: Handle,
  ) {
    this.name = t.name;
    this.target = describeTarget(t);
    this.label = hostLabel(this.name, this.target);
    this.sudo = t.sudo ? { user: t.user, ...(t.sudoPassword !== undefined ? { password: t.sudoPassword } : {}) } : undefined;
  }

  get execCount(): number {
    return this.count;
  }

  exec(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise<ExecResult>((resolve, reject) => {
      this.inflight.add(reject);
      this.handle.conn
        .exec(script, opts, {
          ...(this.sudo ? { sudo: this.sudo } : {}),
          onStart: () => {
            this.count++;
          },
          cancelled: () => this.closedError,
        })
        .then(
          (r) => {
            this.inflight.delete(reject);
            resolve(r);
          },
          (e: Error) => {
            this.inflight.delete(reject);
            reject(e);
          },
        );
    });
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.closedError = new HostConnectionError(this.name, this.target, `connection to ${this.label} is closed`, 'closed');
      for (const reject of [...this.inflight]) reject(this.closedError);
      this.inflight.clear();
      this.closing = this.handle.release();
    }
    return this.closing;
  }
}

type Rejecter = (err: SshError) => void;

/**
 * Prepended to every script, on the same line so the script's line numbers in
 * shell error messages are unchanged. On Linux it reports the command's process
 * group on stderr (as \x1edsrctl-pgid:N\x1e, stripped again from the result)
 * so a timed-out command can be killed with everything it spawned. Only
 * reported when that group belongs to this command: sh -s leads it (sshd runs
 * each session under setsid) or its parent, the login shell, does. Never a
 * group led by sshd itself. Silent where /proc is missing.
 */
export const PGID_PREAMBLE =
  'if read -r __dsr_a __dsr_b __dsr_c __dsr_d __dsr_g __dsr_e 2>/dev/null </proc/$$/stat; then ' +
  'if [ "$__dsr_g" = "$$" ] || { [ "$__dsr_g" = "$PPID" ] && read -r __dsr_b 2>/dev/null </proc/$PPID/comm && ' +
  'case $__dsr_b in sshd*|dropbear*) false;; *) true;; esac; }; then ' +
  "printf '\\036dsrctl-pgid:%s\\036\\n' \"$__dsr_g\" >&2; fi; fi; " +
  'unset __dsr_a __dsr_b __dsr_c __dsr_d __dsr_g __dsr_e; ';

const PGID_MARKER_RE = /\x1edsrctl-pgid:(\d+)\x1e\n/;

function findPgid(stderr: Buffer[]): number | undefined {
  const head = Buffer.concat(stderr).subarray(0, 8192).toString('latin1');
  const m = PGID_MARKER_RE.exec(head);
  if (!m) return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 1 ? n : undefined;
}

function stripPgidMarker(stderr: string): string {
  return stderr.replace(PGID_MARKER_RE, '');
}

/** Ask the server to KILL the command (where it honours signals) and close the channel. */
function stopChannel(ch: ClientChannel): void {
  sendSignal(ch, 'KILL');
  try {
    ch.close();
  } catch {
    /* ignore */
  }
}

function formatMs(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/**
 * Send an SSH "signal" channel request (honoured by OpenSSH sshd >= 7.9,
 * ignored by older servers). ssh2's ClientChannel.signal() silently does
 * nothing once our side of the channel is ended, which is always the case
 * here (the script is written and stdin closed up front), so fall back to the
 * protocol object while the channel is still open in the 'eof' state.
 */
function sendSignal(ch: ClientChannel, name: string): void {
  try {
    if (ch.writable) {
      ch.signal(name);
      return;
    }
    const inner = ch as unknown as {
      outgoing?: { id?: number; state?: string };
      _client?: { _protocol?: { signal?: (id: number, sig: string) => void } };
    };
    const out = inner.outgoing;
    const proto = inner._client?._protocol;
    if (
      out &&
      typeof out.id === 'number' &&
      (out.state === 'open' || out.state === 'eof') &&
      typeof proto?.signal === 'function'
    ) {
      proto.signal(out.id, name);
    }
  } catch {
    /* best effort */
  }
}

/** How one exec runs as root through sudo. */
interface SudoSpec {
  user: string;
  /** given on stdin when sudo prompts for it (`sudo -S`); without it `sudo -n` */
  password?: string;
}

interface ExecExtra {
  sudo?: SudoSpec;
  /** called when the exec request is actually sent */
  onStart?: () => void;
  /** checked when the exec's turn comes: true drops it unsent (its session was closed) */
  cancelled?: () => SshError | undefined;
}

/**
 * The prompt sudo -S prints (on stderr) when it wants the password, and the marker the root shell
 * prints once sudo has started it. Printable ASCII only: they go through the remote login shell.
 */
const SUDO_PROMPT = '[dsrctl-sudo-password]';
const SUDO_READY = '[dsrctl-sudo-ready]';
/**
 * `sudo -n`: never prompts; fails at once with "a password is required" when sudo wants one.
 * `exec`: sudo replaces the login shell, so it leads the session's process group and the root
 * `sh -s` (its child) can report that group for a timeout kill (PGID_PREAMBLE).
 */
export const SUDO_N_COMMAND = 'exec sudo -n sh -s';
/**
 * `sudo -S`: the password comes from stdin, ahead of the script. sh -c prints the ready marker
 * and execs `sh -s`, which then reads the script from the same stdin.
 */
export const SUDO_S_COMMAND = `exec sudo -S -p '${SUDO_PROMPT}' sh -c 'echo "${SUDO_READY}" >&2; exec sh -s'`;

function countOf(haystack: string, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + needle.length)) n++;
  return n;
}

/** Remove the sudo handshake (lecture, prompts, ready marker) from a -S exec's stderr. */
function stripSudoHandshake(stderr: string): string {
  const i = stderr.indexOf(SUDO_READY + '\n');
  const rest = i >= 0 ? stderr.slice(i + SUDO_READY.length + 1) : stderr;
  return rest.split(SUDO_PROMPT).join('');
}

function hidePassword(text: string, password: string | undefined): string {
  return password ? text.split(password).join('***') : text;
}

/**
 * Why sudo refused to start the script, from its stderr; undefined when it is not sudo's doing.
 * Called only when the script never started (no ready marker / pgid marker).
 */
function sudoFailure(
  label: string,
  user: string,
  code: number | null,
  stderr: string,
  withPassword: boolean,
  promptedTwice: boolean,
): { message: string; reason: SudoError['reason'] } | undefined {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const sudoLines = lines.filter((l) => l.startsWith('sudo:') || /\bsudoers\b/.test(l) || /incorrect password/.test(l));
  const said = sudoLines.length ? `"${sudoLines.slice(0, 3).join(' / ')}"` : `exit ${code}`;
  const nothing = 'nothing was run';
  const rule = `"${user} ALL=(root) NOPASSWD: ALL" in /etc/sudoers.d/dsrctl`;
  if (code === 127 && /sudo: (command )?not found|sudo: No such file/i.test(stderr))
    return { reason: 'not-installed', message: `${label}: sudo is not installed (ssh.sudo is true); install it, or connect as root with sudo: false; ${nothing}` };
  if (promptedTwice || /incorrect password|Sorry, try again/i.test(stderr))
    return { reason: 'wrong-password', message: `${label}: sudo did not accept the sudo_password given for ${user} (${said}); ${nothing}. Check ssh.sudo_password (and the .env variable it comes from)` };
  if (/must have a tty|requiretty/i.test(stderr))
    return { reason: 'no-tty', message: `${label}: sudo requires a terminal for ${user} (${said}); ${nothing}. Fix: "Defaults:${user} !requiretty" in /etc/sudoers.d/dsrctl` };
  if (/a password is required|a terminal is required|askpass/i.test(stderr))
    return {
      reason: 'password-required',
      message:
        `${label}: sudo asks ${user} for a password (${said}); ${nothing}. ` +
        `Fix: let ${user} run commands as root without one (a NOPASSWD rule, e.g. ${rule}), ` +
        'or give sudo\'s password as ssh.sudo_password (from .env, e.g. sudo_password: ${DSRCTL_SUDO_PASSWORD})',
    };
  if (/not in the sudoers file|not allowed to (execute|run)|may not run sudo/i.test(stderr))
    return { reason: 'not-allowed', message: `${label}: ${user} may not run sh as root through sudo (${said}); ${nothing}. Fix: a sudoers rule for ${user}, e.g. ${rule}` };
  if (sudoLines.length || withPassword)
    return { reason: 'other', message: `${label}: sudo failed before the script started (exit ${code}${sudoLines.length ? `: ${said}` : ''}); ${nothing}` };
  return undefined;
}

/** A live SSH connection; sessions (leases) share it. */
class SshConnection {
  readonly name: string;
  readonly target: string;
  private readonly label: string;
  private readonly client: SshClient;
  private count = 0;
  /** set once the connection is unusable; every later exec rejects with it */
  private dead: SshError | undefined;
  private lastError: Error | undefined;
  private socketClosed = false;
  /** tail of the exec queue; resolves when the previous exec released its channel. Never rejects. */
  private queue: Promise<void> = Promise.resolve();
  private readonly inflight = new Set<Rejecter>();
  private closing: Promise<void> | undefined;
  /** the jump host this connection tunnels through: released once this connection is gone */
  private bastion: Handle | undefined;
  private goneHooks: Array<() => void> = [];
  private goneFired = false;
  /** forwardOut channels open on this connection (for messages about the channel limit) */
  private forwards = 0;

  constructor(name: string, target: string, client: SshClient) {
    this.name = name;
    this.target = target;
    this.label = hostLabel(name, target);
    this.client = client;
  }

  get execCount(): number {
    return this.count;
  }

  get deadError(): SshError | undefined {
    return this.dead;
  }

  noteError(err: Error): void {
    this.lastError = err;
  }

  onSocketClosed(): void {
    this.socketClosed = true;
    this.fireGone();
  }

  /** Tie this (tunneled) connection to its jump host: released when this one is gone. */
  setBastion(h: Handle): void {
    this.bastion = h;
    this.onGone(() => void h.release());
  }

  /** `f` runs once, when the connection is closed or lost (at once if it already is). */
  onGone(f: () => void): void {
    if (this.goneFired) f();
    else this.goneHooks.push(f);
  }

  private fireGone(): void {
    if (this.goneFired) return;
    this.goneFired = true;
    for (const f of this.goneHooks.splice(0)) {
      try {
        f();
      } catch {
        /* hooks never throw on purpose */
      }
    }
  }

  /**
   * Open a `direct-tcpip` channel to host:port through this connection (ssh2 forwardOut): the
   * transport for a jumped target. Rejects with the raw ssh2 error (its `reason` is the SSH
   * channel-open failure code) or a timeout; the caller names both hops.
   */
  forwardOut(host: string, port: number, timeoutMs: number): Promise<ClientChannel> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise<ClientChannel>((resolve, reject) => {
      let done = false;
      const settle = (err: Error | undefined, ch?: ClientChannel) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.inflight.delete(onDead);
        if (err) reject(err);
        else resolve(ch!);
      };
      const onDead: Rejecter = (err) => settle(err);
      const timer = setTimeout(
        () => settle(Object.assign(new Error(`no answer to the channel request within ${formatMs(timeoutMs)}`), { reason: 'timeout' })),
        timeoutMs,
      );
      this.inflight.add(onDead);
      try {
        this.client.forwardOut('127.0.0.1', 0, host, port, (err, ch) => {
          if (err) return settle(Object.assign(err, { openChannels: this.forwards }));
          ch.on('error', () => {});
          if (done) {
            // timed out meanwhile: do not leak the channel
            ch.destroy();
            return;
          }
          this.forwards++;
          ch.once('close', () => this.forwards--);
          settle(undefined, ch);
        });
      } catch (err) {
        settle(this.dead ?? (err as Error));
      }
    });
  }

  /** The transport ended/closed (or errored fatally) while the session was usable. */
  onTransportGone(): void {
    if (this.dead) return;
    const hop = this.bastion?.conn.deadError;
    const why = hop
      ? `its jump host connection is gone (${hop.message})`
      : this.lastError
      ? this.lastError.message === 'Keepalive timeout'
        ? `no answer to ${KEEPALIVE_COUNT_MAX} keepalives (${(KEEPALIVE_INTERVAL_MS * KEEPALIVE_COUNT_MAX) / 1000} s)`
        : this.lastError.message
      : 'connection closed by the remote side';
    this.markDead(
      new HostConnectionError(this.name, this.target, `connection to ${this.label} lost: ${why}`, 'lost', {
        cause: this.lastError,
      }),
    );
  }

  private markDead(err: SshError): void {
    if (this.dead) return;
    this.dead = err;
    for (const reject of [...this.inflight]) reject(err);
    this.inflight.clear();
    try {
      this.client.destroy();
    } catch {
      /* ignore */
    }
    this.fireGone();
  }

  exec(script: string, opts: ExecOptions = {}, extra: ExecExtra = {}): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    if (this.dead) return Promise.reject(this.dead);
    return new Promise<ExecResult>((resolve, reject) => {
      this.queue = this.queue.then(
        () => new Promise<void>((release) => this.runExec(script, timeoutMs, resolve, reject, release, extra)),
      );
    });
  }

  /** Runs one exec. Always calls `release` exactly once (possibly after settling). */
  private runExec(
    script: string,
    timeoutMs: number,
    resolve: (r: ExecResult) => void,
    reject: (e: Error) => void,
    release: () => void,
    extra: ExecExtra = {},
  ): void {
    const sudo = extra.sudo;
    const withPassword = sudo?.password !== undefined;
    const command = !sudo ? 'sh -s' : withPassword ? SUDO_S_COMMAND : SUDO_N_COMMAND;
    const cancelled = this.dead ?? extra.cancelled?.();
    if (cancelled) {
      reject(cancelled);
      release();
      return;
    }

    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let pgid: number | undefined;
    let exitCode: number | null | undefined;
    let exitSignal: string | undefined;
    let channelError: Error | undefined;
    let channel: ClientChannel | undefined;
    let settled = false;
    let released = false;
    let graceTimer: NodeJS.Timeout | undefined;
    let channelClosed = false;
    let killPending = false;
    /** -S handshake: prompts seen, and whether sh has started (the script is sent then) */
    let prompts = 0;
    let sudoReady = false;

    const doRelease = () => {
      if (released) return;
      released = true;
      clearTimeout(graceTimer);
      release();
    };
    const finish = (err: Error | undefined, result?: ExecResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.inflight.delete(onDead);
      if (err) reject(err);
      else resolve(result!);
    };
    const onDead: Rejecter = (err) => {
      finish(err);
      doRelease();
    };
    const output = () => {
      const out = Buffer.concat(stdout).toString('utf8');
      let err = stripPgidMarker(Buffer.concat(stderr).toString('utf8'));
      if (withPassword) err = stripSudoHandshake(err);
      return { stdout: hidePassword(out, sudo?.password), stderr: hidePassword(err, sudo?.password) };
    };

    const timer = setTimeout(() => {
      const { stdout: out, stderr: err } = output();
      const what =
        pgid !== undefined
          ? 'sent KILL to its process group'
          : 'closed its channel; the remote command may still be running';
      finish(
        new ExecTimeoutError(
          this.name,
          this.target,
          timeoutMs,
          `${this.label}: command timed out after ${formatMs(timeoutMs)}; ${what}`,
          out,
          err,
        ),
      );
      if (channel) stopChannel(channel);
      // Hold the queue until the command is dead and its channel closed, so the
      // next exec never overlaps a dying one; but never wait forever.
      graceTimer = setTimeout(doRelease, KILLED_CHANNEL_GRACE_MS);
      if (pgid !== undefined) {
        killPending = true;
        void this.killProcessGroup(pgid, sudo).then(() => {
          killPending = false;
          if (!channel || channelClosed) doRelease();
        });
      }
    }, timeoutMs);
    this.inflight.add(onDead);

    this.count++;
    extra.onStart?.();
    try {
      this.client.exec(command, (err, ch) => {
        if (err) {
          finish(
            this.dead ??
              new ExecError(this.name, this.target, `${this.label}: exec request failed: ${err.message} (sshd allows MaxSessions sessions per connection, 10 by default)`, {
                cause: err,
              }),
          );
          doRelease();
          return;
        }
        channel = ch;
        ch.on('error', (e: Error) => {
          channelError = e;
        });
        ch.stderr.on('error', (e: Error) => {
          channelError = e;
        });
        ch.on('close', () => {
          channelClosed = true;
          // stdout/stderr 'end' are emitted on nextTick; let them drain first
          setImmediate(() => {
            if (settled) {
              // timed out: release once the process-group kill (if any) is done
              if (!killPending) doRelease();
              return;
            }
            doRelease();
            if (this.dead) {
              finish(this.dead);
              return;
            }
            if (sudo && exitCode !== 0 && (withPassword ? !sudoReady : pgid === undefined)) {
              const raw = hidePassword(stripPgidMarker(Buffer.concat(stderr).toString('utf8')), sudo.password);
              const f = sudoFailure(this.label, sudo.user, exitCode ?? null, raw.split(SUDO_PROMPT).join(''), withPassword, prompts > 1);
              if (f) {
                finish(new SudoError(this.name, this.target, f.message, f.reason));
                return;
              }
            }
            if (exitCode === undefined) {
              finish(
                new ExecError(
                  this.name,
                  this.target,
                  `${this.label}: command ended without an exit status` +
                    (channelError ? ` (${channelError.message})` : ''),
                  { cause: channelError },
                ),
              );
              return;
            }
            finish(undefined, {
              code: exitCode,
              ...(exitSignal !== undefined ? { signal: exitSignal } : {}),
              ...output(),
            });
          });
        });
        if (settled) {
          // timed out (or the connection died) before the channel opened
          ch.resume();
          ch.stderr.resume();
          stopChannel(ch);
          return;
        }
        ch.on('data', (b: Buffer) => stdout.push(b));
        ch.stderr.on('data', (b: Buffer) => {
          stderr.push(b);
          if (pgid === undefined) pgid = findPgid(stderr);
          if (withPassword && !sudoReady) {
            const head = Buffer.concat(stderr).toString('latin1');
            const n = countOf(head, SUDO_PROMPT);
            if (n > prompts) {
              prompts = n;
              // first prompt: the password; another one means sudo rejected it: give up (EOF)
              if (n === 1) ch.write(`${sudo!.password}\n`);
              else ch.end();
            }
            if (head.includes(SUDO_READY + '\n') && prompts <= 1) {
              sudoReady = true;
              ch.end(`${PGID_PREAMBLE}${SET_PATH}; ${script}`);
            }
          }
        });
        ch.on('exit', (code: number | null, signal?: string) => {
          exitCode = code ?? null;
          if (code === null && signal) exitSignal = signal;
        });
        // sudo -S: the script follows once sudo has started sh (see the stderr handler)
        if (!withPassword) ch.end(`${PGID_PREAMBLE}${SET_PATH}; ${script}`);
      });
    } catch (err) {
      // ssh2 throws 'Not connected' synchronously once the socket is gone
      finish(
        this.dead ??
          new HostConnectionError(
            this.name,
            this.target,
            `connection to ${this.label} lost: ${(err as Error).message}`,
            'lost',
            { cause: err },
          ),
      );
      doRelease();
    }
  }

  /**
   * Kill a timed-out command's process group through a separate exec channel.
   * Needed because OpenSSH refuses "signal" requests for root sessions
   * ("session signalling requires privilege separation") and does not kill
   * the command when its channel is closed. Best effort, never rejects.
   */
  private killProcessGroup(pgid: number, sudo?: SudoSpec): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.dead) return resolve();
      const timer = setTimeout(done, KILL_EXEC_TIMEOUT_MS);
      let finished = false;
      function done() {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        resolve();
      }
      const kill = `kill -s KILL -- -${pgid} 2>/dev/null; exit 0`;
      // as root when the command runs as root. With a password, it is written up front: this
      // command never reads stdin, so unread it goes nowhere.
      const command = !sudo
        ? kill
        : sudo.password === undefined
          ? `sudo -n sh -c '${kill}'`
          : `sudo -S -p '' sh -c '${kill}'`;
      try {
        this.client.exec(command, (err, ch) => {
          if (err) return done();
          ch.on('error', () => {});
          ch.stderr.on('error', () => {});
          ch.resume();
          ch.stderr.resume();
          ch.on('close', done);
          ch.end(sudo?.password !== undefined ? `${sudo.password}\n` : undefined);
        });
      } catch {
        done();
      }
    });
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.closing = new Promise<void>((resolve) => {
        const wasDead = this.dead !== undefined;
        if (!wasDead) {
          this.dead = new HostConnectionError(
            this.name,
            this.target,
            `connection to ${this.label} is closed`,
            'closed',
          );
          for (const reject of [...this.inflight]) reject(this.dead);
          this.inflight.clear();
        }
        if (this.socketClosed) {
          resolve();
          return;
        }
        const timer = setTimeout(() => {
          try {
            this.client.destroy();
          } catch {
            /* ignore */
          }
          resolve();
        }, CLOSE_GRACE_MS);
        this.client.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        try {
          if (wasDead) this.client.destroy();
          else this.client.end();
        } catch {
          clearTimeout(timer);
          resolve();
        }
      }).then(async () => {
        // a tunneled connection: its jump host closes after it (when no one else uses it)
        this.fireGone();
        await this.bastion?.release();
      });
    }
    return this.closing;
  }
}
