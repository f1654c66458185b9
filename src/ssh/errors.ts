/**
 * Errors raised by the SSH layer. Every message already names the host
 * ("dev1 (root@10.211.0.11:22): ..."), so the CLI can print `err.message`
 * for any `SshError` without a stack trace.
 */

export class SshError extends Error {
  /** inventory name of the host */
  readonly host: string;
  /** "user@address:port" */
  readonly target: string;

  constructor(host: string, target: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SshError';
    this.host = host;
    this.target = target;
  }
}

/** "dev1 (root@10.211.0.11:22)" */
export function hostLabel(host: string, target: string): string {
  return `${host} (${target})`;
}

/** "30 s", "2500 ms": a duration as messages give it. */
export function formatMs(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/** Local configuration problem: missing known_hosts, unreadable/undecryptable key file, no auth method. */
export class SshConfigError extends SshError {
  constructor(host: string, target: string, message: string, options?: { cause?: unknown }) {
    super(host, target, message, options);
    this.name = 'SshConfigError';
  }
}

/** The server's host key is not trusted: unknown, different from known_hosts, or revoked. */
export class HostKeyError extends SshError {
  readonly reason: 'unknown' | 'mismatch' | 'revoked';
  /** fingerprint of the key the server presented (SHA256:...) */
  readonly fingerprint: string;
  readonly keyType: string;
  /** recorded fingerprints for this host, for 'mismatch' */
  readonly expected?: string[];
  readonly knownHostsPath: string;
  /** the line that would trust this key ("host keytype base64"), to record once a person confirmed it */
  readonly knownHostsLine?: string;

  constructor(
    host: string,
    target: string,
    message: string,
    details: {
      reason: 'unknown' | 'mismatch' | 'revoked';
      fingerprint: string;
      keyType: string;
      expected?: string[];
      knownHostsPath: string;
      knownHostsLine?: string;
    },
  ) {
    super(host, target, message);
    this.name = 'HostKeyError';
    this.reason = details.reason;
    this.fingerprint = details.fingerprint;
    this.keyType = details.keyType;
    if (details.expected) this.expected = details.expected;
    this.knownHostsPath = details.knownHostsPath;
    if (details.knownHostsLine) this.knownHostsLine = details.knownHostsLine;
  }
}

/** The server rejected every configured authentication method. */
export class AuthError extends SshError {
  /** methods that were tried: "publickey", "agent", "password" */
  readonly methods: string[];

  constructor(host: string, target: string, message: string, methods: string[], options?: { cause?: unknown }) {
    super(host, target, message, options);
    this.name = 'AuthError';
    this.methods = methods;
  }
}

/**
 * Could not connect (refused, DNS, handshake timeout) or the connection was
 * lost/closed. Pending and later execs on a dead session reject with this.
 */
export class HostConnectionError extends SshError {
  /** 'connect': never got a session; 'lost': dropped while in use; 'closed': close() was called */
  readonly phase: 'connect' | 'lost' | 'closed';

  constructor(
    host: string,
    target: string,
    message: string,
    phase: 'connect' | 'lost' | 'closed',
    options?: { cause?: unknown },
  ) {
    super(host, target, message, options);
    this.name = 'HostConnectionError';
    this.phase = phase;
  }
}

/**
 * An exec exceeded its timeout. The command's channel was closed and, where
 * possible, its remote process group killed (see the message). The session
 * stays usable.
 */
export class ExecTimeoutError extends SshError {
  readonly timeoutMs: number;
  /** output collected before the timeout */
  readonly stdout: string;
  readonly stderr: string;

  constructor(host: string, target: string, timeoutMs: number, message: string, stdout: string, stderr: string) {
    super(host, target, message);
    this.name = 'ExecTimeoutError';
    this.timeoutMs = timeoutMs;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

/** The server refused the exec request or ended the command without an exit status. */
export class ExecError extends SshError {
  constructor(host: string, target: string, message: string, options?: { cause?: unknown }) {
    super(host, target, message, options);
    this.name = 'ExecError';
  }
}

/**
 * sudo refused to run the script (`ssh.sudo: true`): it wants a password that was not given
 * or was wrong, the user may not use it, or it is not installed. Raised before the script ran
 * a single line, so nothing was changed by that exec.
 */
export class SudoError extends SshError {
  readonly reason: 'password-required' | 'wrong-password' | 'not-allowed' | 'no-tty' | 'not-installed' | 'other';

  constructor(host: string, target: string, message: string, reason: SudoError['reason']) {
    super(host, target, message);
    this.name = 'SudoError';
    this.reason = reason;
  }
}
