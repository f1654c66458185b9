import { describe, it, expect } from 'vitest';
import { validateAt, protocolChoices, portAnswer, listAnswer, completeDraft, METHODS, methodTable, type Draft } from './questions.js';
import { inventorySchema } from '../inventory/schema.js';

const base: Draft = {
  mode: 'ip-transparency',
  service: { protocol: 'http', listen_port: 80, upstream_port: 8080, client_networks: ['192.168.99.0/24'] },
  ssh: { user: 'root', port: 22, private_key: '/k', known_hosts: '/kh' },
  proxy: { ssh_host: '10.0.0.10', public_ip: '192.168.99.10', public_interface: 'eth0', private_ip: '172.16.0.1', private_interface: 'eth2' },
  upstreams: [{ name: 'dev1', ssh_host: '10.0.0.11', ip: '172.16.0.11' }],
};

describe('answers validated with the inventory schema', () => {
  it('a placeholder-completed draft is a valid inventory at every stage', () => {
    for (const d of [{}, { mode: 'dsr-origin-nat' }, { mode: 'dsr-router-nat', service: { protocol: 'udp' } }, base] as Draft[])
      expect(inventorySchema.safeParse(completeDraft(d)).success).toBe(true);
  });

  it.each([
    [['proxy', 'public_ip'], 'proxy.example', /^proxy\.public_ip: must be an IPv4 address like 172\.16\.0\.11 \(not a CIDR or a name\) \(got "proxy\.example"\)$/],
    [['proxy', 'public_interface'], 'eth 0', /proxy\.public_interface: must be a Linux interface name/],
    [['service', 'listen_port'], portAnswer('70000'), /service\.listen_port: must be 1-65535/],
    [['service', 'listen_port'], portAnswer('http'), /service\.listen_port: must be a port number/],
    [['ssh', 'user'], 'Root User', /ssh\.user: must be a Unix user name/],
    [['proxy', 'ssh_host'], 'bad host!', /proxy\.ssh_host: must be an IP address or a DNS name/],
    [['upstreams', 0, 'name'], 'Dev 1', /upstreams\[0\]\.name: must be lower-case letters/],
    [['service', 'client_networks'], ['10.0.0.0/33'], /service\.client_networks\[0\]: must be an IPv4 address or CIDR/],
  ])('%j = %j is refused with the schema\'s message', (path, value, pattern) => {
    const r = validateAt({ ...base, upstreams: [{ name: 'dev1' }] }, path, value);
    expect(r).toMatch(pattern);
  });

  it('refuses the private address equal to the public one, at the private address question', () => {
    const d: Draft = { ...base, proxy: { ...base.proxy, private_ip: undefined } };
    expect(validateAt(d, ['proxy', 'private_ip'], '192.168.99.10')).toMatch(/proxy\.private_ip: must differ from proxy\.public_ip/);
  });

  it("refuses an upstream on the proxy's own address or twice the same name", () => {
    const d: Draft = { ...base, upstreams: [...base.upstreams!, { name: 'dev2' }] };
    expect(validateAt(d, ['upstreams', 1, 'ip'], '172.16.0.1')).toMatch(/upstreams\[1\]\.ip: 172\.16\.0\.1 is the proxy's own address/);
    expect(validateAt(d, ['upstreams', 1, 'ip'], '172.16.0.11')).toMatch(/is listed twice/);
    expect(validateAt(d, ['upstreams', 1, 'name'], 'dev1')).toMatch(/"dev1" is listed twice/);
    expect(validateAt(d, ['upstreams', 1, 'ip'], '172.16.0.12')).toBe(true);
  });

  it('blames the upstream address that falls in a client network, at that question, although the schema files it under client_networks', () => {
    const d: Draft = { ...base, service: { ...base.service, client_networks: ['172.16.0.0/28'] }, upstreams: [{ name: 'dev1' }] };
    expect(validateAt(d, ['upstreams', 0, 'ip'], '172.16.0.11')).toMatch(/service\.client_networks\[0\]: 172\.16\.0\.0\/28 contains upstream dev1 \(172\.16\.0\.11\)/);
    expect(validateAt(d, ['upstreams', 0, 'ip'], '172.16.1.11')).toBe(true);
  });

  it('never talks about placeholders for questions not asked yet', () => {
    // 0.0.0.0/0 contains the placeholder addresses too; only the real conflict may be reported
    expect(validateAt({ mode: 'ip-transparency', service: { protocol: 'http' } }, ['service', 'client_networks'], ['0.0.0.0/0'])).toBe(true);
    expect(validateAt({ mode: 'ip-transparency' }, ['upstreams', 0, 'name'], 'dev1')).toBe(true);
  });

  it('requires the egress interface for origin NAT only', () => {
    const d: Draft = { ...base, mode: 'dsr-origin-nat', service: { protocol: 'udp', listen_port: 53, upstream_port: 53 } };
    expect(validateAt(d, ['upstreams', 0, 'interface'], undefined)).toMatch(/upstreams\[0\]\.interface: is required for dsr-origin-nat/);
    expect(validateAt(d, ['upstreams', 0, 'interface'], 'eth2')).toBe(true);
    expect(validateAt(base, ['upstreams', 0, 'interface'], undefined)).toBe(true);
  });

  it('refuses DSR with TCP: not offered, and refused by the schema too', () => {
    for (const mode of ['dsr-router-nat', 'dsr-origin-nat'] as const) {
      const choices = protocolChoices(mode);
      expect(choices.filter((c) => !c.disabled).map((c) => c.value)).toEqual(['udp']);
      expect(choices.find((c) => c.value === 'tcp')!.disabled).toMatch(/UDP only/);
      expect(validateAt({ mode }, ['service', 'protocol'], 'tcp')).toMatch(/works for UDP only/);
    }
    expect(protocolChoices('ip-transparency').every((c) => !c.disabled)).toBe(true);
  });

  it('parses ports and lists', () => {
    expect(portAnswer(' 8080 ')).toBe(8080);
    expect(portAnswer('80a')).toBe('80a');
    expect(listAnswer('1.1.1.1, 8.8.8.8  9.9.9.9')).toEqual(['1.1.1.1', '8.8.8.8', '9.9.9.9']);
    expect(listAnswer('  ')).toEqual([]);
  });

  it("summarises the guide's comparison table", () => {
    expect(METHODS.map((m) => m.value)).toEqual(['ip-transparency', 'dsr-router-nat', 'dsr-origin-nat']);
    expect(methodTable().join('\n')).toMatch(/dsr-origin-nat\s+UDP only\s+direct \(NAT on upstream\)\s+active required\s+best/);
  });
});
