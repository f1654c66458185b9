/**
 * One exec on a connection: `sh -s` (or sudo's, see sudo.ts) with the script on stdin, output
 * collected, the exit status or why there is none. On timeout the exec rejects at once with
 * ExecTimeoutError and the command is stopped (process-group.ts); the connection's next exec waits
 * (bounded) until the channel is gone, so it never overlaps a dying one.
 */
import type { Client, ClientChannel } from 'ssh2';
import { ExecError, ExecTimeoutError, HostConnectionError, formatMs, type SshError } from './errors.js';
import { PGID_PREAMBLE, findPgid, killProcessGroup, stopChannel, stripPgidMarker } from './process-group.js';
import { SudoHandshake, execCommand, hidePassword, stripSudoHandshake, sudoRefusal, type SudoSpec } from './sudo.js';
import type { ExecOptions, ExecResult } from './types.js';
import { StringDecoder } from 'node:string_decoder';
import { SET_PATH } from '../util/remote-env.js';

export const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
/** After a timeout, wait this long for the killed channel to close before the next exec starts. */
const KILLED_CHANNEL_GRACE_MS = 3_000;

export type Rejecter = (err: SshError) => void;

export interface ExecExtra {
  sudo?: SudoSpec;
  /** called when the exec request is actually sent */
  onStart?: () => void;
  /** checked when the exec's turn comes: an error drops it unsent (its session was closed) */
  cancelled?: () => SshError | undefined;
}

/** What one exec uses of its connection. */
export interface ExecHost {
  readonly name: string;
  readonly target: string;
  /** "dev1 (root@10.211.0.11:22)" */
  readonly label: string;
  readonly client: Client;
  /** set once the connection is unusable: the exec fails with it */
  readonly deadError: SshError | undefined;
  /** `r` is called if the connection dies while the exec runs */
  watch(r: Rejecter): void;
  unwatch(r: Rejecter): void;
}

/**
 * Run one exec when its turn in the connection's queue comes. Settles through `resolve`/`reject`
 * and calls `release` (the next exec may start) exactly once, possibly after settling.
 */
export function runExec(
  host: ExecHost,
  script: string,
  opts: ExecOptions,
  resolve: (r: ExecResult) => void,
  reject: (e: Error) => void,
  release: () => void,
  extra: ExecExtra = {},
): void {
  const cancelled = host.deadError ?? extra.cancelled?.();
  if (cancelled) {
    reject(cancelled);
    release();
    return;
  }
  new ExecRun(host, script, opts, resolve, reject, release, extra).start();
}

class ExecRun {
  private readonly sudo: SudoSpec | undefined;
  /** `sudo -S` only: the script is sent once sudo has started sh */
  private readonly handshake: SudoHandshake | undefined;
  private readonly stdout: Buffer[] = [];
  private readonly stderr: Buffer[] = [];
  private pgid: number | undefined;
  private exitCode: number | null | undefined;
  private exitSignal: string | undefined;
  private channelError: Error | undefined;
  private channel: ClientChannel | undefined;
  private channelClosed = false;
  private settled = false;
  private released = false;
  private timer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private killPending = false;
  private timeoutMs: number;
  /** stdout decoded so far, kept only to find `then.marker` and stream it */
  private readonly decoder = new StringDecoder('utf8');
  private text = '';
  private continued = false;

