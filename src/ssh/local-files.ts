import { readFileSync, statSync } from 'node:fs';
import ssh2 from 'ssh2';

const { utils } = ssh2;
import type { ConnectTarget } from './types.js';
import { UserError } from '../util/errors.js';

/**
 * The files on this machine that the SSH targets name (private keys, known_hosts), checked once
 * before any connection: a missing or wrong file is bad input (exit 2, the field and the path,
 * one line), not ten connection errors and a claim about hosts that were never read.
 */
export function checkLocalFiles(targets: ConnectTarget[]): void {
  const seen = new Set<string>();
  const visit = (t: ConnectTarget) => {
    const f = t.fields ?? { privateKey: 'ssh.private_key', knownHosts: 'ssh.known_hosts' };
    checkOnce(seen, `known_hosts:${t.knownHosts}`, () => readable(t.knownHosts, f.knownHosts, 'known_hosts file'));
    if (t.privateKey !== undefined) {
      const path = t.privateKey;
      checkOnce(seen, `key:${path}:${t.passphrase ?? ''}`, () => privateKey(path, t.passphrase, f.privateKey));
    }
    if (t.via) visit(t.via);
  };
  for (const t of targets) visit(t);
}

function checkOnce(seen: Set<string>, key: string, check: () => void): void {
  if (seen.has(key)) return;
  seen.add(key);
  check();
}

function readable(path: string, field: string, what: string): Buffer {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`${field}: ${what} ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`}`);
  }
  if (!st.isFile()) throw new UserError(`${field}: ${what} ${path} is not a regular file`);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UserError(`${field}: ${what} ${path} cannot be read (${(e as NodeJS.ErrnoException).code})`);
  }
}

function privateKey(path: string, passphrase: string | undefined, field: string): void {
  const data = readable(path, field, 'private key file');
  const parsed = utils.parseKey(data, passphrase);
  if (parsed instanceof Error) {
    const why = /passphrase/i.test(parsed.message) ? `${parsed.message} (set ssh.passphrase)` : parsed.message;
    throw new UserError(`${field}: ${path} is not a usable private key: ${why}`);
  }
  const pub = publicKeyProblem(parsed, path);
  if (pub) throw new UserError(`${field}: ${pub}`);
}

/** "PATH holds a public key; ..." when a parsed key file is not a private key (a .pub given by mistake). */
export function publicKeyProblem(parsed: ReturnType<typeof utils.parseKey>, path: string): string | undefined {
  if (parsed instanceof Error) return undefined;
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key && key.isPrivateKey()) return undefined;
  return `${path} holds a public key; give the private key${path.endsWith('.pub') ? ` (${path.slice(0, -4)}?)` : ''}`;
}
