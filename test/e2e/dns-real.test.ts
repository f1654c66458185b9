/**
 * End to end: DSR against DNS servers as real ones behave. The lab's upstreams run dnsmasq as an
 * authoritative server of its own zone (DSR_LAB_DNS=authoritative: lab.test only; www.example.com
 * and every other name get REFUSED), and the inventory names no verify.probe.dns_query. dsrctl
 * must count any DNS response as alive (the default query is keepalived's `. SOA`), and only
 * silence or an ICMP error as dead.
 *
 *   npm run build && npx vitest run --project e2e test/e2e/dns-real.test.ts
 *
 * One describe per DSR mode, each with its own lab; inside a describe the tests run in order.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UPSTREAMS, LAB_DIR, LAB_INVENTORY, labUp, labDown, onHost, run, settledSnapshotAll } from './harness.js';
import { show, expectCode, expectJson, expectSnapshots, output } from './expect.js';
import { UPSTREAM_IPS } from './net.js';

/** The response code dig gets from an upstream, asked from the proxy. */
function rcode(ip: string, question: string): string {
  const r = onHost('proxy', `dig +tries=1 +time=2 +noall +comments @${ip} ${question}`);
  return /status: ([A-Z]+)/.exec(r.stdout)?.[1] ?? `no response: ${r.stdout}${r.stderr}`;
}

for (const mode of ['dsr-router-nat', 'dsr-origin-nat'] as const) {
  describe(`${mode} with upstreams that refuse every name outside their zone (in order)`, () => {
    let before: Record<string, string>;

    beforeAll(async () => {
      labUp({ DSR_LAB_MODE: mode, DSR_LAB_PROTOCOL: 'udp', DSR_LAB_DNS: 'authoritative' });
      before = await settledSnapshotAll();
    });
    afterAll(() => labDown());

    it('1. the upstreams answer like real authoritative servers: www.example.com REFUSED, their own zone NOERROR; the inventory sets no dns_query', () => {
      for (const ip of UPSTREAM_IPS) {
        expect(rcode(ip, 'www.example.com A'), ip).toBe('REFUSED');
        expect(rcode(ip, '. SOA'), ip).toBe('REFUSED');
        expect(rcode(ip, 'www.lab.test A'), ip).toBe('NOERROR');
      }
      expect(readFileSync(LAB_INVENTORY, 'utf8')).not.toMatch(/dns_query/);
    });

    it('2. plan states the DNS check: ". SOA", any response code counts', async () => {
      const r = await run(['plan']);
      expectCode(r, 0, 'plan');
      expect(r.stdout, show(r)).toContain('Verification: service check: dns (default for udp port 53): ". SOA", any response code counts');
    });

    it('3. apply verifies and exits 0: every upstream check passes on REFUSED, with the code in the check line', async () => {
      const r = await run(['apply', '--yes']);
      expectCode(r, 0, 'apply');
      for (const [i, u] of UPSTREAMS.entries())
        expect(r.stdout, show(r, `${u}'s check line`)).toContain(
          `ok   ${u}'s service answers the proxy directly (DNS query ". SOA" to ${UPSTREAM_IPS[i]}:53, any response code counts; default for udp port 53): REFUSED (the server responded)`,
        );
      expect(r.stdout, show(r, 'the probe through the proxy')).toMatch(/ok {3}4 DNS queries \(". SOA", any response code counts\) from the probe through the proxy.*: 4 of 4 answered: REFUSED \| REFUSED \| REFUSED \| REFUSED/);
      expect(r.stdout, show(r)).toMatch(/Applied run \S+ and verified it\./);
    });

    if (mode === 'dsr-router-nat')
      it('4. a stopped DNS server on dev3 fails verify (exit 1) with a line naming dev3; rollback restores every host byte for byte', async () => {
        const pid = Number(readFileSync(join(LAB_DIR, 'pids', 'dev3.dns'), 'utf8').trim());
        expect(pid).toBeGreaterThan(1);
        process.kill(pid, 'SIGTERM');
        const deadline = Date.now() + 20_000;
        while (Date.now() < deadline && !/no response/.test(rcode(UPSTREAM_IPS[2]!, '. SOA')));
        expect(rcode(UPSTREAM_IPS[2]!, '. SOA'), 'dnsmasq on dev3 is stopped').toMatch(/^no response/);

        const v = await run(['verify']);
        expectCode(v, 1, 'verify with a stopped DNS server');
        expect(output(v), show(v, "dev3's check line")).toContain(
          `FAIL dev3's service answers the proxy directly (DNS query ". SOA" to ${UPSTREAM_IPS[2]}:53, any response code counts; default for udp port 53): no response: connection refused (ICMP port unreachable: nothing listens)`,
        );
        for (const u of ['dev1', 'dev2', 'dev4']) expect(output(v), show(v)).toMatch(new RegExp(`ok {3}${u}'s service answers the proxy directly .*: REFUSED \\(the server responded\\)`));

        const j = expectJson(await run(['verify', '--json']), 'verify --json');
        expect(j.exitCode).toBe(1);
        expect(j.checks.filter((c: any) => !c.ok).map((c: any) => c.id)).toContain('service-dev3');

        const rb = await run(['rollback', '--yes']);
        expectCode(rb, 0, 'rollback');
        expectSnapshots(before, 'after rollback');
      });
    else
      it('4. rollback restores every host byte for byte', async () => {
        const rb = await run(['rollback', '--yes']);
        expectCode(rb, 0, 'rollback');
        expectSnapshots(before, 'after rollback');
      });
  });
}
