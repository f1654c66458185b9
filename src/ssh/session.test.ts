/**
 * Integration tests against an in-process ssh2 Server on 127.0.0.1 whose exec
 * handler really runs the received command with /bin/sh.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, ServerChannel } from 'ssh2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AuthError,
  ExecTimeoutError,
  HostConnectionError,
  HostKeyError,
  SshConfigError,
  SshError,
} from './errors.js';
import { fingerprint } from './known-hosts.js';
import { connect } from './session.js';
import type { ConnectTarget, HostSession } from './types.js';
import { generateKeyPairSync } from '../../test/support/keys.js';

const { Server, utils } = ssh2;

const PASSWORD = 'correct horse';
const KEY_PASSPHRASE = 'battery staple';

function publicBlob(pub: string): Buffer {
  const k = utils.parseKey(pub);
  if (k instanceof Error) throw k;
  return k.getPublicSSH();
}

// ---------------------------------------------------------------- test server

interface TestServer {
  port: number;
  edBlob: Buffer;
  ecdsaBlob: Buffer;
  /** emits 'exec' when an exec request has been accepted and the command spawned */
  events: EventEmitter;
  stats: { current: number; max: number; signals: string[]; killed: string[] };
  /** destroy every TCP connection to the server (simulates a dropped link) */
  dropAll(): void;
  close(): Promise<void>;
}

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    /* already gone */
  }
}

async function startServer(allowedClientPub: string): Promise<TestServer> {
  const ed = generateKeyPairSync('ed25519');
  const ecdsa = generateKeyPairSync('ecdsa', { bits: 256 });
  const allowed = utils.parseKey(allowedClientPub);
  if (allowed instanceof Error) throw allowed;
  const events = new EventEmitter();
  const stats = { current: 0, max: 0, signals: [] as string[], killed: [] as string[] };
  const sockets = new Set<net.Socket>();
  const children = new Set<ChildProcess>();

  const server = new Server({ hostKeys: [ed.private, ecdsa.private] }, (client: Connection) => {
    client.on('error', () => {});
    client.on('authentication', (ctx: AuthContext) => {
      if (ctx.method === 'password' && ctx.password === PASSWORD) return ctx.accept();
      if (
        ctx.method === 'publickey' &&
        ctx.key.algo === allowed.type &&
        ctx.key.data.equals(allowed.getPublicSSH())
      ) {
        if (!ctx.signature || !ctx.blob) return ctx.accept(); // key probe
        if (allowed.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true) return ctx.accept();
      }
      ctx.reject(['publickey', 'password']);
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        let child: ChildProcess | undefined;
        session.on('signal', (accept, _reject, info) => {
          accept?.();
          stats.signals.push(info.name);
          if (child) killGroup(child, `SIG${info.name}` as NodeJS.Signals);
        });
        session.on('exec', (accept, _reject, info) => {
          const stream: ServerChannel = accept();
          stream.on('error', () => {});
          stats.current++;
          stats.max = Math.max(stats.max, stats.current);
          const args = info.command === 'sh -s' ? ['-s'] : ['-c', info.command];
          const c = spawn('/bin/sh', args, { detached: true, stdio: 'pipe' });
          child = c;
          children.add(c);
          c.stdin.on('error', () => {});
          stream.pipe(c.stdin);
          c.stdout.pipe(stream, { end: false });
          c.stderr.pipe(stream.stderr, { end: false });
          c.on('close', (code, signal) => {
            stats.current--;
            children.delete(c);
            if (signal) stats.killed.push(signal);
            try {
              if (signal) stream.exit(signal.replace(/^SIG/, ''), false, '');
              else stream.exit(code ?? 255);
              stream.end();
            } catch {
              /* client already gone */
            }
          });
          // Like OpenSSH sshd, closing the channel does NOT stop the command.
          events.emit('exec');
        });
      });
    });
  });

  const front = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    server.injectSocket(sock);
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  const port = (front.address() as net.AddressInfo).port;

  return {
    port,
    edBlob: publicBlob(ed.public),
    ecdsaBlob: publicBlob(ecdsa.public),
    events,
    stats,
    dropAll() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      for (const c of children) killGroup(c, 'SIGKILL');
      await new Promise<void>((r) => front.close(() => r()));
    },
  };
}

