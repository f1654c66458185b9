/**
 * End to end: the proxy forwards only where the mode needs it (issue 12, part 3).
 *
 *   npm run build && npx vitest run --project e2e test/e2e/forwarding.test.ts
 *
 * A client on the public segment that routes the upstreams' network via the proxy must not reach
 * the upstreams through it: after Method 1 without masquerade (no forwarding at all), after
 * Method 1 with masquerade and after router NAT (forwarding limited to what the mode needs, in
 * dsrctl's DSRCTL-FORWARD chain). The guide's own checks still pass, and rollback restores every
 * host byte for byte. The client's extra route lives in the client's namespace only and is
 * removed after each probe. Each describe builds its own lab; its tests run in order.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { LAB_INVENTORY, UPSTREAMS, labUp, labDown, onHost, run, dsrctl, settledSnapshotAll, snapshotAll, curlSources, inventoryVariant } from './harness.js';
import { show, expectCode, expectJson, hostJson, snapshotDiff, changeCounts } from './expect.js';
import { digs, CLIENT_IP, PROXY_PUBLIC, UPSTREAM_IPS } from './net.js';

const UPSTREAM_NET = '172.16.0.0/24';

interface Reach {
  ping: { code: number; out: string };
  dig: { code: number; out: string };
}

/**
 * From the client, with `ip route add 172.16.0.0/24 via <proxy>` in the client's namespace: one
 * ping and one dig straight to the upstream. The route is removed again whatever happens, and the
 * client's routes must then read as before.
 */
function reachUpstreamViaProxy(ip: string): Reach {
  const before = onHost('client', 'ip route show').stdout;
  const add = onHost('client', ['ip', 'route', 'add', UPSTREAM_NET, 'via', PROXY_PUBLIC]);
  expect(add.code, `client: ip route add ${UPSTREAM_NET} via ${PROXY_PUBLIC}: ${add.stderr}`).toBe(0);
  try {
    expect(onHost('client', ['ip', 'route', 'get', ip]).stdout, 'the client routes the upstream via the proxy').toContain(`via ${PROXY_PUBLIC}`);
    const p = onHost('client', ['ping', '-n', '-c', '2', '-W', '2', ip]);
    const d = onHost('client', ['dig', '+tries=1', '+time=2', `@${ip}`, 'www.example.com']);
    return { ping: { code: p.code, out: p.stdout + p.stderr }, dig: { code: d.code, out: d.stdout + d.stderr } };
  } finally {
    onHost('client', ['ip', 'route', 'del', UPSTREAM_NET, 'via', PROXY_PUBLIC]);
    expect(onHost('client', 'ip route show').stdout, "the client's routes are as before the probe").toBe(before);
  }
}

function expectUnreachable(r: Reach, what: string): void {
  expect(r.ping.code, `${what}: ping to the upstream must get no reply:\n${r.ping.out}`).not.toBe(0);
  expect(r.ping.out, what).toMatch(/0 received/);
  expect(r.dig.code, `${what}: dig to the upstream must time out:\n${r.dig.out}`).not.toBe(0);
  expect(r.dig.out, what).toMatch(/timed out|no servers could be reached/);
}

const httpOk = () => expect(curlSources(), 'every upstream sees the client').toEqual([CLIENT_IP, CLIENT_IP, CLIENT_IP, CLIENT_IP]);
const sysctlForward = () => onHost('proxy', 'sysctl -n net.ipv4.ip_forward').stdout.trim();
const filterTable = () => onHost('proxy', "iptables-save -t filter | grep -v '^#'").stdout;

async function doctorFinding(inventory: string, id: string) {
  const r = await dsrctl(['doctor', '-i', inventory, '--json']);
  const j = expectJson(r, 'doctor --json');
  const findings = (j.hosts as { findings: { host: string; id: string; severity: string; title: string; evidence: string[] }[] }[]).flatMap((h) => h.findings);
  const f = findings.find((x) => x.host === 'proxy' && x.id === id);
  expect(f, show(r, `doctor: proxy ${id}`)).toBeDefined();
  return f!;
}

