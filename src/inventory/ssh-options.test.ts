/**
 * The inventory's SSH access fields: jump hosts, sudo, passwords and passphrases from .env, and
 * how they become connection targets (src/ssh/targets.ts). Secrets never appear in messages.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { parseInventoryText } from './load.js';
import { UserError } from '../util/errors.js';
import { inventoryTargets, probeTarget } from '../ssh/targets.js';
import { describeTarget } from '../ssh/session.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/inventory/valid.yaml', import.meta.url));
const KNOWN_HOSTS = fileURLToPath(new URL('../../test/fixtures/inventory/known_hosts', import.meta.url));
const text = readFileSync(FIXTURE, 'utf8');
const SECRET = 'hunter2-s3cr3t';
const env = { DSR_TEST_KEY: '/keys/id_ed25519', DSRCTL_SSH_PASSWORD: SECRET, DSRCTL_SSH_PASSPHRASE: SECRET, DSRCTL_SUDO_PASSWORD: SECRET };

/** The valid inventory with some fields set (path -> value; undefined deletes). */
function withFields(fields: [(string | number)[], unknown][]): string {
  const doc = parseDocument(text);
  for (const [path, value] of fields) {
    if (value === undefined) doc.deleteIn(path);
    else doc.setIn(path, doc.createNode(value));
  }
  return doc.toString();
}

const load = (yaml: string) => parseInventoryText(yaml, FIXTURE, env);

function errorOf(yaml: string): string {
  try {
    load(yaml);
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return (err as Error).message;
  }
  throw new Error('expected the inventory to be rejected');
}

const PROBE = { ssh_host: '10.0.0.2', expect_source: '192.168.99.1' };

describe('jump', () => {
  it('jump: proxy in the ssh: defaults applies to the upstreams and the probe, never to the proxy', () => {
    const inv = load(withFields([[['ssh', 'jump'], 'proxy'], [['verify', 'probe'], PROBE]]));
    const [proxy, dev1, dev2] = inventoryTargets(inv);
    expect(proxy!.via).toBeUndefined();
    expect(dev1!.via).toBe(proxy); // the proxy's own target: its connection carries the tunnels
    expect(dev2!.via).toBe(proxy);
    expect(dev1).toMatchObject({ name: 'dev1', host: '10.0.0.11', port: 22 });
    const probe = probeTarget(inv)!;
    expect(probe.via).toMatchObject({ name: 'proxy', host: '10.0.0.10' });
    expect(probe.via!.via).toBeUndefined();
    expect(describeTarget(dev1!)).toBe('root@10.0.0.11:22 via proxy root@10.0.0.10:22');
  });

  it('per host: jump: proxy on one upstream only, and jump: none overrides a default', () => {
    const one = inventoryTargets(load(withFields([[['upstreams', 1, 'ssh'], { jump: 'proxy' }]])));
    expect(one[1]!.via).toBeUndefined();
    expect(one[2]!.via).toBe(one[0]);
    // a per-host ssh: block keeps the defaults it does not mention (key, known_hosts)
    expect(one[2]).toMatchObject({ privateKey: '/keys/id_ed25519', knownHosts: KNOWN_HOSTS, user: 'root' });
    const none = inventoryTargets(load(withFields([[['ssh', 'jump'], 'proxy'], [['upstreams', 0, 'ssh'], { jump: 'none' }]])));
    expect(none[1]!.via).toBeUndefined();
    expect(none[2]!.via).toBe(none[0]);
  });

  it('a bastion object: its own fields, the rest from the ssh: defaults; it applies to the proxy too', () => {
    const inv = load(withFields([[['ssh', 'jump'], { ssh_host: 'bastion.example.com', user: 'jumper', port: 2222, password: '${DSRCTL_SSH_PASSWORD}' }]]));
    const [proxy, dev1] = inventoryTargets(inv);
    for (const t of [proxy!, dev1!])
      expect(t.via).toMatchObject({
        name: 'bastion.example.com',
        host: 'bastion.example.com',
        user: 'jumper',
        port: 2222,
        password: SECRET,
        privateKey: '/keys/id_ed25519',
        knownHosts: KNOWN_HOSTS,
      });
    expect(proxy!.via!.via).toBeUndefined();
    expect(describeTarget(dev1!)).toBe('root@10.0.0.11:22 via jumper@bastion.example.com:2222');
  });

  it('chains: upstreams through the proxy, the proxy through its bastion', () => {
    const inv = load(withFields([[['ssh', 'jump'], 'proxy'], [['proxy', 'ssh'], { jump: { ssh_host: '10.9.9.9', known_hosts: './kh-bastion' } }]]));
    const [proxy, dev1] = inventoryTargets(inv);
    expect(proxy!.via).toMatchObject({ host: '10.9.9.9', knownHosts: fileURLToPath(new URL('../../test/fixtures/inventory/kh-bastion', import.meta.url)) });
    expect(dev1!.via).toBe(proxy);
    expect(describeTarget(dev1!)).toBe('root@10.0.0.11:22 via proxy root@10.0.0.10:22 via root@10.9.9.9:22');
  });

  it.each([
    ['jump: proxy on the proxy itself', [[['proxy', 'ssh'], { jump: 'proxy' }]], /proxy\.ssh\.jump: the proxy cannot be its own jump host/],
    ['an unknown jump word', [[['ssh', 'jump'], 'bastion']], /ssh\.jump: must be "proxy", "none" or a jump host/],
    ['a bastion without ssh_host', [[['ssh', 'jump'], { user: 'ops' }]], /ssh\.jump/],
    ['a bastion with an unknown field', [[['upstreams', 0, 'ssh'], { jump: { ssh_host: 'b.example', sudo: true } }]], /upstreams\[0\]\.ssh\.jump/],
    ['sudo that is not a boolean', [[['ssh', 'sudo'], 'yes']], /ssh\.sudo: must be true or false/],
  ] as [string, [(string | number)[], unknown][], RegExp][])('rejects %s, naming the field', (_n, fields, pattern) => {
    expect(errorOf(withFields(fields))).toMatch(pattern);
  });
});

