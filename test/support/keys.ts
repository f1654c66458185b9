import ssh2 from 'ssh2';

type Gen = typeof ssh2.utils.generateKeyPairSync;

/**
 * ssh2's generateKeyPairSync('ed25519') makes, about once in 300 keys, a private key its own
 * parseKey calls "Malformed OpenSSH private key" (measured here: 10 in 3,000). Tests that need a
 * key take one that parses, so they do not fail one run in thirty for that.
 */
export const generateKeyPairSync = ((type: Parameters<Gen>[0], opts?: Parameters<Gen>[1]) => {
  for (;;) {
    const kp = opts ? ssh2.utils.generateKeyPairSync(type, opts as never) : ssh2.utils.generateKeyPairSync(type);
    const passphrase = (opts as { passphrase?: string } | undefined)?.passphrase;
    if (!(ssh2.utils.parseKey(kp.private, passphrase) instanceof Error)) return kp;
  }
}) as Gen;
