/**
 * Opening one SSH connection: TCP (or a given `sock`, e.g. a jump host's channel), the handshake,
 * the host key check and authentication.
 * - Host keys are checked against `target.knownHosts`; unknown, mismatching or revoked keys abort
 *   the handshake with a HostKeyError. Never accepted silently.
 * - Auth methods are tried in the order publickey (file), agent, password.
 * - Every ssh2 `error`/`end`/`close` event is handled, during the handshake and after it (then
 *   the SshConnection is told).
 */
import { readFile } from 'node:fs/promises';
import ssh2 from 'ssh2';
import type { AnyAuthMethod, ClientChannel, ConnectConfig } from 'ssh2';
import {
  AuthError,
  HostConnectionError,
  HostKeyError,
  SshConfigError,
  SshError,
  hostLabel,
} from './errors.js';
import { checkHostKey, hostLookupName, preferredHostKeyAlgorithms } from './known-hosts.js';
import { KEEPALIVE_COUNT_MAX, KEEPALIVE_INTERVAL_MS, SshConnection } from './connection.js';
import type { ConnectTarget } from './types.js';

const { Client, utils } = ssh2;
type LeveledError = Error & { level?: string };
type AuthMethod = 'publickey' | 'agent' | 'password';

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

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

/** What the handshake needs from local files: known_hosts, the private key, the auth methods to try. */
interface Credentials {
  knownHostsText: string;
  privateKey: ParsedKey | undefined;
  methods: AuthMethod[];
}

type ParsedKey = Exclude<ReturnType<typeof utils.parseKey>, Error | unknown[]>;

/**
 * Keys parsed so far, by content and passphrase: a run over hundreds of hosts with one key parses
 * it once (an encrypted OpenSSH key costs a bcrypt derivation per parse), not once per connection.
 */
const parsedKeys = new Map<string, ParsedKey | Error>();

function parseKeyOnce(bytes: Buffer, passphrase: string | undefined): ParsedKey | Error {
  const id = `${bytes.toString('base64')}\0${passphrase ?? ''}`;
  let k = parsedKeys.get(id);
  if (!k) {
    const p = utils.parseKey(bytes, passphrase);
    k = Array.isArray(p) ? (p[0] as ParsedKey) : (p as ParsedKey | Error);
    parsedKeys.set(id, k);
  }
  return k;
}

async function loadCredentials(t: ConnectTarget, target: string): Promise<Credentials> {
  const label = hostLabel(t.name, target);
  const knownHostsText = (await readLocal(t, target, t.knownHosts, 'known_hosts file')).toString('utf8');

  let privateKey: ParsedKey | undefined;
  if (t.privateKey !== undefined) {
    const parsed = parseKeyOnce(await readLocal(t, target, t.privateKey, 'private key file'), t.passphrase);
    if (parsed instanceof Error) {
      throw new SshConfigError(
        t.name,
        target,
        `${label}: cannot load private key ${t.privateKey}: ${parsed.message}`,
        { cause: parsed },
      );
    }
    privateKey = parsed;
  }

  const methods: AuthMethod[] = [];
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
  return { knownHostsText, privateKey, methods };
}

/**
 * ssh2's hostVerifier for `t`: true for a key recorded in its known_hosts; otherwise `refuse` gets
 * the HostKeyError saying why (unknown, mismatch, revoked, unreadable file) and the answer is false.
 */
function hostKeyVerifier(
  t: ConnectTarget,
  target: string,
  knownHostsText: string,
  refuse: (e: HostKeyError) => void,
): (key: Buffer) => boolean {
  const label = hostLabel(t.name, target);
  return (key) => {
    let check;
    try {
      check = checkHostKey(knownHostsText, t.host, t.port, key);
    } catch (err) {
      refuse(
        new HostKeyError(
          t.name,
          target,
          `${label}: cannot check host key against ${t.knownHosts}: ${(err as Error).message}; refusing to connect`,
          { reason: 'unknown', fingerprint: '?', keyType: '?', knownHostsPath: t.knownHosts },
        ),
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
    refuse(
      new HostKeyError(t.name, target, message, {
        reason: check.reason,
        fingerprint: check.fingerprint,
        keyType: check.keyType,
        ...(check.expected ? { expected: check.expected } : {}),
        knownHostsPath: t.knownHosts,
        ...(check.reason === 'unknown' ? { knownHostsLine: `${hostLookupName(t.host, t.port)} ${check.keyType} ${key.toString('base64')}` } : {}),
      }),
    );
    return false;
  };
}

function noHandshake(t: ConnectTarget, target: string, ms: number, cause?: Error): HostConnectionError {
  return new HostConnectionError(
    t.name,
    target,
    `cannot connect to ${hostLabel(t.name, target)}: no SSH handshake within ${ms} ms`,
    'connect',
    cause ? { cause } : undefined,
  );
}

/** A fatal ssh2 error during the handshake, worded for the user (host key errors aside). */
function connectFailure(
  t: ConnectTarget,
  target: string,
  methods: AuthMethod[],
  authNotes: string[],
  connectTimeoutMs: number,
  err: LeveledError,
): SshError {
  const label = hostLabel(t.name, target);
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
  if (err.level === 'client-timeout') return noHandshake(t, target, connectTimeoutMs, err);
  return new HostConnectionError(t.name, target, `cannot connect to ${label}: ${err.message}`, 'connect', {
    cause: err,
  });
}

/** Errors ssh2 reports during authentication before moving on to the next method. */
function isAuthNote(err: LeveledError): boolean {
  return (
    err.level === 'agent' ||
    (err.level === 'client-authentication' && err.message !== 'All configured authentication methods failed')
  );
}

/** One SSH connection: TCP (or `sock`), handshake, host key check, authentication. */
export async function openTransport(t: ConnectTarget, target: string, sock?: ClientChannel): Promise<SshConnection> {
  const label = hostLabel(t.name, target);
  const connectTimeoutMs = t.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const { knownHostsText, privateKey, methods } = await loadCredentials(t, target);

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
    const classify = (err: LeveledError): SshError =>
      hostKeyError ?? connectFailure(t, target, methods, authNotes, connectTimeoutMs, err);

    // This listener stays attached for the client's whole life: ssh2 emits
    // 'error' freely (including after close) and an unhandled one would crash.
    client.on('error', (err: LeveledError) => {
      lastError = err;
      if (phase === 'connecting') {
        if (isAuthNote(err)) {
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
    const backstop = setTimeout(() => fail(noHandshake(t, target, connectTimeoutMs)), connectTimeoutMs + 5_000);

    const config: ConnectConfig = {
      host: t.host,
      port: t.port,
      username: t.user,
      readyTimeout: connectTimeoutMs,
      keepaliveInterval: KEEPALIVE_INTERVAL_MS,
      keepaliveCountMax: KEEPALIVE_COUNT_MAX,
      // the key goes already parsed: ssh2 would parse config.privateKey again for every connection
      authHandler: methods.map((m): AnyAuthMethod =>
        m === 'publickey'
          ? { type: 'publickey', username: t.user, key: privateKey! }
          : m === 'agent'
            ? { type: 'agent', username: t.user, agent: t.agent! }
            : { type: 'password', username: t.user, password: t.password! },
      ),
      algorithms: { serverHostKey: preferredHostKeyAlgorithms(knownHostsText, t.host, t.port) },
      hostVerifier: hostKeyVerifier(t, target, knownHostsText, (e) => {
        hostKeyError = e;
      }),
    };
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