describe('Method 1 (ip-transparency): no forwarding without masquerade', () => {
  let pristine: Record<string, string>;
  beforeAll(async () => {
    labUp();
    pristine = await settledSnapshotAll();
  });
  afterAll(() => labDown());

  it('apply: no ip_forward, no forward filter in the plan; forwarding stays off; the guide\'s check passes (the upstreams see 192.168.99.1)', async () => {
    const r = await run(['apply', '--yes', '--json']);
    expectCode(r, 0, 'apply ip-transparency');
    const ids = hostJson(expectJson(r, 'apply'), 'proxy').changes.map((c: any) => c.id as string);
    expect(ids, show(r)).not.toContain('sysctl net.ipv4.ip_forward');
    expect(ids.some((id: string) => /DSRCTL-FORWARD/.test(id)), show(r)).toBe(false);
    expect(sysctlForward(), 'net.ipv4.ip_forward on the proxy').toBe('0');
    expect(curlSources(), 'every upstream sees the client').toEqual([CLIENT_IP, CLIENT_IP, CLIENT_IP, CLIENT_IP]);
  });

  it('a client that routes 172.16.0.0/24 via the proxy cannot reach an upstream (ping and dig time out)', () => {
    for (const ip of [UPSTREAM_IPS[0]!, UPSTREAM_IPS[3]!]) expectUnreachable(reachUpstreamViaProxy(ip), `Method 1, ${ip}`);
    expect(curlSources(), 'the guide\'s check still passes afterwards').toEqual([CLIENT_IP, CLIENT_IP, CLIENT_IP, CLIENT_IP]);
  });

  it('doctor agrees: forwarding off is what Method 1 without masquerade wants', async () => {
    const f = await doctorFinding(LAB_INVENTORY, 'ip-forward');
    expect(f).toMatchObject({ severity: 'ok', evidence: ['net.ipv4.ip_forward = 0'] });
    expect(f.title).toMatch(/^IP forwarding is off, as ip-transparency without masquerade wants/);
  });

  it('doctor flags forwarding turned on by hand: the upstreams are open to the public side', async () => {
    const on = onHost('proxy', 'sysctl -q -w net.ipv4.ip_forward=1');
    expect(on.code, on.stderr).toBe(0);
    try {
      const f = await doctorFinding(LAB_INVENTORY, 'ip-forward');
      expect(f.severity).toBe('warn');
      expect(f.title).toMatch(/IP forwarding is on, though ip-transparency without masquerade does not need it/);
      // and that is what it means: the client reaches an upstream through the proxy
      const r = reachUpstreamViaProxy(UPSTREAM_IPS[0]!);
      expect(r.ping.code, `with forwarding on by hand the ping goes through:\n${r.ping.out}`).toBe(0);
    } finally {
      onHost('proxy', 'sysctl -q -w net.ipv4.ip_forward=0 net.ipv4.conf.all.accept_redirects=1');
    }
  });

  it('rollback restores every host byte for byte', async () => {
    const r = await run(['rollback', '--yes']);
    expectCode(r, 0, 'rollback');
    expect(snapshotDiff(pristine), 'after rollback').toBe('');
  });

  it('with masquerade: forwarding on, limited to the upstreams\' own traffic; they reach the client, the client still cannot reach them; rollback is exact', async () => {
    const inv = inventoryVariant((y) => y.replace('masquerade: false', 'masquerade: true').replace('ping_targets: []', `ping_targets: [${CLIENT_IP}]`));
    const r = await run(['apply', '--yes', '--json'], inv);
    expectCode(r, 0, 'apply with masquerade (verify pings the client from every upstream)');
    const ids = hostJson(expectJson(r, 'apply'), 'proxy').changes.map((c: any) => c.id as string);
    expect(ids.indexOf('iptables -t filter chain DSRCTL-FORWARD'), show(r, 'the filter comes before forwarding goes on')).toBeGreaterThanOrEqual(0);
    expect(ids.indexOf('iptables -t filter chain DSRCTL-FORWARD')).toBeLessThan(ids.indexOf('sysctl net.ipv4.ip_forward'));
    expect(sysctlForward()).toBe('1');
    const filter = filterTable();
    expect(filter, 'FORWARD keeps its policy; the jump is its only rule').toMatch(/^:FORWARD ACCEPT /m);
    expect(filter).toContain('-A FORWARD -m comment --comment dsrctl -j DSRCTL-FORWARD');
    expect(filter).toContain('-A DSRCTL-FORWARD -d 172.16.0.11/32 -i pub0 -o priv0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT');
    for (const u of UPSTREAMS) {
      const p = onHost(u, ['ping', '-n', '-c', '1', '-W', '2', CLIENT_IP]);
      expect(p.code, `${u} reaches the client through the masquerade:\n${p.stdout}${p.stderr}`).toBe(0);
    }
    expectUnreachable(reachUpstreamViaProxy(UPSTREAM_IPS[1]!), 'Method 1 with masquerade');
    expect(curlSources()).toEqual([CLIENT_IP, CLIENT_IP, CLIENT_IP, CLIENT_IP]);
    expect((await doctorFinding(inv, 'forward-filter')).severity).toBe('ok');

    const rb = await run(['rollback', '--yes'], inv);
    expectCode(rb, 0, 'rollback');
    expect(snapshotDiff(pristine), 'after rollback (iptables-save included)').toBe('');
  });

  it('masquerade on, then off again: the next apply puts forwarding back off and removes the filter; the client cannot reach the upstreams; rollback is exact', async () => {
    const masq = inventoryVariant((y) => y.replace('masquerade: false', 'masquerade: true'));
    expectCode(await run(['apply', '--yes'], masq), 0, 'apply with masquerade');
    expect(sysctlForward()).toBe('1');
    const r = await run(['apply', '--yes', '--json']);
    expectCode(r, 0, 'apply without masquerade');
    const changes = hostJson(expectJson(r, 'apply without masquerade'), 'proxy').changes as any[];
    expect(changes.map((c) => c.summary), show(r)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^remove iptables chain DSRCTL-FORWARD and its jump from FORWARD/),
        expect.stringMatching(/^set net\.ipv4\.ip_forward 1 -> 0 \(put back: run \S+ turned forwarding on; ip-transparency without masquerade does not need it\)$/),
      ]),
    );
    expect(sysctlForward(), 'forwarding is off again').toBe('0');
    expect(filterTable()).not.toContain('DSRCTL-FORWARD');
    expectUnreachable(reachUpstreamViaProxy(UPSTREAM_IPS[0]!), 'after masquerade was turned off');
    httpOk();
    const rb = await run(['rollback', '--yes']);
    expectCode(rb, 0, 'rollback of both runs');
    expect(snapshotDiff(pristine), 'after rollback').toBe('');
  });
});

