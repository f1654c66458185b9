import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  checkHostKey,
  fingerprint,
  keyTypeOf,
  parseKnownHosts,
  preferredHostKeyAlgorithms,
} from './known-hosts.js';

// Fixtures produced with OpenSSH 9.2: ssh-keygen -t ed25519 / -t rsa, `ssh-keygen -lf`, `ssh-keygen -H`.
const ED_B64 = 'AAAAC3NzaC1lZDI1NTE5AAAAICcOJUCGhp6Wkwaa/J+IhJ92n1DwOG4FMq5buaVPF7s9';
const ED_FP = 'SHA256:N22ioULv89wsR6N+OLXATfdvMwLqQJpf6aVOWeiDyVY';
const RSA_B64 =
  'AAAAB3NzaC1yc2EAAAADAQABAAABAQDl0LRtIipvxzBvCRKxNprKSlxwvlCZNrdnNSleCMymLiLnSmZDOsmhfr9vK8c11ipAol4Q7BziC0FQgZY3DOh8XemIZSDiteUvj7pNAOL1GcoG0IvelwyhTXdvKSOuR/9G0afYC+xA6TgYZ0h510eoM1m7WTqrck3rzwNJwT0qSeNupaHI8TA7Vn40rSQYjGdS+ZskYPU5UwR0M7SsKpBjB/M6g11WJAPdDke2L6thIghjM12ic8t4jeObfLaZtU37VDzeXYZaHyN8cWhcAkQLxF0ruG+phFotlL2wpN4eBGVdcwoRBIjq2WbE2wnJUTkkCIgKjXyZApENHevXqE4b';
const RSA_FP = 'SHA256:DLGhHHICPbmbJ/v91btqEAe7MR0gYVXV5nb6d7jqNYI';
const ED = Buffer.from(ED_B64, 'base64');
const RSA = Buffer.from(RSA_B64, 'base64');

// `ssh-keygen -H` of "lb1.example.com,10.0.0.5 ..." and "[10.0.0.6]:2222 ..."
const HASHED = `\
|1|RzWOSAKXzpdHcZVUuWEkFZbCE0c=|nvf+Hkg+nwmSC6L6EEXWagFecKw= ssh-ed25519 ${ED_B64}
|1|YudOJwfd7A2hQKQPlK5Na/Otvnw=|cUSUko8CqhFshgn+TGdHDXTf+Ug= ssh-ed25519 ${ED_B64}
|1|4sqjSoZ4LG31OKaQB9D6rIw4GdE=|DwS/rClvsFa1S/ZXBoZSGLH8tBs= ssh-ed25519 ${ED_B64}
`;

describe('fingerprint / keyTypeOf', () => {
  it('matches ssh-keygen -lf', () => {
    expect(fingerprint(ED)).toBe(ED_FP);
    expect(fingerprint(RSA)).toBe(RSA_FP);
  });
  it('parses the key type from the blob', () => {
    expect(keyTypeOf(ED)).toBe('ssh-ed25519');
    expect(keyTypeOf(RSA)).toBe('ssh-rsa');
    expect(keyTypeOf(Buffer.from([0, 0]))).toBe('unknown');
    expect(keyTypeOf(Buffer.from([0, 0, 0, 200, 1]))).toBe('unknown');
  });
});

describe('parseKnownHosts', () => {
  it('skips comments, blank, malformed and unknown-marker lines', () => {
    const text = [
      '# comment',
      '',
      '   ',
      `lb1,lb2 ssh-ed25519 ${ED_B64} root@lb1`,
      'broken-line-without-key',
      `lb3 ssh-ed25519 not*base64`,
      `@bogus lb4 ssh-ed25519 ${ED_B64}`,
      `@revoked * ssh-rsa ${RSA_B64}`,
      `@cert-authority *.example.com ssh-ed25519 ${ED_B64}`,
      `\tlb5 ssh-rsa ${RSA_B64}\r`,
    ].join('\n');
    const entries = parseKnownHosts(text);
    expect(entries.map((e) => [e.line, e.marker, e.patterns, e.keyType])).toEqual([
      [4, undefined, ['lb1', 'lb2'], 'ssh-ed25519'],
      [8, 'revoked', ['*'], 'ssh-rsa'],
      [9, 'cert-authority', ['*.example.com'], 'ssh-ed25519'],
      [10, undefined, ['lb5'], 'ssh-rsa'],
    ]);
    expect(entries[0]!.key.equals(ED)).toBe(true);
  });
});