// ---------------------------------------------------------------- fixtures

let dir: string;
let srv: TestServer;
let clientKeyPath: string;
let encryptedKeyPath: string;
let otherKeyPath: string;
let knownHostsPath: string;
const open: HostSession[] = [];

function kh(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function target(over: Partial<ConnectTarget> = {}): ConnectTarget {
  return {
    name: 'dev1',
    host: '127.0.0.1',
    port: srv.port,
    user: 'root',
    privateKey: clientKeyPath,
    knownHosts: knownHostsPath,
    connectTimeoutMs: 3000,
    ...over,
  };
}

async function session(over: Partial<ConnectTarget> = {}): Promise<HostSession> {
  const s = await connect(target(over));
  open.push(s);
  return s;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dsrctl-ssh-'));
  const clientKey = generateKeyPairSync('ed25519');
  clientKeyPath = join(dir, 'id_ed25519');
  writeFileSync(clientKeyPath, clientKey.private, { mode: 0o600 });
  // passphrase-protected key the server does not know: used to tell parse errors from auth errors
  const encrypted = generateKeyPairSync('ed25519', {
    passphrase: KEY_PASSPHRASE,
    cipher: 'aes256-cbc',
    rounds: 4,
  });
  encryptedKeyPath = join(dir, 'id_encrypted');
  writeFileSync(encryptedKeyPath, encrypted.private, { mode: 0o600 });
  otherKeyPath = join(dir, 'id_other');
  writeFileSync(otherKeyPath, generateKeyPairSync('ed25519').private, { mode: 0o600 });

  srv = await startServer(clientKey.public);
  knownHostsPath = kh('known_hosts', `[127.0.0.1]:${srv.port} ssh-ed25519 ${srv.edBlob.toString('base64')}\n`);
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await srv?.close();
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- tests

describe('exec', () => {
  it('returns stdout, stderr and exit codes, and counts execs', async () => {
    const s = await session();
    expect(s.name).toBe('dev1');
    expect(s.target).toBe(`root@127.0.0.1:${srv.port}`);
    expect(s.execCount).toBe(0);

    const r = await s.exec('echo hello; echo oops >&2; printf "é€\\n"');
    expect(r).toEqual({ code: 0, stdout: 'hello\né€\n', stderr: 'oops\n' });

    const r2 = await s.exec('echo partial; exit 3');
    expect(r2.code).toBe(3);
    expect(r2.stdout).toBe('partial\n');

    // the script really goes through stdin: multi-line constructs and $$ work
    const r3 = await s.exec('set -e\nf() {\n  echo "in f $1"\n}\nf x\nfalse\necho unreachable\n');
    expect(r3).toMatchObject({ code: 1, stdout: 'in f x\n' });
    expect(s.execCount).toBe(3);
  });

  it('keeps script line numbers and hides the pgid marker', async () => {
    const s = await session();
    const r = await s.exec('\n\nno_such_command_xyz\n');
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/\b3: no_such_command_xyz: not found/);
    expect(r.stderr).not.toContain('dsrctl-pgid');
  });

  it('reports death by signal as code null + signal', async () => {
    const s = await session();
    const r = await s.exec('kill -TERM $$');
    expect(r.code).toBeNull();
    expect(r.signal).toBe('SIGTERM');
  });

  it('handles large scripts and large output (flow control)', async () => {
    const s = await session();
    const payload = 'x'.repeat(300_000);
    const r = await s.exec(`cat <<'EOF' | wc -c\n${payload}\nEOF\nhead -c 2000000 /dev/zero | tr '\\0' a`);
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith('300001\n') || r.stdout.trimStart().startsWith('300001')).toBe(true);
    expect(r.stdout.length).toBeGreaterThanOrEqual(2_000_000);
  });

  it('serializes concurrent execs on one connection', async () => {
    const s = await session();
    srv.stats.max = 0;
    const results = await Promise.all([1, 2, 3, 4].map((i) => s.exec(`sleep 0.05; echo ${i}`)));
    expect(results.map((r) => r.stdout)).toEqual(['1\n', '2\n', '3\n', '4\n']);
    expect(srv.stats.max).toBe(1);
    expect(s.execCount).toBe(4);
  });

  it('times out: rejects with ExecTimeoutError, kills the command, session stays usable', async () => {
    const s = await session();
    srv.stats.killed.length = 0;
    const t0 = Date.now();
    const err = await rejection(s.exec('echo before; sleep 20', { timeoutMs: 400 }));
    const elapsed = Date.now() - t0;
    expect(err).toBeInstanceOf(ExecTimeoutError);
    expect(err.message).toBe(
      `dev1 (root@127.0.0.1:${srv.port}): command timed out after 400 ms; sent KILL to its process group`,
    );
    expect((err as ExecTimeoutError).stdout).toBe('before\n');
    expect(elapsed).toBeGreaterThanOrEqual(390);
    expect(elapsed).toBeLessThan(1500);
    // the session is still usable after a timeout
    const r = await s.exec('echo still here');
    expect(r.stdout).toBe('still here\n');
    expect(s.execCount).toBe(2);
    // The remote process group was killed through a second exec channel (the
    // test server, like sshd for root, ignores the "signal" request: ssh2's
    // Server drops channel requests after the client's EOF).
    expect(srv.stats.killed).toContain('SIGKILL');
    expect(s.execCount).toBe(2); // the internal kill exec is not counted
  });

  it('a conversation in one exec: output streams, the host waits at the marker (no timeout meanwhile), the answer runs as more script', async () => {
    const s = await session();
    const seen: string[] = [];
    let soFar = '';
    const r = await s.exec("trap 'echo bye' EXIT\necho first\necho '@@wait'\n", {
      timeoutMs: 300,
      onStdout: (t) => seen.push(t),
      then: {
        marker: '@@wait',
        timeoutMs: 2000,
        next: async (text) => {
          soFar = text;
          await new Promise((r) => setTimeout(r, 600)); // longer than the first timeout
          return 'echo second\nexit 4\n';
        },
      },
    });
    expect(soFar).toBe('first\n@@wait\n');
    expect(r).toMatchObject({ code: 4, stdout: 'first\n@@wait\nsecond\nbye\n' });
    expect(seen.join('')).toBe(r.stdout);
    expect(s.execCount).toBe(1);
  });

  it('a conversation finds its marker only as a line of its own, after a large output in many chunks and split across two', async () => {
    const s = await session();
    let soFar = '';
    // 200 KB first, a mention of the marker inside a line, then the marker written in two halves
    const script = "i=0; while [ $i -lt 2000 ]; do printf '%0100d\\n' $i; i=$((i+1)); done\necho 'say @@wait'\nprintf '@@wa'; sleep 0.2; printf 'it\\n'\n";
    const r = await s.exec(script, { then: { marker: '@@wait', timeoutMs: 2000, next: async (text) => ((soFar = text), 'echo after\n') } });
    expect(soFar.endsWith('say @@wait\n@@wait\n')).toBe(true);
    expect(soFar.length).toBe(2000 * 101 + 'say @@wait\n@@wait\n'.length);
    expect(r.stdout.endsWith('@@wait\nafter\n')).toBe(true);
  });

  it('a conversation whose caller gives up: stdin closes, the script ends (its EXIT trap runs)', async () => {
    const s = await session();
    const r = await s.exec("trap 'echo undecided' EXIT\necho '@@wait'\n", { then: { marker: '@@wait', timeoutMs: 2000, next: () => Promise.reject(new Error('no')) } });
    expect(r).toMatchObject({ code: 0, stdout: '@@wait\nundecided\n' });
  });

  it('a conversation whose script never prints the marker settles as an exec does', async () => {
    const s = await session();
    let called = false;
    const r = await s.exec('echo done; exit 0\n', { then: { marker: '@@wait', timeoutMs: 2000, next: async () => ((called = true), '') } });
    expect(r).toMatchObject({ code: 0, stdout: 'done\n' });
    expect(called).toBe(false);
  });
});