describe('dsr-router-nat: forwarding limited to the upstreams\' replies', () => {
  let pristine: Record<string, string>;
  let pristineFilter: string;
  beforeAll(async () => {
    labUp({ DSR_LAB_MODE: 'dsr-router-nat', DSR_LAB_PROTOCOL: 'udp' });
    pristine = await settledSnapshotAll();
    pristineFilter = filterTable();
  });
  afterAll(() => labDown());

  it('apply: DSRCTL-FORWARD jumped to from FORWARD (policy untouched), then ip_forward; every dig through the proxy is answered', async () => {
    const r = await run(['apply', '--yes', '--json']);
    expectCode(r, 0, 'apply dsr-router-nat');
    const changes = hostJson(expectJson(r, 'apply'), 'proxy').changes as any[];
    const ids = changes.map((c) => c.id as string);
    expect(ids.indexOf('iptables -t filter chain DSRCTL-FORWARD'), show(r)).toBeGreaterThanOrEqual(0);
    expect(ids.indexOf('iptables -t filter chain DSRCTL-FORWARD')).toBeLessThan(ids.indexOf('sysctl net.ipv4.ip_forward'));
    expect(changes.find((c) => c.kind === 'forward-filter').summary).toMatch(/forward only the upstreams' replies \(udp sport 53\) between priv0 and pub0; drop other forwarding between them/);
    expect(sysctlForward()).toBe('1');
    const filter = filterTable();
    expect(filter).toMatch(/^:FORWARD ACCEPT /m);
    expect(filter.split('\n').filter((l) => l.startsWith('-A FORWARD '))).toEqual(['-A FORWARD -m comment --comment dsrctl -j DSRCTL-FORWARD']);
    for (const ip of UPSTREAM_IPS) expect(filter).toContain(`-A DSRCTL-FORWARD -s ${ip}/32 -i priv0 -o pub0 -p udp -m udp --sport 53 -j ACCEPT`);
    const d = digs(8);
    expect(d.answers.filter(Boolean).length, `DSR through the proxy: every query answered\n${d.raw}`).toBe(8);
    expect(new Set(d.answers), d.raw).toEqual(new Set(UPSTREAM_IPS));
  });

  it('the client cannot reach an upstream directly through the proxy (ping and dig time out); replies still flow', () => {
    expectUnreachable(reachUpstreamViaProxy(UPSTREAM_IPS[2]!), 'router NAT');
    const d = digs(4);
    expect(d.answers.filter(Boolean).length, `replies still flow through the proxy\n${d.raw}`).toBe(4);
  });

  it('doctor: forwarding on and limited', async () => {
    expect((await doctorFinding(LAB_INVENTORY, 'ip-forward')).severity).toBe('ok');
    const f = await doctorFinding(LAB_INVENTORY, 'forward-filter');
    expect(f).toMatchObject({ severity: 'ok', title: 'forwarding between priv0 and pub0 is limited to what dsr-router-nat needs (DSRCTL-FORWARD)' });
  });

  it('a second apply changes nothing', async () => {
    const before = snapshotAll();
    const r = await run(['apply', '--yes', '--json']);
    expectCode(r, 0, 'second apply');
    expect(Object.values(changeCounts(expectJson(r, 'second apply'))).every((n) => n === 0), show(r)).toBe(true);
    expect(snapshotDiff(before), 'a no-op apply').toBe('');
  });

  it('rollback restores every host byte for byte: iptables-save as before, forwarding off', async () => {
    const r = await run(['rollback', '--yes']);
    expectCode(r, 0, 'rollback');
    expect(filterTable(), 'iptables-save -t filter as before the apply').toBe(pristineFilter);
    expect(sysctlForward()).toBe('0');
    expect(snapshotDiff(pristine), 'after rollback').toBe('');
  });
});
