/**
 * End to end, Method 2 of the NGINX guide (Direct Server Return for UDP) against the lab: the
 * real CLI (dist/cli.js, so `npm run build` first) over SSH into network-namespace hosts, with
 * the guide's DNS demo (dnsmasq on each upstream answers www.example.com with its own address).
 *
 *   npm run build && npx vitest run --project e2e test/e2e/dsr.test.ts
 *
 * One describe per mode (2a router NAT, 2b origin NAT), each with its own lab. Inside a describe
 * the tests run IN ORDER and build on each other (the state each starts from is noted at its
 * top); when one fails, read the first failure.
 *
 * This kernel has no act_nat, so the stateless NAT is nftables netdev egress (nat.backend auto).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { HOSTS, UPSTREAMS, labUp, labDown, onHost, run, snapshotAll, settledSnapshotAll, inventoryVariant, inventoryReplacing, type CliResult } from './harness.js';
import { show, expectCode, expectJson, noStack, expectSnapshots, hostJson, changeCounts } from './expect.js';
import { digs, digFull, startCapture, stopCapture, PROXY_PUBLIC, UPSTREAM_IPS } from './net.js';

const STREAM_CONF = '/etc/nginx/dsrctl/stream.conf';
/** the upstreams' DNS replies as the proxy would see them if they crossed it */
// replies to clients; the health checker's (and verify's) own queries ask from the proxy's private address
const REPLY_FILTER = 'udp and src port 53 and src net 172.16.0.0/24 and not dst host 172.16.0.1';

// ---------------------------------------------------------------------------------------------
// helpers

const kinds = (j: any, host: string): string[] => (hostJson(j, host)?.changes ?? []).map((c: any) => c.kind).sort();
/** `nat:` is a top-level key: put it before `ssh:` */
const withNat = (y: string, backend: string) => y.replace(/^ssh:/m, `nat:\n  backend: ${backend}\nssh:`);

/** Every query answered, and by every upstream (round robin over 8 queries visits each twice). */
function expectDsrAnswers(d: ReturnType<typeof digs>, n: number, what: string): void {
  const answered = d.answers.filter((a) => a !== undefined);
  expect(answered.length, `${what}: every one of the ${n} queries must get an answer:\n${d.raw}`).toBe(n);
  expect(new Set(answered), `${what}: the answers must cover all four upstreams (load balanced):\n${d.raw}`).toEqual(new Set(UPSTREAM_IPS));
}

/** No answer at all: nothing listens on the proxy (before apply, after rollback). */
function expectNoAnswer(port = 53, what = ''): void {
  const r = onHost('client', `dig +short +tries=1 +time=2 -p ${port} @${PROXY_PUBLIC} www.example.com`);
  const answer = r.stdout.split('\n').find((l) => /^\d+\.\d+\.\d+\.\d+$/.test(l.trim()));
  expect(answer, `${what}: dig must fail (no nginx stream server on :${port}):\n${r.stdout}${r.stderr}`).toBeUndefined();
  expect(r.code, `${what}: dig exit code:\n${r.stdout}${r.stderr}`).not.toBe(0);
}