describe('host key verification', () => {
  const edLine = () => `ssh-ed25519 ${srv.edBlob.toString('base64')}`;

  it('accepts [127.0.0.1]:PORT in a host list', async () => {
    const p = kh('kh_list', `# lab\notherhost,[127.0.0.1]:${srv.port} ${edLine()} comment\n`);
    const s = await session({ knownHosts: p });
    expect((await s.exec('echo ok')).stdout).toBe('ok\n');
  });

  it('accepts a hashed entry', async () => {
    const salt = randomBytes(20);
    const hash = createHmac('sha1', salt).update(`[127.0.0.1]:${srv.port}`).digest('base64');
    const p = kh('kh_hashed', `|1|${salt.toString('base64')}|${hash} ${edLine()}\n`);
    const s = await session({ knownHosts: p });
    expect((await s.exec('echo ok')).code).toBe(0);
  });

  it('asks the server for the key type recorded in known_hosts', async () => {
    // server has ed25519 and ecdsa keys; ssh2 would normally pick ed25519
    const p = kh('kh_ecdsa', `[127.0.0.1]:${srv.port} ecdsa-sha2-nistp256 ${srv.ecdsaBlob.toString('base64')}\n`);
    const s = await session({ knownHosts: p });
    expect((await s.exec('echo ok')).code).toBe(0);
  });

  it('refuses an unknown host, showing the fingerprint', async () => {
    // a plain "127.0.0.1" entry does not cover a non-22 port (OpenSSH semantics)
    const p = kh('kh_unknown', `127.0.0.1 ${edLine()}\n`);
    const err = await rejection(connect(target({ knownHosts: p })));
    expect(err).toBeInstanceOf(HostKeyError);
    const fp = fingerprint(srv.edBlob);
    expect(err.message).toBe(
      `dev1 (root@127.0.0.1:${srv.port}): host key ${fp} (ssh-ed25519) is not in ${p}; add it after checking it out of band`,
    );
    expect(err).toMatchObject({ reason: 'unknown', fingerprint: fp, keyType: 'ssh-ed25519', host: 'dev1' });
  });

  it('refuses a mismatching key', async () => {
    const other = publicBlob(generateKeyPairSync('ed25519').public);
    const p = kh('kh_mismatch', `[127.0.0.1]:${srv.port} ssh-ed25519 ${other.toString('base64')}\n`);
    const err = await rejection(connect(target({ knownHosts: p })));
    expect(err).toBeInstanceOf(HostKeyError);
    expect((err as HostKeyError).reason).toBe('mismatch');
    expect(err.message).toContain(`host key ${fingerprint(srv.edBlob)} (ssh-ed25519) does not match`);
    expect(err.message).toContain(`(${fingerprint(other)} (ssh-ed25519))`);
    expect(err.message).toContain('possible man-in-the-middle; refusing to connect');
  });

  it('refuses a revoked key', async () => {
    const p = kh('kh_revoked', `[127.0.0.1]:${srv.port} ${edLine()}\n@revoked * ${edLine()}\n`);
    const err = await rejection(connect(target({ knownHosts: p })));
    expect(err).toBeInstanceOf(HostKeyError);
    expect((err as HostKeyError).reason).toBe('revoked');
    expect(err.message).toContain('@revoked');
  });

  it('fails on a missing known_hosts file, naming the path', async () => {
    const p = join(dir, 'nope', 'known_hosts');
    const err = await rejection(connect(target({ knownHosts: p })));
    expect(err).toBeInstanceOf(SshConfigError);
    expect(err.message).toBe(`dev1 (root@127.0.0.1:${srv.port}): known_hosts file ${p} does not exist`);
  });
});