  constructor(
    private readonly host: ExecHost,
    private readonly script: string,
    private readonly opts: ExecOptions,
    private readonly resolve: (r: ExecResult) => void,
    private readonly reject: (e: Error) => void,
    private readonly release: () => void,
    private readonly extra: ExecExtra,
  ) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    this.sudo = extra.sudo;
    this.handshake = extra.sudo?.password !== undefined ? new SudoHandshake(extra.sudo.password) : undefined;
  }

  private readonly onDead: Rejecter = (err) => {
    this.finish(err);
    this.doRelease();
  };

  start(): void {
    this.timer = setTimeout(() => this.onTimeout(), this.timeoutMs);
    this.host.watch(this.onDead);
    this.extra.onStart?.();
    try {
      this.host.client.exec(execCommand(this.sudo), (err, ch) => (err ? this.onRefused(err) : this.onChannel(ch)));
    } catch (err) {
      // ssh2 throws 'Not connected' synchronously once the socket is gone
      this.finish(
        this.host.deadError ??
          new HostConnectionError(
            this.host.name,
            this.host.target,
            `connection to ${this.host.label} lost: ${(err as Error).message}`,
            'lost',
            { cause: err },
          ),
      );
      this.doRelease();
    }
  }

  /** What goes to stdin: the script, after the pgid report and a safe PATH. */
  private payload(): string {
    return `${PGID_PREAMBLE}${SET_PATH}; ${this.script}`;
  }

  private finish(err: Error | undefined, result?: ExecResult): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.host.unwatch(this.onDead);
    if (err) this.reject(err);
    else this.resolve(result!);
  }

  private doRelease(): void {
    if (this.released) return;
    this.released = true;
    clearTimeout(this.graceTimer);
    this.release();
  }

  /** stdout and stderr as the caller gets them: no pgid report, no sudo handshake, no password. */
  private output(): { stdout: string; stderr: string } {
    const password = this.sudo?.password;
    const out = Buffer.concat(this.stdout).toString('utf8');
    let err = stripPgidMarker(Buffer.concat(this.stderr).toString('utf8'));
    if (this.handshake) err = stripSudoHandshake(err);
    return { stdout: hidePassword(out, password), stderr: hidePassword(err, password) };
  }

  private onRefused(err: Error): void {
    this.finish(
      this.host.deadError ??
        new ExecError(
          this.host.name,
          this.host.target,
          `${this.host.label}: exec request failed: ${err.message} (sshd allows MaxSessions sessions per connection, 10 by default)`,
          { cause: err },
        ),
    );
    this.doRelease();
  }

  private onChannel(ch: ClientChannel): void {
    this.channel = ch;
    ch.on('error', (e: Error) => {
      this.channelError = e;
    });
    ch.stderr.on('error', (e: Error) => {
      this.channelError = e;
    });
    ch.on('close', () => {
      this.channelClosed = true;
      // stdout/stderr 'end' are emitted on nextTick; let them drain first
      setImmediate(() => this.afterClose());
    });
    if (this.settled) {
      // timed out (or the connection died) before the channel opened
      ch.resume();
      ch.stderr.resume();
      stopChannel(ch);
      return;
    }
    ch.on('data', (b: Buffer) => this.onStdout(ch, b));
    ch.stderr.on('data', (b: Buffer) => this.onStderr(ch, b));
    ch.on('exit', (code: number | null, signal?: string) => {
      this.exitCode = code ?? null;
      if (code === null && signal) this.exitSignal = signal;
    });
    // sudo -S: the script follows once sudo has started sh (see onStderr)
    if (!this.handshake) this.send(ch);
  }

  /** The script on stdin: closed after it, or (a conversation) left open for `then.next`. */
  private send(ch: ClientChannel): void {
    if (this.opts.then) ch.write(this.payload());
    else ch.end(this.payload());
  }

  private onStdout(ch: ClientChannel, b: Buffer): void {
    this.stdout.push(b);
    if (!this.opts.onStdout && !this.opts.then) return;
    const t = this.decoder.write(b);
    if (this.opts.onStdout && t) this.opts.onStdout(t);
    const then = this.opts.then;
    if (!then || this.continued) return;
    // search only what may hold the marker: the new text and a marker's length before it (a
    // large output comes in many chunks; scanning all of it each time is quadratic)
    const from = Math.max(0, this.text.length - then.marker.length - 1);
    this.text += t;
    let at = this.text.indexOf(`${then.marker}\n`, from);
    // the marker counts only as a line of its own
    while (at > 0 && this.text[at - 1] !== '\n') at = this.text.indexOf(`${then.marker}\n`, at + 1);
    if (at < 0) return;
    // the host now waits for us: no timeout while the caller decides
    this.continued = true;
    clearTimeout(this.timer);
    const soFar = this.text;
    this.text = '';
    then.next(soFar).then(
      (more) => {
        if (this.settled) return;
        this.timeoutMs = then.timeoutMs;
        this.timer = setTimeout(() => this.onTimeout(), then.timeoutMs);
        ch.end(more);
      },
      () => {
        if (!this.settled) ch.end();
      },
    );
  }

  private onStderr(ch: ClientChannel, b: Buffer): void {
    this.stderr.push(b);
    if (this.pgid === undefined) this.pgid = findPgid(this.stderr);
    if (this.handshake && !this.handshake.ready) {
      if (this.handshake.advance(Buffer.concat(this.stderr).toString('latin1'), ch)) this.send(ch);
    }
  }

  private onTimeout(): void {
    const { stdout, stderr } = this.output();
    const what =
      this.pgid !== undefined ? 'sent KILL to its process group' : 'closed its channel; the remote command may still be running';
    this.finish(
      new ExecTimeoutError(
        this.host.name,
        this.host.target,
        this.timeoutMs,
        `${this.host.label}: command timed out after ${formatMs(this.timeoutMs)}; ${what}`,
        stdout,
        stderr,
      ),
    );
    if (this.channel) stopChannel(this.channel);
    // Hold the queue until the command is dead and its channel closed, so the
    // next exec never overlaps a dying one; but never wait forever.
    this.graceTimer = setTimeout(() => this.doRelease(), KILLED_CHANNEL_GRACE_MS);
    if (this.pgid !== undefined) {
      this.killPending = true;
      const killed = this.host.deadError ? Promise.resolve() : killProcessGroup(this.host.client, this.pgid, this.sudo);
      void killed.then(() => {
        this.killPending = false;
        if (!this.channel || this.channelClosed) this.doRelease();
      });
    }
  }

  /** The channel closed and its output drained: settle from the exit status. */
  private afterClose(): void {
    if (this.settled) {
      // timed out: release once the process-group kill (if any) is done
      if (!this.killPending) this.doRelease();
      return;
    }
    this.doRelease();
    if (this.host.deadError) {
      this.finish(this.host.deadError);
      return;
    }
    const refused = this.sudoRefused();
    if (refused) {
      this.finish(refused);
      return;
    }
    if (this.exitCode === undefined) {
      this.finish(
        new ExecError(
          this.host.name,
          this.host.target,
          `${this.host.label}: command ended without an exit status` +
            (this.channelError ? ` (${this.channelError.message})` : ''),
          { cause: this.channelError },
        ),
      );
      return;
    }
    this.finish(undefined, {
      code: this.exitCode,
      ...(this.exitSignal !== undefined ? { signal: this.exitSignal } : {}),
      ...this.output(),
    });
  }

  /** sudo's refusal, when the exec failed before the script started (no ready marker / pgid report). */
  private sudoRefused(): SshError | undefined {
    if (!this.sudo || this.exitCode === 0) return undefined;
    const started = this.handshake ? this.handshake.ready : this.pgid !== undefined;
    if (started) return undefined;
    const stderr = stripPgidMarker(Buffer.concat(this.stderr).toString('utf8'));
    return sudoRefusal(this.host.name, this.host.target, this.sudo, this.exitCode ?? null, stderr, (this.handshake?.prompts ?? 0) > 1);
  }
}
