/**
 * A live SSH connection, after the handshake (transport.ts opens it): its exec queue (one exec at
 * a time, each run by exec.ts), the `direct-tcpip` channels that carry jumped targets, and its
 * end. Once it is lost (ssh2 `end`/`close`, keepalive timeout) or closed, in-flight and later
 * execs reject with HostConnectionError and the "gone" hooks run once (share registry, jump host).
 */
import type { Client, ClientChannel } from 'ssh2';
import { HostConnectionError, formatMs, hostLabel, type SshError } from './errors.js';
import { runExec, type ExecExtra, type ExecHost, type Rejecter } from './exec.js';
import type { ExecOptions, ExecResult } from './types.js';

export const KEEPALIVE_INTERVAL_MS = 5_000;
export const KEEPALIVE_COUNT_MAX = 3;
/** close(): wait this long for a clean disconnect before destroying the socket. */
const CLOSE_GRACE_MS = 2_000;

/** A reference to a connection; the connection closes when its last handle is released. */
export interface Handle {
  conn: SshConnection;
  release(): Promise<void>;
}

/** A live SSH connection; sessions (leases, see session.ts) share it. */
export class SshConnection implements ExecHost {
  readonly name: string;
  readonly target: string;
  readonly label: string;
  readonly client: Client;
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

  constructor(name: string, target: string, client: Client) {
    this.name = name;
    this.target = target;
    this.label = hostLabel(name, target);
    this.client = client;
  }

  get deadError(): SshError | undefined {
    return this.dead;
  }

  watch(r: Rejecter): void {
    this.inflight.add(r);
  }

  unwatch(r: Rejecter): void {
    this.inflight.delete(r);
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

  /** Queue one exec: it runs once the previous one has released its channel. */
  exec(script: string, opts: ExecOptions = {}, extra: ExecExtra = {}): Promise<ExecResult> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise<ExecResult>((resolve, reject) => {
      this.queue = this.queue.then(
        () => new Promise<void>((release) => runExec(this, script, opts, resolve, reject, release, extra)),
      );
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
