import { describe, it, expect } from 'vitest';
import { parseDocument } from 'yaml';
import { renderInventory } from './render-yaml.js';
import { parseInventoryText, validateInventory } from '../inventory/load.js';
import type { Draft } from './questions.js';

const ipt: Draft = {
  mode: 'ip-transparency',
  service: { protocol: 'http', listen_port: 80, upstream_port: 8080, client_networks: ['192.168.99.0/24'] },
  ssh: { user: 'root', port: 22, private_key: '/keys/id_ed25519', known_hosts: '/keys/known_hosts' },
  proxy: { ssh_host: '10.0.0.10', public_ip: '192.168.99.10', public_interface: 'eth0', private_ip: '172.16.0.1', private_interface: 'eth2', masquerade: true, managed_config: '/etc/nginx/conf.d/app.conf' },
  upstreams: [
    { name: 'dev1', ssh_host: '10.0.0.11', ip: '172.16.0.11', interface: 'eth2' },
    { name: 'dev2', ssh_host: '10.0.0.12', ip: '172.16.0.12' },
  ],
  verify: { ping_targets: ['8.8.8.8'], probe: { ssh_host: '10.0.0.2', expect_source: '192.168.99.1' } },
};

const origin: Draft = {
  mode: 'dsr-origin-nat',
  service: { protocol: 'udp', listen_port: 53, upstream_port: 53 },
  ssh: { user: 'ops', port: 2222, password: '${DSRCTL_SSH_PASSWORD}', known_hosts: '/keys/known_hosts' },
  proxy: { ssh_host: 'proxy.example.net', public_ip: '192.168.99.10', public_interface: 'eth0', private_ip: '172.16.0.1', private_interface: 'eth2', managed_config: '/etc/nginx/dsrctl/stream.conf' },
  upstreams: [{ name: 'dns1', ssh_host: '172.16.0.11', ip: '172.16.0.11', interface: 'eth2' }],
  verify: { ping_targets: [], probe: { ssh_host: '10.0.0.2', dns_query: 'www.example.com' } },
};

const router: Draft = { ...origin, mode: 'dsr-router-nat', ssh: { user: 'root', port: 22, private_key: '${DSRCTL_SSH_KEY}', passphrase: '${DSRCTL_SSH_PASSPHRASE}', known_hosts: '/kh' }, proxy: { ...origin.proxy, masquerade: false } };

const env = { DSRCTL_SSH_PASSWORD: 's3cret', DSRCTL_SSH_KEY: '/keys/id_rsa', DSRCTL_SSH_PASSPHRASE: 'pp' };

describe('the commented inventory YAML', () => {
  it.each([
    ['ip-transparency', ipt],
    ['dsr-origin-nat', origin],
    ['dsr-router-nat', router],
  ])('%s round-trips through the inventory loader', (_name, draft) => {
    const text = renderInventory(draft, { path: 'inventory/x.yaml', secretVars: ['DSRCTL_SSH_PASSWORD'] });
    const loaded = parseInventoryText(text, '/inv/x.yaml', env);
    const expected = validateInventory(JSON.parse(JSON.stringify(draft).replaceAll('${DSRCTL_SSH_PASSWORD}', 's3cret').replaceAll('${DSRCTL_SSH_KEY}', '/keys/id_rsa').replaceAll('${DSRCTL_SSH_PASSPHRASE}', 'pp')));
    expect(loaded).toEqual(expected);
    // the data is exactly the draft: comments add nothing and lose nothing
    expect(parseDocument(text).toJS()).toEqual(JSON.parse(JSON.stringify(draft)));
  });

  it('attaches comments to the fields and keeps secrets as references', () => {
    const text = renderInventory(origin, { path: 'inventory/dns.yaml', secretVars: ['DSRCTL_SSH_PASSWORD'], date: '2025-01-02' });
    expect(text).toMatch(/^# dsrctl inventory, written by `dsrctl wizard` on 2025-01-02\.\n# Method 2b: DSR, origin NAT: UDP only;/);
    expect(text).toContain('# Look first:  dsrctl plan -i inventory/dns.yaml');
    expect(text).toMatch(/put DSRCTL_SSH_PASSWORD in \.env/);
    expect(text).toMatch(/^ {2}password: \$\{DSRCTL_SSH_PASSWORD\} # the value lives in \.env, never here$/m);
    expect(text).toMatch(/^ {2}listen_port: 53 # where clients reach the proxy's public address$/m);
    expect(text).toMatch(/^ {2}protocol: udp # udp: DSR works for UDP only$/m);
    expect(text).toMatch(/interface \(where its replies leave\n# it and where origin NAT rewrites them: required\)|where origin NAT rewrites them: required/);
    expect(text).toMatch(/^ {2}- \{ name: dns1, ssh_host: 172\.16\.0\.11, ip: 172\.16\.0\.11, interface: eth2 \}$/m);
    expect(text).not.toContain('s3cret');
    expect(text.split('\n').every((l) => l.length <= 110)).toBe(true);
  });

  it('says what persist does: the state survives reboots, and false is runtime only', () => {
    const text = renderInventory({ ...ipt, persist: true }, { path: 'inventory/x.yaml' });
    expect(text).toMatch(/\n\n# Keep the applied state across reboots and network restarts: [^\n]*\n(# [^\n]*\n)+persist: true\n/);
    expect(text).toContain('false: runtime only');
    expect(parseInventoryText(text, '/inv/x.yaml', env).persist).toBe(true);
  });

  it('writes the fields in the order of the contract', () => {
    const shuffled: Draft = { verify: ipt.verify, upstreams: ipt.upstreams, proxy: ipt.proxy, ssh: ipt.ssh, service: ipt.service, mode: ipt.mode };
    const keys = Object.keys(parseDocument(renderInventory(shuffled)).toJS());
    expect(keys).toEqual(['mode', 'service', 'ssh', 'proxy', 'upstreams', 'verify']);
  });
});
