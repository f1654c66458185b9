/**
 * The systemd lab itself (test/lab/systemd-lab.sh): its hosts boot Debian's real systemd, serve
 * the guide's topology, and a reboot is a real one: every piece of kernel network state is gone
 * afterwards while the host's disk (its /etc, /var/lib/dsrctl) is kept, and nothing reaches the
 * machine's own /etc. dsrctl reads the hosts through the lab's inventory.
 *
 *   npm run build && npx vitest run --project e2e test/e2e/systemd-lab.test.ts
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync } from 'node:fs';
import { run } from './harness.js';
import { show, expectCode } from './expect.js';
import { hello, CLIENT_IP } from './net.js';
import { SYS_HOSTS, SYS_INVENTORY, sysUp, sysDown, sysExec, reboot, boots, netSnapshot, leftovers } from './systemd-harness.js';

const MARKER = '/etc/dsrctl-systemd-lab-marker';

describe('systemd lab', () => {
  beforeAll(() => sysUp());
  afterAll(() => {
    sysDown();
    expect(leftovers(), 'what systemd-lab.sh down left on the machine').toEqual([]);
    expect(existsSync(MARKER), `the machine's own ${MARKER}`).toBe(false);
  });

  it('hosts run systemd as PID 1 with networkd, nginx, ssh (and dnsmasq on the upstreams) started by it', () => {
    for (const h of SYS_HOSTS) {
      const r = sysExec(h, 'cat /proc/1/comm; hostname; systemctl is-system-running; systemctl is-active systemd-networkd nginx ssh');
      expect(r.stdout.split('\n').slice(0, 6), `${h}: ${r.stdout}${r.stderr}`).toEqual(['systemd', h, 'running', 'active', 'active', 'active']);
    }
    for (const h of ['dev1', 'dev2']) expect(sysExec(h, 'systemctl is-active dnsmasq').stdout.trim(), h).toBe('active');
    // the upstreams' default route comes from their .network file's Gateway= (the router)
    expect(sysExec('dev1', 'ip route show default').stdout).toMatch(/^default via 172\.16\.0\.254 dev priv0 proto static/);
    const hi = hello(2);
    expect(hi.names.length, hi.raw).toBe(2);
  });

  it('dsrctl reads every host over SSH through the lab inventory', async () => {
    const r = await run(['plan'], SYS_INVENTORY);
    expectCode(r, 0, 'plan');
    for (const h of SYS_HOSTS) expect(r.stdout, show(r)).toContain(h);
  });

  it('a reboot loses every piece of kernel network state and keeps the disk', () => {
    const before = netSnapshot('proxy');
    const n = boots('proxy');
    const set = sysExec(
      'proxy',
      `ip rule add fwmark 1 lookup 100 && ip route add local 0.0.0.0/0 dev lo table 100 && sysctl -qw net.ipv4.ip_forward=1 &&
       nft -f - <<'EOF'
table netdev lab { chain egress { type filter hook egress device "pub0" priority 0; } }
EOF
       mkdir -p /var/lib/dsrctl && echo kept > ${MARKER} && echo kept > /var/lib/dsrctl/marker && sync`,
    );
    expect(set.code, set.stderr).toBe(0);
    expect(netSnapshot('proxy')).not.toBe(before);
    const t = reboot('proxy');
    expect(boots('proxy')).toBe(n + 1);
    expect(t.proxy, 'seconds from boot start to serving').toBeLessThan(60);
    expect(netSnapshot('proxy')).toBe(before);
    expect(sysExec('proxy', `cat ${MARKER} /var/lib/dsrctl/marker`).stdout).toBe('kept\nkept\n');
    // the machine's own /etc never sees what a host writes
    expect(existsSync(MARKER)).toBe(false);
    const hi = hello(2);
    expect(hi.names.length, hi.raw).toBe(2);
    expect(hi.sources).not.toContain(CLIENT_IP); // plain reverse proxy: the upstreams see the proxy
  });
});