describe('sudo, passwords and passphrases', () => {
  it('sudo defaults to false; sudo and sudo_password reach the target, per host over defaults', () => {
    expect(inventoryTargets(load(text))[1]!.sudo).toBeUndefined();
    const inv = load(
      withFields([
        [['ssh', 'user'], 'ops'],
        [['ssh', 'sudo'], true],
        [['ssh', 'sudo_password'], '${DSRCTL_SUDO_PASSWORD}'],
        [['upstreams', 1, 'ssh'], { user: 'root', sudo: false }],
      ]),
    );
    const [proxy, dev1, dev2] = inventoryTargets(inv);
    expect(proxy).toMatchObject({ user: 'ops', sudo: true, sudoPassword: SECRET });
    expect(dev1).toMatchObject({ user: 'ops', sudo: true, sudoPassword: SECRET });
    expect(dev2!.user).toBe('root');
    expect(dev2!.sudo).toBeUndefined();
    expect(dev2!.sudoPassword).toBeUndefined();
  });

  it('password and key passphrase come from .env variables', () => {
    const inv = load(withFields([[['ssh', 'password'], '${DSRCTL_SSH_PASSWORD}'], [['ssh', 'passphrase'], '${DSRCTL_SSH_PASSPHRASE}']]));
    expect(inventoryTargets(inv)[0]).toMatchObject({ password: SECRET, passphrase: SECRET, privateKey: '/keys/id_ed25519' });
  });

  it('never shows a secret in a validation message', () => {
    const msgs = [
      errorOf(withFields([[['ssh', 'sudo_password'], `${SECRET}\nsecond line`]])),
      errorOf(withFields([[['ssh', 'jump'], { ssh_host: 'bad host!', password: SECRET }]])),
      errorOf(withFields([[['ssh', 'jump'], { password: SECRET }]])),
      errorOf(withFields([[['ssh', 'password'], 12345]])),
      errorOf(withFields([[['upstreams', 0, 'ssh'], { passphrase: SECRET, bogus: 1 }]])),
    ];
    expect(msgs[0]).toMatch(/ssh\.sudo_password: must be one line/);
    expect(msgs[3]).toMatch(/ssh\.password: .*\(value hidden\)/);
    for (const m of msgs) {
      expect(m).not.toContain(SECRET);
      expect(m).not.toContain('12345');
    }
  });
});
