/**
 * The SSH layer's entry point: `connect(target)` gives a HostSession (types.ts) that runs POSIX sh
 * scripts on the host, one at a time, as the login user or as root through sudo.
 *
 *   transport.ts      connecting: TCP or a tunnel, handshake, host key check, auth methods
 *   jump.ts           jump hosts (forwardOut over the jump host's connection) and shared connections
 *   connection.ts     a live connection: exec queue, forwarding channels, loss and close
 *   exec.ts           one exec: output, exit status, timeout
 *   process-group.ts  stopping a timed-out command and everything it started
 *   sudo.ts           running scripts as root, with or without a sudo password
 *   errors.ts         every error the layer raises, worded for the user
 */
import { HostConnectionError, hostLabel } from './errors.js';
import type { Handle } from './connection.js';
import type { SudoSpec } from './sudo.js';
import { acquireOwn, acquireShared } from './jump.js';
import { describeTarget } from './targets.js';
import type { ConnectOptions, ConnectTarget, ExecOptions, ExecResult, HostSession } from './types.js';

export { describeTarget, formatTarget } from './targets.js';
export { DEFAULT_CONNECT_TIMEOUT_MS } from './transport.js';
export { DEFAULT_EXEC_TIMEOUT_MS } from './exec.js';
export { PGID_PREAMBLE } from './process-group.js';
export { SUDO_N_COMMAND, SUDO_S_COMMAND } from './sudo.js';
export { sharedConnectionCount } from './jump.js';

/**
 * Connect to a host (through its jump hosts, if any). Never accepts an unknown host key
 * (transport.ts). With `share`, the connection can also carry other targets' tunnels.
 */
export async function connect(t: ConnectTarget, opts: ConnectOptions = {}): Promise<HostSession> {
  const handle = opts.share && !t.sock ? await acquireShared(t) : await acquireOwn(t);
  return new Lease(t, handle);
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
