/**
 * Jump hosts and sudo against in-process ssh2 Servers on 127.0.0.1:
 * - a "bastion" that accepts `direct-tcpip` channels (ssh2 forwardOut) and pipes them to the
 *   target server, mapping made-up names (dev1.internal:22) to it, so the client can reach the
 *   target only through the bastion;
 * - a target whose exec handler runs the command with /bin/sh, with a fake `sudo` first in PATH
 *   (behaviour set per test: no password, a password, missing).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, ServerChannel } from 'ssh2';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ExecTimeoutError, HostConnectionError, HostKeyError, SudoError } from './errors.js';
import { SUDO_N_COMMAND, SUDO_S_COMMAND, connect, sharedConnectionCount } from './session.js';
import type { ConnectTarget, HostSession } from './types.js';
import { generateKeyPairSync } from '../../test/support/keys.js';

const { Server, utils } = ssh2;

const SUDO_PASSWORD = 'sudo-Pa55 with spaces';
const SSH_PASSWORD = 'ssh-pa55word';
const KEY_PASSPHRASE = 'key-pa55phrase';
const SECRETS = [SUDO_PASSWORD, SSH_PASSWORD, KEY_PASSPHRASE];

function blob(pub: string): Buffer {
  const k = utils.parseKey(pub);
  if (k instanceof Error) throw k;
  return k.getPublicSSH();
}

interface TestServer {
  port: number;
  hostKeyLine: string;
  /** exec commands received, in order */
  commands: string[];
  /** direct-tcpip requests: "host:port" */
  forwards: string[];
  /** TCP connections accepted so far / open now */
  connections: { total: number; open: number };
  /** destroy every TCP connection to the server */
  dropAll(): void;
  close(): Promise<void>;
}

interface ServerOptions {
  allowedKeys: string[];
  /** PATH directory put first for the commands (the fake sudo) */
  pathDir?: string;
  env?: NodeJS.ProcessEnv;
  /** accept direct-tcpip and pipe "name:port" to 127.0.0.1:<mapped port>; absent: no forwarding at all */
  forward?: Map<string, number>;
}

