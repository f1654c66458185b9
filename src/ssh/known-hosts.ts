/**
 * OpenSSH known_hosts parsing and host key checking. Pure: no I/O.
 *
 * Supported syntax (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"):
 *   - comma-separated host patterns, `[host]:port` for non-22 ports,
 *     `*` / `?` wildcards and `!negation`
 *   - hashed host names `|1|base64(salt)|base64(HMAC-SHA1(salt, host))`
 *   - `@revoked` (the key is refused) and `@cert-authority` (ignored: dsrctl
 *     does not do host certificates)
 *   - comments (`#`) and blank lines; malformed lines are skipped
 *
 * Like OpenSSH, a host on port 22 is looked up as `host`, on any other port as
 * `[host]:port` (a plain `host` entry does NOT cover a non-22 port). Host names
 * are compared case-insensitively.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export type KnownHostMarker = 'revoked' | 'cert-authority';

export interface KnownHostEntry {
  /** 1-based line number in the file */
  line: number;
  marker?: KnownHostMarker;
  /** raw host patterns (hashed entries are kept as `|1|...`) */
  patterns: string[];
  /** key type as written in the file ("ssh-ed25519", ...) */
  keyType: string;
  /** decoded public key blob */
  key: Buffer;
}

export type HostKeyCheck =
  | { ok: true; fingerprint: string; keyType: string }
  | {
      ok: false;
      reason: 'unknown' | 'mismatch' | 'revoked';
      /** fingerprint of the key the server presented */
      fingerprint: string;
      /** key type parsed from the presented blob */
      keyType: string;
      /** for 'mismatch': "SHA256:... (type)" of the keys recorded for this host */
      expected?: string[];
    };

/** OpenSSH-style fingerprint: `SHA256:` + unpadded base64 of sha256(blob). */
export function fingerprint(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

/** Key type from an SSH wire-format public key blob (first length-prefixed string). */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const len = keyBlob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > keyBlob.length) return 'unknown';
  const type = keyBlob.subarray(4, 4 + len).toString('latin1');
  return /^[\x21-\x7e]+$/.test(type) ? type : 'unknown';
}

/** Name under which OpenSSH looks a host up: `host` for port 22, else `[host]:port`. */
export function hostLookupName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

export function parseKnownHosts(text: string): KnownHostEntry[] {
  // every connection of a run checks the same file: parse it once (twice per connection before)
  if (lastParsed?.text === text) return lastParsed.entries;
  const entries = parseKnownHostsText(text);
  lastParsed = { text, entries };
  return entries;
}

let lastParsed: { text: string; entries: KnownHostEntry[] } | undefined;

function parseKnownHostsText(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const fields = raw.split(/\s+/);
    let marker: KnownHostMarker | undefined;
    if (fields[0]!.startsWith('@')) {
      const m = fields.shift()!;
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else continue; // unknown marker: skip the line (as OpenSSH does)
    }
    const [hosts, keyType, keyB64] = fields;
    if (!hosts || !keyType || !keyB64 || !BASE64_RE.test(keyB64)) continue;
    const key = Buffer.from(keyB64, 'base64');
    if (key.length === 0) continue;
    entries.push({
      line: i + 1,
      ...(marker ? { marker } : {}),
      patterns: hosts.split(',').filter((p) => p !== ''),
      keyType,
      key,
    });
  }
  return entries;
}

/** Glob match with `*` and `?` (OpenSSH match_pattern), case-insensitive, linear-time. */
function globMatch(name: string, pattern: string): boolean {
  const s = name.toLowerCase();
  const p = pattern.toLowerCase();
  let si = 0;
  let pi = 0;
  let star = -1;
  let mark = 0;
  while (si < s.length) {
    if (pi < p.length && (p[pi] === '?' || (p[pi] !== '*' && p[pi] === s[si]))) {
      si++;
      pi++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      mark = si;
    } else if (star !== -1) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}

function hashedMatch(name: string, pattern: string): boolean {
  // |1|salt|hash
  const parts = pattern.split('|');
  if (parts.length !== 4 || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2]!, 'base64');
  const want = Buffer.from(parts[3]!, 'base64');
  if (salt.length === 0 || want.length !== 20) return false;
  const got = createHmac('sha1', salt).update(name).digest();
  return timingSafeEqual(got, want);
}