describe('checkHostKey', () => {
  const plain = `lb1.example.com,10.0.0.5 ssh-ed25519 ${ED_B64}\n[10.0.0.6]:2222 ssh-ed25519 ${ED_B64}\n`;

  it('accepts a plain entry, case-insensitively', () => {
    expect(checkHostKey(plain, 'lb1.example.com', 22, ED)).toEqual({
      ok: true,
      fingerprint: ED_FP,
      keyType: 'ssh-ed25519',
    });
    expect(checkHostKey(plain, 'LB1.Example.COM', 22, ED).ok).toBe(true);
    expect(checkHostKey(plain, '10.0.0.5', 22, ED).ok).toBe(true);
  });

  it('uses [host]:port for non-22 ports only', () => {
    expect(checkHostKey(plain, '10.0.0.6', 2222, ED).ok).toBe(true);
    expect(checkHostKey(plain, '10.0.0.6', 22, ED)).toMatchObject({ ok: false, reason: 'unknown' });
    // a plain entry does not cover another port (OpenSSH semantics)
    expect(checkHostKey(plain, '10.0.0.5', 2222, ED)).toMatchObject({ ok: false, reason: 'unknown' });
  });

  it('accepts ssh-keygen -H hashed entries', () => {
    expect(checkHostKey(HASHED, 'lb1.example.com', 22, ED).ok).toBe(true);
    expect(checkHostKey(HASHED, '10.0.0.5', 22, ED).ok).toBe(true);
    expect(checkHostKey(HASHED, '10.0.0.6', 2222, ED).ok).toBe(true);
    expect(checkHostKey(HASHED, '10.0.0.6', 22, ED)).toMatchObject({ ok: false, reason: 'unknown' });
    expect(checkHostKey(HASHED, 'lb2.example.com', 22, ED)).toMatchObject({ ok: false, reason: 'unknown' });
  });

  it('hashes [host]:port for non-22 ports', () => {
    const salt = randomBytes(20);
    const h = createHmac('sha1', salt).update('[127.0.0.1]:40022').digest('base64');
    const text = `|1|${salt.toString('base64')}|${h} ssh-rsa ${RSA_B64}\n`;
    expect(checkHostKey(text, '127.0.0.1', 40022, RSA).ok).toBe(true);
    expect(checkHostKey(text, '127.0.0.1', 22, RSA).ok).toBe(false);
  });

  it('reports unknown hosts with the presented fingerprint and type', () => {
    expect(checkHostKey(plain, 'other', 22, RSA)).toEqual({
      ok: false,
      reason: 'unknown',
      fingerprint: RSA_FP,
      keyType: 'ssh-rsa',
    });
    expect(checkHostKey('', 'other', 22, RSA)).toMatchObject({ reason: 'unknown' });
  });

  it('reports a mismatch with the recorded fingerprints', () => {
    expect(checkHostKey(plain, 'lb1.example.com', 22, RSA)).toEqual({
      ok: false,
      reason: 'mismatch',
      fingerprint: RSA_FP,
      keyType: 'ssh-rsa',
      expected: [`${ED_FP} (ssh-ed25519)`],
    });
    expect(checkHostKey(HASHED, '10.0.0.6', 2222, RSA)).toMatchObject({ reason: 'mismatch' });
  });

  it('accepts when any of several recorded keys matches', () => {
    const text = `lb1 ssh-rsa ${RSA_B64}\nlb1 ssh-ed25519 ${ED_B64}\n`;
    expect(checkHostKey(text, 'lb1', 22, ED).ok).toBe(true);
    expect(checkHostKey(text, 'lb1', 22, RSA).ok).toBe(true);
  });

  it('refuses a revoked key even if it is also listed as valid', () => {
    const text = `lb1 ssh-ed25519 ${ED_B64}\n@revoked * ssh-ed25519 ${ED_B64}\n`;
    expect(checkHostKey(text, 'lb1', 22, ED)).toEqual({
      ok: false,
      reason: 'revoked',
      fingerprint: ED_FP,
      keyType: 'ssh-ed25519',
    });
    // revocation is global, whatever host pattern the @revoked line carries
    const text2 = `lb1 ssh-ed25519 ${ED_B64}\n@revoked otherhost ssh-ed25519 ${ED_B64}\n`;
    expect(checkHostKey(text2, 'lb1', 22, ED)).toMatchObject({ reason: 'revoked' });
  });

  it('ignores @cert-authority lines', () => {
    const text = `@cert-authority lb1 ssh-ed25519 ${ED_B64}\n`;
    expect(checkHostKey(text, 'lb1', 22, ED)).toMatchObject({ ok: false, reason: 'unknown' });
  });

  it('supports wildcards and negation', () => {
    const text = `*.lb.example.com,!bad.lb.example.com,10.0.0.? ssh-ed25519 ${ED_B64}\n`;
    expect(checkHostKey(text, 'a.lb.example.com', 22, ED).ok).toBe(true);
    expect(checkHostKey(text, '10.0.0.7', 22, ED).ok).toBe(true);
    expect(checkHostKey(text, '10.0.0.17', 22, ED).ok).toBe(false);
    expect(checkHostKey(text, 'bad.lb.example.com', 22, ED)).toMatchObject({ reason: 'unknown' });
    expect(checkHostKey(text, 'lb.example.com', 22, ED).ok).toBe(false);
  });
});

describe('preferredHostKeyAlgorithms', () => {
  it('puts the recorded key types first', () => {
    const algos = preferredHostKeyAlgorithms(`lb1 ssh-rsa ${RSA_B64}\n`, 'lb1', 22);
    expect(algos.slice(0, 3)).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    expect(algos).toContain('ssh-ed25519');
    expect(new Set(algos).size).toBe(algos.length);
    expect(preferredHostKeyAlgorithms('', 'lb1', 22)[0]).toBe('ssh-ed25519');
  });
});
