import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseFacts } from '../facts/parse.js';
import { hostNet, networkWarnings, overlaps, subnetOf, effectiveRpFilter, rpFilterKeys, type HostNet, type NetworkAnswers } from './overlap.js';

const fixture = (name: string) => readFileSync(new URL(`../../test/fixtures/wizard/${name}.facts.txt`, import.meta.url), 'utf8');
/** Facts of the lab's proxy and dev1, read by the wizard's own facts request (rp_filter of every interface). */
const proxy = hostNet('proxy', parseFacts(fixture('proxy')));
const dev1 = hostNet('dev1', parseFacts(fixture('dev1')));

const answers = (over: Partial<NetworkAnswers> = {}): NetworkAnswers => ({
  mode: 'ip-transparency',
  clientNetworks: ['192.168.99.0/24'],
  proxy: { public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0', facts: proxy },
  upstreams: [{ name: 'dev1', ip: '172.16.0.11', interface: 'priv0', facts: dev1 }],
  ...over,
});

const withRp = (h: HostNet, values: Record<string, number>): HostNet => ({ ...h, rpFilter: { ...h.rpFilter, ...values } });

describe("the guide's Troubleshooting as warnings", () => {
  it('reads interfaces, addresses, rp_filter and the default route from facts', () => {
    expect(proxy.interfaces.map((i) => i.name).sort()).toEqual(['mgmt0', 'priv0', 'pub0']);
    expect(proxy.interfaces.find((i) => i.name === 'pub0')!.addresses).toEqual([{ address: '192.168.99.10', prefixlen: 24 }]);
    expect(proxy.rpFilter).toMatchObject({ all: 0, default: 0, pub0: 0, priv0: 0 });
    expect(dev1.defaultDev).toBe('priv0');
    expect(rpFilterKeys(['eth0', 'eth0.100'])).toEqual(['net.ipv4.conf.all.rp_filter', 'net.ipv4.conf.default.rp_filter', 'net.ipv4.conf.eth0.rp_filter', 'net.ipv4.conf.eth0/100.rp_filter']);
  });

  it('says nothing about the guide topology as the lab builds it', () => {
    expect(networkWarnings(answers())).toEqual([]);
  });

  it('warns when an upstream is directly connected to the clients\' network', () => {
    const w = networkWarnings(answers({ clientNetworks: ['10.211.0.0/16'] }));
    expect(w.join('\n')).toMatch(/dev1: directly connected to 10\.211\.\d+\.0\/24 on mgmt0, which overlaps the client network 10\.211\.0\.0\/16: .*No Overlapping IP Ranges/);
  });

  it("treats the proxy's public subnet as where clients are", () => {
    const onPublic: HostNet = { ...dev1, interfaces: [...dev1.interfaces, { name: 'eth9', state: 'UP', addresses: [{ address: '192.168.99.50', prefixlen: 24 }] }] };
    const w = networkWarnings(answers({ clientNetworks: [], upstreams: [{ name: 'dev1', ip: '172.16.0.11', facts: onPublic }] }));
    expect(w).toEqual([expect.stringMatching(/dev1: directly connected to 192\.168\.99\.0\/24 on eth9, which overlaps the proxy's public subnet 192\.168\.99\.0\/24/)]);
  });

  it('warns about overlapping proxy subnets and addresses the hosts do not have', () => {
    const w = networkWarnings(answers({ proxy: { ...answers().proxy, public_ip: '192.168.99.99' }, upstreams: [{ name: 'dev1', ip: '172.16.0.12', facts: dev1 }] }));
    expect(w).toContainEqual(expect.stringMatching(/proxy: 192\.168\.99\.99 is not an address of the proxy/));
    expect(w).toContainEqual(expect.stringMatching(/dev1: 172\.16\.0\.12 is not one of its addresses/));
    const w2 = networkWarnings(answers({ clientNetworks: ['172.16.0.128/25'] }));
    expect(w2).toContainEqual(expect.stringMatching(/proxy: the upstreams' subnet 172\.16\.0\.0\/24 overlaps the client network 172\.16\.0\.128\/25/));
  });

  it('warns about strict rp_filter, and says it will drop packets where origin NAT routes elsewhere', () => {
    const strict = withRp(dev1, { all: 1 });
    expect(effectiveRpFilter(strict, 'priv0')).toBe(1);
    expect(effectiveRpFilter(withRp(dev1, { priv0: 2 }), 'priv0')).toBe(2);
    const soft = networkWarnings(answers({ upstreams: [{ name: 'dev1', ip: '172.16.0.11', interface: 'priv0', facts: strict }] }));
    expect(soft).toEqual([expect.stringMatching(/dev1: rp_filter=1 \(strict\) on priv0 .*fine while its default route goes through the proxy.*Missing Packets.*rp_filter; do echo 0/)]);
    const origin = networkWarnings(
      answers({ mode: 'dsr-origin-nat', upstreams: [{ name: 'dev1', ip: '172.16.0.11', interface: 'priv0', facts: { ...strict, defaultDev: 'mgmt0' } }] }),
    );
    expect(origin).toEqual([expect.stringMatching(/dev1: rp_filter=1 \(strict\) on priv0 .* while its default route leaves by mgmt0: it will drop the packets nginx sends/)]);
    const px = networkWarnings(answers({ proxy: { ...answers().proxy, facts: withRp(proxy, { priv0: 1 }) } }));
    expect(px).toEqual([expect.stringMatching(/^proxy: rp_filter=1 \(strict\) on priv0/)]);
  });

  it('computes subnets and overlaps', () => {
    expect(subnetOf('172.16.0.11', 24)).toBe('172.16.0.0/24');
    expect(overlaps('10.0.0.0/8', '10.1.2.0/24')).toBe(true);
    expect(overlaps('10.0.0.0/24', '10.0.1.0/24')).toBe(false);
    expect(overlaps('10.0.0.2', '10.0.0.0/30')).toBe(true);
    expect(overlaps('10.0.0.5', '10.0.0.0/30')).toBe(false);
  });
});