/**
 * Whether an entry's host field covers `name` (already in lookup form).
 * Any negated pattern that matches excludes the host, as in OpenSSH.
 */
export function entryMatchesHost(entry: KnownHostEntry, name: string): boolean {
  let positive = false;
  for (const p of entry.patterns) {
    if (p.startsWith('|')) {
      if (hashedMatch(name, p)) positive = true;
    } else if (p.startsWith('!')) {
      if (globMatch(name, p.slice(1))) return false;
    } else if (globMatch(name, p)) {
      positive = true;
    }
  }
  return positive;
}

/** Plain (non-marker) entries recorded for host:port. */
export function keysForHost(knownHostsText: string, host: string, port: number): KnownHostEntry[] {
  const name = hostLookupName(host, port);
  return parseKnownHosts(knownHostsText).filter(
    (e) => e.marker === undefined && entryMatchesHost(e, name),
  );
}

/**
 * Check a presented host key.
 *  - revoked: the blob appears on any `@revoked` line. Stricter than OpenSSH,
 *    which only honours @revoked lines whose host pattern matches: a revoked
 *    key is refused for every host.
 *  - ok: a plain entry for this host carries exactly this blob.
 *  - mismatch: the host has entries, none with this blob (whatever their type).
 *  - unknown: no entry for the host at all.
 */
export function checkHostKey(
  knownHostsText: string,
  host: string,
  port: number,
  keyBlob: Buffer,
): HostKeyCheck {
  const fp = fingerprint(keyBlob);
  const keyType = keyTypeOf(keyBlob);
  const entries = parseKnownHosts(knownHostsText);
  if (entries.some((e) => e.marker === 'revoked' && e.key.equals(keyBlob))) {
    return { ok: false, reason: 'revoked', fingerprint: fp, keyType };
  }
  const name = hostLookupName(host, port);
  const forHost = entries.filter((e) => e.marker === undefined && entryMatchesHost(e, name));
  if (forHost.some((e) => e.key.equals(keyBlob))) return { ok: true, fingerprint: fp, keyType };
  if (forHost.length === 0) return { ok: false, reason: 'unknown', fingerprint: fp, keyType };
  const expected = [...new Set(forHost.map((e) => `${fingerprint(e.key)} (${keyTypeOf(e.key)})`))];
  return { ok: false, reason: 'mismatch', fingerprint: fp, keyType, expected };
}

const DEFAULT_HOST_KEY_ALGOS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
] as const;
export type HostKeyAlgorithm = (typeof DEFAULT_HOST_KEY_ALGOS)[number];

/**
 * Host key algorithms to offer, preferring the types already recorded for the
 * host (what OpenSSH does), so a server with several host keys presents the
 * one we know instead of failing as a "mismatch".
 */
export function preferredHostKeyAlgorithms(
  knownHostsText: string,
  host: string,
  port: number,
): HostKeyAlgorithm[] {
  const preferred: HostKeyAlgorithm[] = [];
  for (const e of keysForHost(knownHostsText, host, port)) {
    const type = keyTypeOf(e.key);
    const algos: HostKeyAlgorithm[] =
      type === 'ssh-rsa'
        ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']
        : (DEFAULT_HOST_KEY_ALGOS as readonly string[]).includes(type)
          ? [type as HostKeyAlgorithm]
          : [];
    for (const a of algos) if (!preferred.includes(a)) preferred.push(a);
  }
  return [...preferred, ...DEFAULT_HOST_KEY_ALGOS.filter((a) => !preferred.includes(a))];
}
