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
 */
import { readFile } from 'node:fs/promises';
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig } from 'ssh2';
import {
  AuthError,
  ExecError,
  ExecTimeoutError,
  HostConnectionError,
  HostKeyError,
  SshConfigError,
  SshError,
  hostLabel,
} from './errors.js';
import { checkHostKey, preferredHostKeyAlgorithms } from './known-hosts.js';
import type { ConnectTarget, ExecOptions, ExecResult, HostSession } from './types.js';

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

export async function connect(t: ConnectTarget): Promise<HostSession> {
  const target = formatTarget(t);
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

  return new Promise<HostSession>((resolve, reject) => {
    const client = new Client();
    let phase: 'connecting' | 'ready' = 'connecting';
    let settled = false;
    let hostKeyError: HostKeyError | undefined;
    let lastError: LeveledError | undefined;
    const authNotes: string[] = [];
    let session: SshSession | undefined;

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
      session = new SshSession(t.name, target, client);
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
    if (t.sock) config.sock = t.sock;

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

class SshSession implements HostSession {
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

  constructor(name: string, target: string, client: SshClient) {
    this.name = name;
    this.target = target;
    this.label = hostLabel(name, target);
    this.client = client;
  }

  get execCount(): number {
    return this.count;
  }

  noteError(err: Error): void {
    this.lastError = err;
  }

  onSocketClosed(): void {
    this.socketClosed = true;
  }

  /** The transport ended/closed (or errored fatally) while the session was usable. */
  onTransportGone(): void {
    if (this.dead) return;
    const why = this.lastError
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
  }

  exec(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    if (this.dead) return Promise.reject(this.dead);
    return new Promise<ExecResult>((resolve, reject) => {
      this.queue = this.queue.then(
        () => new Promise<void>((release) => this.runExec(script, timeoutMs, resolve, reject, release)),
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
  ): void {
    if (this.dead) {
      reject(this.dead);
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
    const output = () => ({
      stdout: Buffer.concat(stdout).toString('utf8'),
      stderr: stripPgidMarker(Buffer.concat(stderr).toString('utf8')),
    });

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
        void this.killProcessGroup(pgid).then(() => {
          killPending = false;
          if (!channel || channelClosed) doRelease();
        });
      }
    }, timeoutMs);
    this.inflight.add(onDead);

    this.count++;
    try {
      this.client.exec('sh -s', (err, ch) => {
        if (err) {
          finish(
            this.dead ??
              new ExecError(this.name, this.target, `${this.label}: exec request failed: ${err.message}`, {
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
        });
        ch.on('exit', (code: number | null, signal?: string) => {
          exitCode = code ?? null;
          if (code === null && signal) exitSignal = signal;
        });
        ch.end(PGID_PREAMBLE + script);
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
  private killProcessGroup(pgid: number): Promise<void> {
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
      try {
        this.client.exec(`kill -s KILL -- -${pgid} 2>/dev/null; exit 0`, (err, ch) => {
          if (err) return done();
          ch.on('error', () => {});
          ch.stderr.on('error', () => {});
          ch.resume();
          ch.stderr.resume();
          ch.on('close', done);
          ch.end();
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
      });
    }
    return this.closing;
  }
}