async function startServer(o: ServerOptions): Promise<TestServer> {
  const hostKey = generateKeyPairSync('ed25519');
  const allowed = o.allowedKeys.map((k) => {
    const p = utils.parseKey(k);
    if (p instanceof Error) throw p;
    return p;
  });
  const commands: string[] = [];
  const forwards: string[] = [];
  const connections = { total: 0, open: 0 };
  const sockets = new Set<net.Socket>();
  const children = new Set<ChildProcess>();

  const server = new Server({ hostKeys: [hostKey.private] }, (client: Connection) => {
    client.on('error', () => {});
    client.on('authentication', (ctx: AuthContext) => {
      if (ctx.method === 'password' && ctx.password === SSH_PASSWORD) return ctx.accept();
      if (ctx.method === 'publickey') {
        const k = allowed.find((a) => a.type === ctx.key.algo && a.getPublicSSH().equals(ctx.key.data));
        if (k && (!ctx.signature || !ctx.blob || k.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true)) return ctx.accept();
      }
      ctx.reject(['publickey', 'password']);
    });
    client.on('ready', () => {
      if (o.forward) {
        const map = o.forward;
        client.on('tcpip', (accept, reject, info) => {
          forwards.push(`${info.destIP}:${info.destPort}`);
          const port = map.get(`${info.destIP}:${info.destPort}`);
          if (port === undefined) return reject();
          const up = net.connect(port, '127.0.0.1');
          up.on('error', () => reject());
          up.once('connect', () => {
            const ch = accept();
            ch.on('error', () => {});
            ch.pipe(up).pipe(ch);
            up.on('close', () => ch.destroy());
            ch.on('close', () => up.destroy());
          });
        });
      }
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('exec', (accept, _reject, info) => {
          const stream: ServerChannel = accept();
          stream.on('error', () => {});
          commands.push(info.command);
          const args = info.command === 'sh -s' ? ['-s'] : ['-c', info.command];
          const env = { ...process.env, ...o.env, PATH: `${o.pathDir ? `${o.pathDir}:` : ''}${process.env.PATH}` };
          const c = spawn('/bin/sh', args, { detached: true, stdio: 'pipe', env });
          children.add(c);
          c.stdin.on('error', () => {});
          stream.pipe(c.stdin);
          c.stdout.pipe(stream, { end: false });
          c.stderr.pipe(stream.stderr, { end: false });
          c.on('close', (code, signal) => {
            children.delete(c);
            try {
              if (signal) stream.exit(signal.replace(/^SIG/, ''), false, '');
              else stream.exit(code ?? 255);
              stream.end();
            } catch {
              /* client gone */
            }
          });
        });
      });
    });
  });

  const front = net.createServer((sock) => {
    sockets.add(sock);
    connections.total++;
    connections.open++;
    sock.on('close', () => {
      sockets.delete(sock);
      connections.open--;
    });
    server.injectSocket(sock);
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  const port = (front.address() as net.AddressInfo).port;
  return {
    port,
    hostKeyLine: `ssh-ed25519 ${blob(hostKey.public).toString('base64')}`,
    commands,
    forwards,
    connections,
    dropAll() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      for (const c of children) {
        try {
          process.kill(-c.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await new Promise<void>((r) => front.close(() => r()));
    },
  };
}

/**
 * A stand-in for sudo: parses -n, -S, -p like sudo, logs the command, and asks for the password
 * (read byte by byte from stdin, as sudo does) according to $FAKE_SUDO_MODE's file.
 */
const FAKE_SUDO = String.raw`#!/bin/sh
mode=$(cat "$FAKE_SUDO_MODE")
nonint= fromstdin= prompt='[sudo] password for ops: '
while [ $# -gt 0 ]; do
  case $1 in
    -n) nonint=1; shift ;;
    -S) fromstdin=1; shift ;;
    -p) prompt=$2; shift 2 ;;
    --) shift; break ;;
    -*) echo "sudo: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
case $mode in
  missing) echo "sh: 1: sudo: not found" >&2; exit 127 ;;
  nopasswd) ;;
  password:*)
    want=$(printf '%s\n' "$mode" | sed 's/^password://')
    [ -n "$nonint" ] && { echo "sudo: a password is required" >&2; exit 1; }
    [ -n "$fromstdin" ] || { echo "sudo: a terminal is required to read the password" >&2; exit 1; }
    tries=0
    while :; do
      printf '%s' "$prompt" >&2
      IFS= read -r got || { echo; echo "sudo: no password was provided" >&2; exit 1; }
      [ "$got" = "$want" ] && break
      tries=$((tries + 1))
      echo "Sorry, try again." >&2
      [ $tries -ge 3 ] && { echo "sudo: 3 incorrect password attempts" >&2; exit 1; }
    done ;;
esac
echo "$*" >>"$FAKE_SUDO_LOG"
FAKE_SUDO_ROOT=1 exec "$@"
`;

let dir: string;
let keyPath: string;
let encKeyPath: string;
let bastion: TestServer;
let dev: TestServer;
let noForward: TestServer;
let knownHosts: string;
let sudoMode: string;
let sudoLog: string;
const open: HostSession[] = [];

function setSudo(mode: string): void {
  writeFileSync(sudoMode, mode);
  writeFileSync(sudoLog, '');
}

/** The jump host ("proxy") and a target reached through it. */
function proxyTarget(over: Partial<ConnectTarget> = {}): ConnectTarget {
  return { name: 'proxy', host: '127.0.0.1', port: bastion.port, user: 'root', privateKey: keyPath, knownHosts, connectTimeoutMs: 3000, ...over };
}
function devTarget(name: string, over: Partial<ConnectTarget> = {}): ConnectTarget {
  return { name, host: `${name}.internal`, port: 22, user: 'ops', privateKey: keyPath, knownHosts, connectTimeoutMs: 3000, via: proxyTarget(), ...over };
}
/** A target on the dev server directly (no jump), for the sudo tests. */
function direct(over: Partial<ConnectTarget> = {}): ConnectTarget {
  return { name: 'dev1', host: '127.0.0.1', port: dev.port, user: 'ops', privateKey: keyPath, knownHosts, connectTimeoutMs: 3000, ...over };
}

async function session(t: ConnectTarget, share = false): Promise<HostSession> {
  const s = await connect(t, { share });
  open.push(s);
  return s;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

function noSecrets(...texts: string[]): void {
  for (const t of texts) for (const s of SECRETS) expect(t).not.toContain(s);
}

const until = async (f: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!f() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return f();
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dsrctl-access-'));
  const key = generateKeyPairSync('ed25519');
  keyPath = join(dir, 'id_ed25519');
  writeFileSync(keyPath, key.private, { mode: 0o600 });
  const enc = generateKeyPairSync('ed25519', { passphrase: KEY_PASSPHRASE, cipher: 'aes256-cbc', rounds: 4 });
  encKeyPath = join(dir, 'id_encrypted');
  writeFileSync(encKeyPath, enc.private, { mode: 0o600 });
  writeFileSync(join(dir, 'sudo'), FAKE_SUDO, { mode: 0o755 });
  sudoMode = join(dir, 'sudo-mode');
  sudoLog = join(dir, 'sudo-log');
  setSudo('nopasswd');
  const env = { FAKE_SUDO_MODE: sudoMode, FAKE_SUDO_LOG: sudoLog };
  dev = await startServer({ allowedKeys: [key.public, enc.public], pathDir: dir, env });
  const map = new Map([1, 2, 3, 4].map((i) => [`dev${i}.internal:22`, dev.port]));
  bastion = await startServer({ allowedKeys: [key.public, enc.public], forward: map });
  noForward = await startServer({ allowedKeys: [key.public] });
  // the devs' key is known under their own names only; the bastions' under their address
  knownHosts = join(dir, 'known_hosts');
  writeFileSync(
    knownHosts,
    [
      `[127.0.0.1]:${bastion.port} ${bastion.hostKeyLine}`,
      `[127.0.0.1]:${noForward.port} ${noForward.hostKeyLine}`,
      `[127.0.0.1]:${dev.port} ${dev.hostKeyLine}`,
      `dev1.internal,dev2.internal,dev3.internal,dev4.internal ${dev.hostKeyLine}`,
      '',
    ].join('\n'),
  );
});

beforeEach(() => setSudo('nopasswd'));

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  expect(await until(() => sharedConnectionCount() === 0)).toBe(true);
});

afterAll(async () => {
  await Promise.all([bastion?.close(), dev?.close(), noForward?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('jump hosts', () => {
  it('reaches a host only the bastion can resolve, through forwardOut; the target key is checked under its own name', async () => {
    const before = bastion.forwards.length;
    const s = await session(devTarget('dev1'));
    expect(s.target).toBe(`ops@dev1.internal:22 via proxy root@127.0.0.1:${bastion.port}`);
    const r = await s.exec('echo "through the bastion"; echo err >&2');
    expect(r).toEqual({ code: 0, stdout: 'through the bastion\n', stderr: 'err\n' });
    expect(bastion.forwards.slice(before)).toEqual(['dev1.internal:22']);

    // the target's key recorded under another name only: refused, naming both hops
    const kh = join(dir, 'kh-wrong-name');
    writeFileSync(kh, `[127.0.0.1]:${bastion.port} ${bastion.hostKeyLine}\nother.internal ${dev.hostKeyLine}\n`);
    const err = await rejection(connect(devTarget('dev1', { knownHosts: kh, via: proxyTarget({ knownHosts: kh }) })));
    expect(err).toBeInstanceOf(HostKeyError);
    expect(err.message).toMatch(new RegExp(`^dev1 \\(ops@dev1\\.internal:22 via proxy root@127\\.0\\.0\\.1:${bastion.port}\\): host key SHA256:\\S+ \\(ssh-ed25519\\) is not in ${kh}`));
  });

  it('checks the bastion key too: an unknown bastion fails, naming both hops', async () => {
    const kh = join(dir, 'kh-no-bastion');
    writeFileSync(kh, `dev1.internal ${dev.hostKeyLine}\n`);
    const err = await rejection(connect(devTarget('dev1', { via: proxyTarget({ knownHosts: kh }) })));
    expect(err).toBeInstanceOf(HostConnectionError);
    expect(err.message).toMatch(
      new RegExp(`^cannot connect to dev1 \\(ops@dev1\\.internal:22 via proxy root@127\\.0\\.0\\.1:${bastion.port}\\): the jump host failed: proxy \\(root@127\\.0\\.0\\.1:${bastion.port}\\): host key .* is not in ${kh}`),
    );
    expect((err.cause as Error).name).toBe('HostKeyError');
  });

  it('shares one bastion connection: the proxy session itself and every host through it; closes it after the last', async () => {
    const conns = bastion.connections.total;
    const proxy = await session(proxyTarget(), true);
    const devs = await Promise.all(['dev1', 'dev2', 'dev3', 'dev4'].map((n) => session(devTarget(n))));
    expect(bastion.connections.total - conns).toBe(1);
    expect(sharedConnectionCount()).toBe(1);
    const outs = await Promise.all(devs.map((d) => d.exec('echo $FAKE_SUDO_ROOT-ok')));
    expect(outs.map((o) => o.stdout)).toEqual(['-ok\n', '-ok\n', '-ok\n', '-ok\n']);
    expect((await proxy.exec('echo proxy')).stdout).toBe('proxy\n');
    expect(proxy.execCount).toBe(1);
    expect(devs[0]!.execCount).toBe(1);

    // the proxy's session closes first: the tunnels keep working on its connection
    await proxy.close();
    expect((await rejection(proxy.exec('true'))).message).toBe(`connection to proxy (root@127.0.0.1:${bastion.port}) is closed`);
    expect((await devs[2]!.exec('echo still')).stdout).toBe('still\n');
    expect(bastion.connections.open).toBeGreaterThan(0);
    await Promise.all(devs.map((d) => d.close()));
    expect(await until(() => bastion.connections.open === 0 && dev.connections.open === 0)).toBe(true);
    expect(sharedConnectionCount()).toBe(0);
  });

  it('a destination the bastion cannot reach: the error names both hops and what to check', async () => {
    const err = await rejection(connect(devTarget('dev9')));
    expect(err).toBeInstanceOf(HostConnectionError);
    expect(err.message).toBe(
      `cannot connect to dev9 (ops@dev9.internal:22 via proxy root@127.0.0.1:${bastion.port}): proxy (root@127.0.0.1:${bastion.port}) could not open a TCP connection to dev9.internal:22: is the address right, reachable from proxy (root@127.0.0.1:${bastion.port}), and sshd listening there?`,
    );
  });

  it('a bastion that does not forward: names AllowTcpForwarding', async () => {
    const err = await rejection(connect(devTarget('dev1', { via: proxyTarget({ port: noForward.port }) })));
    expect(err.message).toMatch(/^cannot connect to dev1 \(ops@dev1\.internal:22 via proxy root@127\.0\.0\.1:\d+\): proxy \(root@127\.0\.0\.1:\d+\) /);
    expect(err.message).toMatch(/refused to forward to dev1\.internal:22: its sshd must allow TCP forwarding for this user \(AllowTcpForwarding, PermitOpen\)$/);
  });

  it('the bastion connection lost: the tunneled session says so', async () => {
    const s = await session(devTarget('dev1'));
    expect((await s.exec('true')).code).toBe(0);
    bastion.dropAll();
    const err = await rejection(s.exec('sleep 5'));
    expect(err).toBeInstanceOf(HostConnectionError);
    expect(err.message).toMatch(/^connection to dev1 \(ops@dev1\.internal:22 via proxy root@127\.0\.0\.1:\d+\) lost: its jump host connection is gone \(connection to proxy .* lost: /);
  });

  it('password and key-passphrase authentication work on both hops, and no secret shows', async () => {
    const s = await session(
      devTarget('dev1', {
        privateKey: undefined,
        password: SSH_PASSWORD,
        via: proxyTarget({ privateKey: encKeyPath, passphrase: KEY_PASSPHRASE }),
      }),
    );
    const r = await s.exec('echo authed');
    expect(r.stdout).toBe('authed\n');
    const err = await rejection(connect(devTarget('dev2', { privateKey: undefined, password: `${SSH_PASSWORD}x` })));
    noSecrets(err.message, String((err.cause as Error | undefined)?.message), s.target);
  });
});

describe('sudo', () => {
  it('no password needed: the script runs through `exec sudo -n sh -s`, on stdin', async () => {
    const s = await session(direct({ sudo: true }));
    const n = dev.commands.length;
    const r = await s.exec('set -e\nf() { echo "root=$FAKE_SUDO_ROOT $1"; }\nf arg\n');
    expect(r).toEqual({ code: 0, stdout: 'root=1 arg\n', stderr: '' });
    expect(dev.commands.slice(n)).toEqual([SUDO_N_COMMAND]);
    expect(SUDO_N_COMMAND).toBe('exec sudo -n sh -s');
    expect(readFileSync(sudoLog, 'utf8')).toBe('sh -s\n');
  });

  it('sudo wants a password that was not given: SudoError naming the host and the fix; the script never ran', async () => {
    setSudo(`password:${SUDO_PASSWORD}`);
    const s = await session(direct({ sudo: true }));
    const marker = join(dir, 'ran-1');
    const err = await rejection(s.exec(`touch ${marker}`));
    expect(err).toBeInstanceOf(SudoError);
    expect((err as SudoError).reason).toBe('password-required');
    expect(err.message).toMatch(new RegExp(`^dev1 \\(ops@127\\.0\\.0\\.1:${dev.port}\\): sudo asks ops for a password \\("sudo: a password is required"\\); nothing was run`));
    expect(err.message).toContain('NOPASSWD');
    expect(err.message).toContain('ssh.sudo_password');
    expect(existsSync(marker)).toBe(false);
  });

  it('with sudo_password: sudo -S gets it when it prompts, then the script; nothing of it in the output', async () => {
    setSudo(`password:${SUDO_PASSWORD}`);
    const s = await session(direct({ sudo: true, sudoPassword: SUDO_PASSWORD }));
    const n = dev.commands.length;
    const r = await s.exec('cat <<EOF\nline one\nroot=$FAKE_SUDO_ROOT\nEOF\necho warn >&2\nread -r x || echo "stdin empty"\n');
    expect(r).toEqual({ code: 0, stdout: 'line one\nroot=1\nstdin empty\n', stderr: 'warn\n' });
    expect(dev.commands.slice(n)).toEqual([SUDO_S_COMMAND]);
    noSecrets(r.stdout, r.stderr, ...dev.commands);
    // a second exec on the same session does it again
    expect((await s.exec('echo again')).stdout).toBe('again\n');
  });

  it('sudo_password given but sudo does not ask: the password is never sent', async () => {
    setSudo('nopasswd');
    const s = await session(direct({ sudo: true, sudoPassword: SUDO_PASSWORD }));
    // had the password been written, `sh -s` would have read it as the first command line
    const r = await s.exec('echo fine');
    expect(r).toEqual({ code: 0, stdout: 'fine\n', stderr: '' });
  });

  it('a wrong sudo_password: SudoError, nothing run, the password nowhere', async () => {
    setSudo(`password:${SUDO_PASSWORD}`);
    const s = await session(direct({ sudo: true, sudoPassword: 'not-it' }));
    const marker = join(dir, 'ran-2');
    const err = await rejection(s.exec(`touch ${marker}`));
    expect(err).toBeInstanceOf(SudoError);
    expect((err as SudoError).reason).toBe('wrong-password');
    expect(err.message).toContain('sudo did not accept the sudo_password given for ops');
    expect(err.message).not.toContain('not-it');
    expect(existsSync(marker)).toBe(false);
    expect(readFileSync(sudoLog, 'utf8')).toBe('');
  });

  it('sudo missing: says so', async () => {
    setSudo('missing');
    const s = await session(direct({ sudo: true }));
    const err = await rejection(s.exec('true'));
    expect(err).toBeInstanceOf(SudoError);
    expect(err.message).toContain('sudo is not installed');
  });

  it('a timed-out command under sudo is killed through sudo as well', async () => {
    const s = await session(direct({ sudo: true }));
    const n = dev.commands.length;
    const err = await rejection(s.exec('sleep 20', { timeoutMs: 400 }));
    expect(err).toBeInstanceOf(ExecTimeoutError);
    expect(err.message).toContain('sent KILL to its process group');
    expect(await until(() => dev.commands.length > n + 1)).toBe(true);
    expect(dev.commands[n + 1]).toMatch(/^sudo -n sh -c 'kill -s KILL -- -\d+ 2>\/dev\/null; exit 0'$/);
    expect((await s.exec('echo after')).stdout).toBe('after\n');
  });

  it('sudo through a jump host', async () => {
    setSudo(`password:${SUDO_PASSWORD}`);
    const s = await session(devTarget('dev3', { sudo: true, sudoPassword: SUDO_PASSWORD }));
    expect((await s.exec('echo root=$FAKE_SUDO_ROOT')).stdout).toBe('root=1\n');
  });
});
