import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkLocalFiles } from './local-files.js';
import { inventoryTargets } from './targets.js';
import type { ConnectTarget } from './types.js';
import { parseInventoryText } from '../inventory/load.js';
import { generateKeyPairSync } from '../../test/support/keys.js';

let dir: string;
const base = (over: Partial<ConnectTarget> = {}): ConnectTarget => ({ name: 'proxy', host: '10.0.0.1', port: 22, user: 'root', knownHosts: join(dir, 'known_hosts'), privateKey: join(dir, 'id'), ...over });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dsrctl-local-files-'));
  const kp = generateKeyPairSync('ed25519');
  writeFileSync(join(dir, 'id'), kp.private);
  writeFileSync(join(dir, 'id.pub'), kp.public);
  writeFileSync(join(dir, 'known_hosts'), '10.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcJ3gkJaRMZ6JOzSZk7hjkQtbRkS6w4hOq3sSWAoChL\n');
  mkdirSync(join(dir, 'adir'));
});

describe('local SSH files are checked before any connection', () => {
  it('accepts a private key and a known_hosts file', () => {
    expect(() => checkLocalFiles([base()])).not.toThrow();
  });
  it('names the field and the path of a missing key', () => {
    expect(() => checkLocalFiles([base({ privateKey: join(dir, 'nope') })])).toThrow(`ssh.private_key: private key file ${join(dir, 'nope')} does not exist`);
  });
  it('refuses a public key given as the private key, and suggests the private one', () => {
    expect(() => checkLocalFiles([base({ privateKey: join(dir, 'id.pub') })])).toThrow(/holds a public key; give the private key \(.*\/id\?\)/);
  });
  it('refuses a directory and a missing known_hosts', () => {
    expect(() => checkLocalFiles([base({ knownHosts: join(dir, 'adir') })])).toThrow(/ssh.known_hosts: known_hosts file .*adir is not a regular file/);
    expect(() => checkLocalFiles([base({ knownHosts: join(dir, 'kh-missing') })])).toThrow(/ssh.known_hosts: known_hosts file .*kh-missing does not exist/);
  });
  it('names the host-level field a path came from, and checks jump hosts too', () => {
    const via = base({ name: 'bastion', privateKey: join(dir, 'gone'), fields: { privateKey: 'ssh.jump.private_key', knownHosts: 'ssh.known_hosts' } });
    expect(() => checkLocalFiles([base({ via })])).toThrow(/^ssh.jump.private_key: /);
  });
  it('takes the field name from the inventory', () => {
    const inv = parseInventoryText(
      `mode: ip-transparency\nservice: { protocol: http, listen_port: 80, upstream_port: 8080 }\nssh: { private_key: ${join(dir, 'id')}, known_hosts: ${join(dir, 'known_hosts')} }\n` +
        `proxy: { ssh_host: 10.0.0.1, public_ip: 192.168.99.10, private_ip: 172.16.0.1, private_interface: eth2, public_interface: eth0 }\n` +
        `upstreams:\n  - { name: dev1, ssh_host: 10.0.0.11, ip: 172.16.0.11, interface: eth2, ssh: { private_key: ${join(dir, 'missing-dev1')} } }\n`,
      join(dir, 'inv.yaml'),
      {},
    );
    expect(() => checkLocalFiles(inventoryTargets(inv))).toThrow(`upstreams[0].ssh.private_key: private key file ${join(dir, 'missing-dev1')} does not exist`);
  });
});
