import type { Duplex } from 'node:stream';

/** What the rest of dsrctl sees of an SSH connection to one host. */
export interface ExecResult {
  /** exit status; null when the command died from a signal */
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** kill the command and reject with ExecTimeoutError after this long (default 30 s) */
  timeoutMs?: number;
  /** stdout as it arrives (UTF-8 decoded across chunks), before the exec settles */
  onStdout?: (text: string) => void;
  /**
   * A conversation in one exec: stdin stays open after the script, and once stdout has a line
   * equal to `marker` the timeout stops and `next(stdoutSoFar)` is awaited (while the caller
   * decides, the host waits on stdin: nothing of its time runs out). Its text is written to the
   * script's stdin (`sh -s` runs it as more script), stdin is closed, and `timeoutMs` starts
   * again. A rejected `next` closes stdin with nothing more. A script that ends without printing
   * the marker settles as usual and `next` is never called.
   */
  then?: { marker: string; next: (stdoutSoFar: string) => Promise<string>; timeoutMs: number };
}

export interface HostSession {
  /** inventory name of the host ("proxy", "dev1", ...) */
  readonly name: string;
  /** "user@address:port" for messages */
  readonly target: string;
  /**
   * Runs a POSIX sh script: one SSH exec request (`sh -s`, script on stdin; `sudo -n sh -s`
   * when the target has `sudo`).
   */
  exec(script: string, opts?: ExecOptions): Promise<ExecResult>;
  /** number of exec requests made on this connection so far */
  readonly execCount: number;
  close(): Promise<void>;
}

export interface ConnectTarget {
  /** inventory name, used in every message */
  name: string;
  host: string;
  port: number;
  user: string;
  /** path to a private key file */
  privateKey?: string;
  /** the inventory fields the key and known_hosts paths came from, for messages */
  fields?: { privateKey: string; knownHosts: string };
  passphrase?: string;
  password?: string;
  /** ssh-agent socket path (SSH_AUTH_SOCK) */
  agent?: string;
  /** path to an OpenSSH known_hosts file; required: unknown or mismatching host keys are refused */
  knownHosts: string;
  /** handshake + authentication timeout (ssh2 readyTimeout); default 10 s */
  connectTimeoutMs?: number;
  /**
   * Already-connected transport to tunnel over instead of opening a TCP
   * connection (e.g. a jump host's `forwardOut` channel). `host`/`port` are
   * still used for known_hosts lookup and messages.
   */
  sock?: Duplex;
  /**
   * Reach the host through this one: a `direct-tcpip` channel (ssh2 forwardOut) over the jump
   * host's SSH connection, then SSH over that channel. The jump host's key is checked against its
   * own known_hosts, this host's key under this target's `host`. One connection per jump host
   * (same name, user, address, port, key and known_hosts) is shared by every target that uses it
   * and closed when the last of them closes.
   */
  via?: ConnectTarget;
  /** run every script as root through sudo: `sudo -n sh -s`, or `sudo -S` with `sudoPassword` */
  sudo?: boolean;
  /** given to sudo on stdin when, and only when, sudo asks for it; never logged or echoed */
  sudoPassword?: string;
}

export interface ConnectOptions {
  /**
   * Register the connection so that targets using this host as their jump host (`via`) tunnel
   * through it instead of opening one of their own. Its execs stay this session's alone.
   */
  share?: boolean;
}