const NFT_NOTE = /stateless NAT backend: nft \(auto: .*no act_nat/;

// ---------------------------------------------------------------------------------------------

type Mode = 'dsr-router-nat' | 'dsr-origin-nat';

function dsrSuite(mode: Mode): void {
  const router = mode === 'dsr-router-nat';

  describe(`${mode} (udp, the guide's DNS demo; tests build on each other, in order)`, () => {
    /** every host right after lab up: before dsrctl ever ran */
    let before: Record<string, string>;
    let afterApply: Record<string, string>;

    beforeAll(async () => {
      labUp({ DSR_LAB_MODE: mode, DSR_LAB_PROTOCOL: 'udp' });
      before = await settledSnapshotAll(); // IPv6 DAD must be over, or the snapshots race it
    });
    afterAll(() => {
      labDown();
    });

    it('1. before apply: dig from the client gets no answer (no nginx stream server yet)', () => {
      expectNoAnswer(53, 'before apply');
    });

    it(`2. apply --yes --json exits 0 with the nft backend note and exactly the ${router ? 'router' : 'origin'} NAT changes`, async () => {
      // state: pristine
      const r = await run(['apply', '--yes', '--json']);
      expectCode(r, 0, 'first apply');
      const j = expectJson(r, 'first apply');
      expect(j.result, show(r)).toBe('applied');
      expect(j.mode, show(r)).toBe(mode);
      const proxy = hostJson(j, 'proxy');
      const byKind = (host: any, kind: string) => host.changes.filter((c: any) => c.kind === kind);

      // the proxy's nginx: `user` kept (Debian's nginx 1.22 keeps CAP_NET_RAW for unprivileged workers), a stream { } block, the managed stream.conf
      expect(byKind(proxy, 'nginx-user'), show(r, 'nginx.conf keeps user www-data')).toEqual([]);
      expect(proxy.notes.join('\n'), show(r, 'the plan says which user and why')).toMatch(/nginx user: keep \(nginx 1\.22\.1 >= 1\.13\.8 and CAP_NET_RAW in its capability bounding set/);
      expect(byKind(proxy, 'nginx-stream-context').map((c: any) => c.summary), show(r)).toEqual([expect.stringMatching(new RegExp(`stream \\{ \\} block with include ${STREAM_CONF}`))]);
      expect(byKind(proxy, 'nginx-managed-config').map((c: any) => c.id), show(r)).toEqual([`file ${STREAM_CONF}`]);
      // DSR's active health checker (test/e2e/health.test.ts): its server list and its daemon
      expect(byKind(proxy, 'health-checker').map((c: any) => c.id), show(r)).toEqual(['file /etc/nginx/dsrctl-health.servers', 'health checker']);

      if (router) {
        expect(kinds(j, 'proxy'), show(r, 'router NAT: the proxy changes')).toEqual(['forward-filter', 'health-checker', 'health-checker', 'nginx-managed-config', 'nginx-stream-context', 'stateless-nat', 'sysctl', 'sysctl']);
        expect(byKind(proxy, 'forward-filter')[0].summary, show(r, 'forwarding limited to the replies')).toMatch(/forward only the upstreams' replies \(udp sport 53\)/);
        expect(byKind(proxy, 'sysctl').map((c: any) => c.summary).sort(), show(r)).toEqual([
          expect.stringMatching(/net\.ipv4\.ip_forward 0 -> 1/),
          expect.stringMatching(/net\.ipv4\.udp_early_demux 1 -> 0/),
        ]);
        const nat = byKind(proxy, 'stateless-nat')[0];
        expect(nat.id, show(r)).toBe('nft table netdev dsrctl_nat_pub0');
        for (const ip of UPSTREAM_IPS) expect(nat.summary, show(r)).toContain(`${ip}:53 -> ${PROXY_PUBLIC}`);
        expect(proxy.notes.join('\n'), show(r, 'the proxy must say why it took nft')).toMatch(NFT_NOTE);
        for (const u of UPSTREAMS) {
          expect(kinds(j, u), show(r, `${u}: only its default route`)).toEqual(['default-route']);
          expect(hostJson(j, u).changes[0].summary, show(r)).toMatch(/via 172\.16\.0\.254 .*-> via 172\.16\.0\.1$/);
        }
        // and on the hosts
        const nft = onHost('proxy', 'nft list table netdev dsrctl_nat_pub0');
        expect(nft.code, nft.stderr).toBe(0);
        expect(nft.stdout, 'the egress chain of pub0').toMatch(/type filter hook egress device "pub0"/);
        for (const ip of UPSTREAM_IPS) expect(nft.stdout).toMatch(new RegExp(`ip saddr ${ip.replace(/\./g, '\\.')} udp sport 53 ip saddr set 192\\.168\\.99\\.10 `));
        for (const u of UPSTREAMS) expect(onHost(u, 'ip route show default').stdout.trim(), u).toMatch(/^default via 172\.16\.0\.1 dev priv0/);
      } else {
        expect(kinds(j, 'proxy'), show(r, 'origin NAT: only nginx and its health checker on the proxy (no sysctl, no NAT)')).toEqual(['health-checker', 'health-checker', 'nginx-managed-config', 'nginx-stream-context']);
        for (const [i, u] of UPSTREAMS.entries()) {
          const h = hostJson(j, u);
          expect(kinds(j, u), show(r, `${u}: only its own NAT (no route change)`)).toEqual(['stateless-nat']);
          expect(h.changes[0].id, show(r)).toBe('nft table netdev dsrctl_nat_priv0');
          expect(h.changes[0].summary, show(r)).toContain(`${UPSTREAM_IPS[i]}:53 -> ${PROXY_PUBLIC}`);
          expect(h.notes.join('\n'), show(r, `${u} must say why it took nft`)).toMatch(NFT_NOTE);
          const nft = onHost(u, 'nft list table netdev dsrctl_nat_priv0');
          expect(nft.stdout, `${u}'s table: its own address only, the proxy's health checks excluded`).toMatch(
            new RegExp(`ip saddr ${UPSTREAM_IPS[i]!.replace(/\./g, '\\.')} ip daddr != 172\\.16\\.0\\.1 udp sport 53 ip saddr set 192\\.168\\.99\\.10 `),
          );
          expect(onHost(u, 'ip route show default').stdout.trim(), `${u}: default route untouched`).toMatch(/^default via 172\.16\.0\.254 /);
        }
      }
      afterApply = snapshotAll();
    });

    it(`3. DSR proven: proxy_responses 0, yet 8 digs are all answered by all four upstreams; the replies ${router ? 'cross the proxy (forwarded)' : 'never cross the proxy'}`, () => {
      // state: applied
      const conf = onHost('proxy', ['cat', STREAM_CONF]);
      expect(conf.code, conf.stderr).toBe(0);
      expect(conf.stdout, 'nginx expects no reply').toMatch(/^\s*proxy_responses 0;$/m);
      expect(conf.stdout).toMatch(/^\s*proxy_bind \$remote_addr:\$remote_port transparent;$/m);
      expect(conf.stdout).toMatch(/^\s*listen 53 udp;$/m);
      expect(conf.stdout, 'no proxy_timeout in DSR').not.toMatch(/^\s*proxy_timeout/m);

      startCapture('proxy', REPLY_FILTER);
      let d: ReturnType<typeof digs>;
      let cap: ReturnType<typeof stopCapture>;
      try {
        d = digs(8);
      } finally {
        cap = stopCapture('proxy');
      }
      expectDsrAnswers(d, 8, 'after apply');
      if (router) expect(cap.packets.length, `router NAT: the 8 replies pass through the proxy:\n${cap.raw}`).toBeGreaterThanOrEqual(8);
      else expect(cap.packets, `origin NAT: no reply may reach the proxy:\n${cap.raw}`).toEqual([]);
    });

    it('4. a second apply changes nothing (0 changes, every host byte for byte the same)', async () => {
      // state: applied
      const r = await run(['apply', '--yes', '--json']);
      expectCode(r, 0, 'second apply');
      const j = expectJson(r, 'second apply');
      expect(j.result, show(r)).toBe('no-changes');
      expect(changeCounts(j), show(r)).toEqual(Object.fromEntries(HOSTS.map((h) => [h, 0])));
      expectSnapshots(afterApply, 'after a no-change apply');
    });

    it('5. verify passes, with the direct per-upstream service checks (the active health checks DSR needs)', async () => {
      // state: applied
      const r = await run(['verify', '--json']);
      expectCode(r, 0, 'verify');
      const j = expectJson(r, 'verify');
      expect(j.ok, show(r)).toBe(true);
      const checks: any[] = j.checks;
      for (const [i, u] of UPSTREAMS.entries()) {
        const c = checks.find((x) => x.id === `service-${u}`);
        expect(c, show(r, `service-${u} missing`)).toBeDefined();
        expect(c.kind, show(r)).toBe('service-dns');
        expect(c.ok, show(r, `service-${u}`)).toBe(true);
        // `. SOA` by default: dnsmasq without upstream servers refuses it, and any response code is alive
        expect(c.detail, show(r, `service-${u}: ${u}'s DNS server responds (REFUSED)`)).toBe('REFUSED (the server responded)');
        expect(c.target, show(r)).toBe(`${UPSTREAM_IPS[i]}:53`);
      }
      const probe = checks.find((x) => x.id === 'probe-dns');
      expect(probe?.ok, show(r, 'the DNS probe through the proxy')).toBe(true);
      expect(checks.filter((c) => !c.ok), show(r)).toEqual([]);
      expectSnapshots(afterApply, 'verify must not change any host');
    });

    it('6. rollback restores every host byte for byte (nft ruleset, sysctls, routes, nginx); dig fails again; a second rollback is harmless', async () => {
      // state: applied (one run)
      const r = await run(['rollback', '--yes', '--json']);
      expectCode(r, 0, 'rollback');
      expect(expectJson(r, 'rollback').ok, show(r)).toBe(true);
      expectSnapshots(before, 'after rollback');
      expectNoAnswer(53, 'after rollback');

      const again = await run(['rollback', '--yes', '--json']);
      expectCode(again, 0, 'second rollback');
      expect(expectJson(again, 'second rollback').nothingToUndo, show(again)).toBe(true);
      expectSnapshots(before, 'after a second rollback');
    });

    let tcAlone: CliResult;
    it('7. refusals: exit 2 with the reason, nothing touched (protocol http, tc with a port change, tc without act_nat, overlapping client network)', async () => {
      // state: pristine (every host has changes pending, so a run that touched anything would show)
      const cases: { name: string; file: string; code: number; says: RegExp }[] = [
        { name: 'protocol http in a DSR mode', file: inventoryReplacing('protocol: udp', 'protocol: http'), code: 2, says: new RegExp(`service\\.protocol: ${mode} works for UDP only`) },
        {
          name: 'listen_port 5353 with nat.backend tc',
          file: inventoryVariant((y) => withNat(y.replace(/listen_port: 53$/m, 'listen_port: 5353'), 'tc')),
          code: 2,
          says: /nat\.backend: tc's nat action rewrites addresses only.*port 5353/,
        },
        {
          name: 'client_networks overlapping the upstreams',
          file: inventoryReplacing(/^( {2}upstream_port: 53)$/m, '$1\n  client_networks: [172.16.0.0/24]'),
          code: 2,
          says: /service\.client_networks\[0\]: 172\.16\.0\.0\/24 contains upstream dev1 .*must not overlap/,
        },
      ];
      const results = await Promise.all(cases.map((c) => run(['apply', '--yes'], c.file)));
      for (const [i, c] of cases.entries()) {
        const r = results[i]!;
        expectCode(r, c.code, c.name);
        expect(r.stderr, show(r, `${c.name}: the reason`)).toMatch(c.says);
        noStack(r, c.name);
      }
      // tc on a kernel without act_nat: found only from the hosts' facts, so it runs after the others
      tcAlone = await run(['apply', '--yes'], inventoryVariant((y) => withNat(y, 'tc')));
      expect(tcAlone.stdout + tcAlone.stderr, show(tcAlone, 'nat.backend tc: the message must say the kernel has no act_nat')).toMatch(
        /nat\.backend tc cannot run here: kernel \S+ has no act_nat/,
      );
      expect(tcAlone.stderr, show(tcAlone)).toMatch(/Nothing was changed/i);
      expect(tcAlone.code, show(tcAlone, 'nat.backend tc without act_nat: refused')).not.toBe(0);
      noStack(tcAlone, 'nat.backend tc');
      expectSnapshots(before, 'a refused run must not touch any host');
    });

    // a backend the host cannot run is bad input found while planning: nothing was touched
    it('7b. nat.backend tc without act_nat exits 2 (bad input), not 1', () => {
      expectCode(tcAlone, 2, 'nat.backend tc without act_nat');
    });

    it('8. listen_port 5353 -> upstream 53: nft rewrites the source port back; dig -p 5353 gets clean answers; rollback restores', async () => {
      // state: pristine
      const file = inventoryReplacing(/listen_port: 53$/m, 'listen_port: 5353');
      const r = await run(['apply', '--yes', '--json'], file);
      expectCode(r, 0, 'apply with listen_port 5353');
      const j = expectJson(r, 'apply with listen_port 5353');
      const natHosts = router ? ['proxy'] : UPSTREAMS;
      for (const h of natHosts) {
        expect(hostJson(j, h).notes.join('\n'), show(r, `${h}: why nft`)).toMatch(/stateless NAT backend: nft \(auto: /);
        const nat = hostJson(j, h).changes.find((c: any) => c.kind === 'stateless-nat');
        expect(nat?.summary, show(r, `${h}: the NAT rewrites to :5353`)).toMatch(/:53 -> 192\.168\.99\.10:5353/);
        const nft = onHost(h, 'nft list ruleset');
        expect(nft.stdout, `${h}: udp sport set 5353`).toMatch(/udp sport 53 ip saddr set 192\.168\.99\.10 udp sport set 5353 /);
      }
      expect(onHost('proxy', ['cat', STREAM_CONF]).stdout).toMatch(/^\s*listen 5353 udp;$/m);
      expect(onHost('proxy', ['cat', STREAM_CONF]).stdout).toMatch(/^\s*proxy_pass dsrctl_upstreams;$/m);

      expectDsrAnswers(digs(8, { port: 5353 }), 8, 'dig -p 5353');
      const full = digFull({ port: 5353 });
      expect(full.code, full.out).toBe(0);
      expect(full.out, 'a clean answer from the address and port asked').toMatch(/status: NOERROR/);
      expect(full.out).toMatch(/SERVER: 192\.168\.99\.10#5353/);
      expect(full.out, 'dig must not complain (the reply comes from 192.168.99.10:5353)').not.toMatch(/unexpected source|warning/i);
      expectNoAnswer(53, 'nothing listens on :53 with listen_port 5353');

      const rb = await run(['rollback', '--yes'], file);
      expectCode(rb, 0, 'rollback of the 5353 run');
      expectSnapshots(before, 'after rollback of the 5353 run');
      expectNoAnswer(5353, 'after rollback of the 5353 run');
    });

    if (router)
      describe('switching modes: ip-transparency (udp) then dsr-router-nat, no rollback in between', () => {
        /** what happened, for the report (printed at the end) */
        const story: string[] = [];

        it('9a. ip-transparency (udp) applies and answers; its MARK rules are on the proxy', async () => {
          // state: pristine
          const it1 = await run(['apply', '--yes', '--json'], inventoryReplacing(/^mode: .*$/m, 'mode: ip-transparency'));
          expectCode(it1, 0, 'apply ip-transparency');
          const marks = onHost('proxy', 'iptables-save -t mangle | grep -c -- "-j MARK"').stdout.trim();
          expect(marks, 'four MARK rules (one per upstream)').toBe('4');
          expectDsrAnswers(digs(8), 8, 'ip-transparency udp');
          story.push(`ip-transparency: ${hostJson(it1.json, 'proxy').changes.length} changes on the proxy, ${marks} MARK rules`);
        });

        it('9b. dsr-router-nat on top: exits 0, removes the MARK rules, and DSR answers', async () => {
          // state: ip-transparency applied
          const switchRun = await run(['apply', '--yes', '--json']);
          expectCode(switchRun, 0, 'apply dsr-router-nat over ip-transparency');
          const j = expectJson(switchRun, 'switch');
          story.push(`switch apply: exit ${switchRun.code}; proxy changes:\n    ${hostJson(j, 'proxy').changes.map((c: any) => `${c.kind}: ${c.summary}`).join('\n    ')}`);
          story.push(`switch apply: upstream changes: ${UPSTREAMS.map((u) => `${u} ${hostJson(j, u).changes.length}`).join(', ')}`);
          const removed = hostJson(j, 'proxy').changes.filter((c: any) => c.kind === 'iptables-rule' && /^remove /.test(c.summary));
          expect(removed.length, show(switchRun, "the guide's Method 1 MARK rules would hand router NAT's replies to nginx: dsrctl removes them")).toBe(4);
          expect(onHost('proxy', 'iptables-save -t mangle | grep -c -- "-j MARK" || true').stdout.trim()).toBe('0');
          const left = onHost('proxy', 'ip rule show | grep fwmark; ip route show table 100; sysctl -n net.ipv4.ip_forward; grep "^user" /etc/nginx/nginx.conf').stdout.trim();
          story.push(`left on the proxy after the switch (not wanted by router NAT, not removed):\n    ${left.split('\n').join('\n    ')}`);
          expectDsrAnswers(digs(8), 8, 'router NAT after the switch');
          const v = await run(['verify', '--json']);
          expectCode(v, 0, 'verify after the switch');
          const p = await run(['plan', '--json']);
          story.push(`plan after the switch: ${p.json?.changes} change(s)`);
        });

        // rollback undoes every active run back to the state before dsrctl (commit 4695218): the
        // switch run on the proxy, then the ip-transparency run everywhere. Before that commit it
        // undid only each host's LAST run and left the proxy in Method 1 with the upstreams back on
        // the router (DNS through the proxy timed out).
        it('9c. rollback after the switch restores every host byte for byte (both runs undone); dig fails; a second rollback has nothing to undo', async () => {
          // state: ip-transparency, then dsr-router-nat on top
          const r = await run(['rollback', '--yes', '--json']);
          expectCode(r, 0, 'rollback after the switch');
          const marks = onHost('proxy', 'iptables-save -t mangle | grep -c -- "-j MARK" || true').stdout.trim();
          const fwmark = onHost('proxy', 'ip rule show | grep -c fwmark || true').stdout.trim();
          const routes = UPSTREAMS.map((u) => `${u}: ${onHost(u, 'ip route show default').stdout.trim()}`).join('; ');
          const d = digs(2);
          story.push(`rollback after the switch: exit ${r.code}; proxy MARK rules ${marks}, fwmark rules ${fwmark}; ${routes}; dig answers ${d.answers.filter(Boolean).length}/2`);
          const again = await run(['rollback', '--yes', '--json']);
          story.push(`second rollback: exit ${again.code}, nothingToUndo ${again.json?.nothingToUndo}`);
          console.log(`mode switch (ip-transparency -> dsr-router-nat):\n  ${story.join('\n  ')}`);
          expectSnapshots(before, 'after rollback of both runs');
          expect(d.answers.filter(Boolean), d.raw).toEqual([]);
          expectCode(again, 0, 'second rollback after the switch');
          expect(again.json?.nothingToUndo, show(again)).toBe(true);
          expectSnapshots(before, 'after a second rollback');
        });
      });
  });
}

dsrSuite('dsr-router-nat');
dsrSuite('dsr-origin-nat');