describe('authentication', () => {
  it('rejects a wrong client key with AuthError naming the host', async () => {
    const err = await rejection(connect(target({ privateKey: otherKeyPath })));
    expect(err).toBeInstanceOf(AuthError);
    expect(err.message).toMatch(/^dev1 \(root@127\.0\.0\.1:\d+\): authentication failed/);
    expect((err as AuthError).methods).toEqual(['publickey']);
  });

  it('uses a password, after an unusable agent', async () => {
    const s = await session({
      privateKey: undefined,
      agent: join(dir, 'no-agent.sock'),
      password: PASSWORD,
    });
    expect((await s.exec('echo pw')).stdout).toBe('pw\n');
  });

  it('reports the agent problem when nothing works', async () => {
    const err = await rejection(
      connect(target({ privateKey: undefined, agent: join(dir, 'no-agent.sock'), password: 'wrong' })),
    );
    expect(err).toBeInstanceOf(AuthError);
    expect(err.message).toContain('agent, password');
    expect(err.message).toContain('ssh-agent:');
  });

  it('decrypts a key with its passphrase; wrong passphrase is a config error', async () => {
    // right passphrase: key loads, server does not know this key -> AuthError (not a parse error)
    const err1 = await rejection(connect(target({ privateKey: encryptedKeyPath, passphrase: KEY_PASSPHRASE })));
    expect(err1).toBeInstanceOf(AuthError);
    const err2 = await rejection(connect(target({ privateKey: encryptedKeyPath, passphrase: 'nope' })));
    expect(err2).toBeInstanceOf(SshConfigError);
    expect(err2.message).toContain(`cannot load private key ${encryptedKeyPath}`);
    const err3 = await rejection(connect(target({ privateKey: encryptedKeyPath })));
    expect(err3).toBeInstanceOf(SshConfigError);
  });

  it('requires some auth method', async () => {
    const err = await rejection(connect(target({ privateKey: undefined })));
    expect(err).toBeInstanceOf(SshConfigError);
  });
});

