import { describe, it, expect } from 'vitest';
import { undoneText } from './undo-text.js';

// summaries as the lab's journals hold them (runs/<id>/changes/NNN.summary after an apply)
describe('rollback lines say what the host has now, and what it had', () => {
  it.each([
    ['default route via 172.16.0.254 dev priv0 -> via 172.16.0.1', 'default route via 172.16.0.254 dev priv0 again (dsrctl had set via 172.16.0.1)'],
    ['set net.ipv4.ip_forward 0 -> 1', 'net.ipv4.ip_forward is 0 again (dsrctl had set 1)'],
    ['/etc/nginx/nginx.conf: user www-data; -> user root;', '/etc/nginx/nginx.conf: user www-data; again (dsrctl had set user root;)'],
    ['/etc/nginx/nginx.conf: add a stream { } block with include /etc/nginx/dsrctl/stream.conf;', '/etc/nginx/nginx.conf: include /etc/nginx/dsrctl/stream.conf; removed'],
    ['create /etc/nginx/conf.d/dsrctl.conf (http service on :80, proxy_bind $remote_addr transparent)', '/etc/nginx/conf.d/dsrctl.conf removed'],
    ['add iptables -t mangle -A PREROUTING -p tcp -s 172.16.0.11 --sport 8080 -j MARK --set-xmark 0x1/0xffffffff', 'removed: iptables -t mangle -A PREROUTING -p tcp -s 172.16.0.11 --sport 8080 -j MARK --set-xmark 0x1/0xffffffff'],
    ['add ip rule fwmark 1 lookup 100', 'removed: ip rule fwmark 1 lookup 100'],
    ['remove nft table netdev dsrctl_nat_pub0 (left by an earlier dsrctl run; not wanted by this inventory)', 'put back: nft table netdev dsrctl_nat_pub0'],
    ['(partial) set net.ipv4.ip_forward 0 -> 1', 'net.ipv4.ip_forward is 0 again (dsrctl had set 1) (it was only partly applied)'],
    ['something new', 'undone: something new'],
  ])('%s', (summary, text) => {
    expect(undoneText(summary)).toBe(text);
  });
});