describe('connection failures', () => {
  it('connection refused -> HostConnectionError(connect)', async () => {
    const tmp = net.createServer();
    tmp.listen(0, '127.0.0.1');
    await once(tmp, 'listening');
    const port = (tmp.address() as net.AddressInfo).port;
    await new Promise<void>((r) => tmp.close(() => r()));
    const err = await rejection(connect(target({ port })));
    expect(err).toBeInstanceOf(HostConnectionError);
    expect((err as HostConnectionError).phase).toBe('connect');
    expect(err.message).toMatch(/^cannot connect to dev1 \(root@127\.0\.0\.1:\d+\): .*ECONNREFUSED/);
  });

  it('silent server -> handshake timeout', async () => {
    const held: net.Socket[] = [];
    const mute = net.createServer((s) => held.push(s));
    mute.listen(0, '127.0.0.1');
    await once(mute, 'listening');
    const port = (mute.address() as net.AddressInfo).port;
    const t0 = Date.now();
    const err = await rejection(connect(target({ port, connectTimeoutMs: 400 })));
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(err).toBeInstanceOf(HostConnectionError);
    expect(err.message).toContain('no SSH handshake within 400 ms');
    held.forEach((s) => s.destroy());
    await new Promise<void>((r) => mute.close(() => r()));
  });

  it('socket destroyed mid-exec -> HostConnectionError for running, queued and later execs', async () => {
    const s = await session();
    const started = once(srv.events, 'exec');
    const running = s.exec('echo started; sleep 20');
    const queued = s.exec('echo never');
    // attach handlers now so nothing is ever unhandled
    const runningErr = rejection(running);
    const queuedErr = rejection(queued);
    await started;
    await new Promise((r) => setTimeout(r, 100));
    srv.dropAll();

    const e1 = await runningErr;
    expect(e1).toBeInstanceOf(HostConnectionError);
    expect(e1.message).toMatch(/^connection to dev1 \(root@127\.0\.0\.1:\d+\) lost: /);
    expect((e1 as HostConnectionError).phase).toBe('lost');
    expect(await queuedErr).toBeInstanceOf(HostConnectionError);
    const e3 = await rejection(s.exec('echo later'));
    expect(e3).toBeInstanceOf(HostConnectionError);
    expect(e3).toBeInstanceOf(SshError);
    expect(s.execCount).toBe(1);
    await s.close();
  });
});

describe('close', () => {
  it('is idempotent and makes later execs fail', async () => {
    const s = await session();
    await s.exec('true');
    const p1 = s.close();
    const p2 = s.close();
    expect(p1).toBe(p2);
    await p1;
    await s.close();
    const err = await rejection(s.exec('true'));
    expect(err).toBeInstanceOf(HostConnectionError);
    expect((err as HostConnectionError).phase).toBe('closed');
    expect(err.message).toBe(`connection to dev1 (root@127.0.0.1:${srv.port}) is closed`);
  });

  it('rejects an exec still running at close()', async () => {
    const s = await session();
    const started = once(srv.events, 'exec');
    const running = rejection(s.exec('sleep 20'));
    await started;
    await s.close();
    const err = await running;
    expect(err).toBeInstanceOf(HostConnectionError);
    expect((err as HostConnectionError).phase).toBe('closed');
  });
});
