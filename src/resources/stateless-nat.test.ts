/**
 * The tc backend of stateless-nat against REAL iproute2 output.
 *
 * test/fixtures/facts/tc-filters-act-nat.txt is `tc filter show dev pub0` on the lab proxy after
 * `dsrctl apply` with nat.backend tc, captured inside the VM (Debian kernel 6.1.0-56-amd64 with
 * act_nat, iproute2 6.1) by test/vm/tc-router-nat.sh: the block between
 * "---- tc filter show dev pub0 (applied)" and "---- end ..." of
 *   bash test/vm/run-in-vm.sh test/vm/tc-router-nat.sh
 * (test/e2e/tc-backend.test.ts runs the same thing end to end).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFacts } from '../facts/parse.js';
import { parseNatProbe, parseTc } from '../facts/parsers/nat.js';
import type { HostFacts } from '../facts/types.js';
import { inventorySchema, type Inventory } from '../inventory/schema.js';
import { loadPlaybook, type Playbook } from '../playbook/load.js';
import { desiredHosts } from '../plan/desired.js';
import { planHost } from '../plan/plan-host.js';
import { renderStep } from '../apply/render-step.js';
import { tcHasRule, tcFilterArgs, type NatRule } from './stateless-nat.js';
import { PlanError } from './types.js';

const FILTERS = readFileSync(new URL('../../test/fixtures/facts/tc-filters-act-nat.txt', import.meta.url), 'utf8');
const UPSTREAM_IPS = ['172.16.0.11', '172.16.0.12', '172.16.0.13', '172.16.0.14'];
const PUBLIC = '192.168.99.10';
const rule = (src: string, over: Partial<NatRule> = {}): NatRule => ({ name: 'dev', src, sport: 53, to: PUBLIC, ...over });

/** A facts `tc` section body as the facts script prints it, parsed like parseFacts does. */
const tcFacts = (qdisc: string, filters = '') => parseTc(`dev=pub0\n${qdisc}\n--filters--\n${filters}`)[1];

describe('tcHasRule on real `tc filter show` output (act_nat, iproute2 6.1)', () => {
  it('the fixture is what dsrctl added: four u32 filters with the source port key and a nat action each', () => {
    expect(FILTERS.match(/^filter parent 10: protocol ip pref 10 u32 chain 0 fh 800::80\d /gm)).toHaveLength(4);
    expect(FILTERS.match(/^ {2}match 00350000\/ffff0000 at 20$/gm)).toHaveLength(4);
    expect(FILTERS.match(/^\taction order 1: {2}nat egress 172\.16\.0\.1[1-4]\/32 192\.168\.99\.10 pass$/gm)).toHaveLength(4);
  });

  // raw (blank lines between filters) and as parseTc hands it to the planner (blank lines dropped)
  for (const [what, text] of [
    ['raw', FILTERS],
    ['through parseTc', tcFacts('qdisc htb 10: root refcnt 2 r2q 10 default 0 direct_packets_stat 6 direct_qlen 1000', FILTERS).filters],
  ] as const) {
    describe(what, () => {
      it.each(UPSTREAM_IPS)("recognises %s:53 -> 192.168.99.10 (the filter dsrctl added for it)", (ip) => {
        expect(tcHasRule(text, rule(ip))).toBe(true);
      });

      it.each([
        ['another source', rule('172.16.0.15')],
        ['a source that is a prefix of one listed (172.16.0.1)', rule('172.16.0.1')],
        ['another port', rule('172.16.0.11', { sport: 5353 })],
        ['a port one off', rule('172.16.0.11', { sport: 54 })],
        ['another target', rule('172.16.0.11', { to: '192.168.99.11' })],
        ['a target that is a prefix of the real one (192.168.99.1)', rule('172.16.0.11', { to: '192.168.99.1' })],
      ])('rejects %s', (_, r) => {
        expect(tcHasRule(text, r)).toBe(false);
      });
    });
  }

  it('needs the source, the port and the nat action in ONE filter, not spread over several', () => {
    // dev1's filter now rewrites another source: its own rule is gone, the others stay
    const broken = FILTERS.replace('nat egress 172.16.0.11/32', 'nat egress 172.16.0.99/32');
    expect(tcHasRule(broken, rule('172.16.0.11'))).toBe(false);
    for (const ip of UPSTREAM_IPS.slice(1)) expect(tcHasRule(broken, rule(ip))).toBe(true);
    // dev2's filter without its port key
    const noPort = FILTERS.replace(/(match ac10000c\/ffffffff at 12\n) {2}match 00350000\/ffff0000 at 20\n/, '$1');
    expect(noPort).not.toBe(FILTERS);
    expect(tcHasRule(noPort, rule('172.16.0.12'))).toBe(false);
    expect(tcHasRule(noPort, rule('172.16.0.13'))).toBe(true);
  });

  it('ignores filters at another priority or parent', () => {
    expect(tcHasRule(FILTERS.replace(/pref 10 /g, 'pref 11 '), rule('172.16.0.11'))).toBe(false);
    expect(tcHasRule(FILTERS.replace(/parent 10: /g, 'parent 1: '), rule('172.16.0.11'))).toBe(false);
  });

  it('nothing in empty output', () => {
    expect(tcHasRule('', rule('172.16.0.11'))).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// plan level: the router-NAT playbook's stateless-nat entry through desiredHosts + planHost

/** The lab's DSR inventory (the guide's addresses, udp 53 -> 53). */
function dsrInventory(backend: 'auto' | 'tc' | 'nft'): Inventory {
  return inventorySchema.parse({
    mode: 'dsr-router-nat',
    service: { protocol: 'udp', listen_port: 53, upstream_port: 53 },
    nat: { backend },
    proxy: {
      ssh_host: '10.211.0.10',
      public_ip: PUBLIC,
      public_interface: 'pub0',
      private_ip: '172.16.0.1',
      private_interface: 'priv0',
      managed_config: '/etc/nginx/dsrctl/stream.conf',
    },
    upstreams: UPSTREAM_IPS.map((ip, i) => ({ name: `dev${i + 1}`, ssh_host: `10.211.0.1${i + 1}`, ip, interface: 'priv0' })),
  });
}

/** dsr-router-nat's playbook, proxy side reduced to its stateless-nat entry (as written in the yaml). */
const full = loadPlaybook('dsr-router-nat');
const pb: Playbook = { ...full, proxy: full.proxy.filter((e) => e.kind === 'stateless-nat') };

/** The nat-probe section the VM's proxy printed before act_nat was loaded (a module on disk). */
const NAT_PROBE_MODULE = 'act_nat_loaded=0\nact_nat_builtin=0\nact_nat_module=/lib/modules/6.1.0-56-amd64/kernel/net/sched/act_nat.ko\ntc=/usr/sbin/tc\nnft=/usr/sbin/nft';
const NOQUEUE = 'qdisc noqueue 0: root refcnt 2 ';
const OUR_HTB = 'qdisc htb 10: root refcnt 2 r2q 10 default 0 direct_packets_stat 6 direct_qlen 1000';

/** The proxy fixture (real facts of a lab proxy), with the VM kernel's nat probe and pub0's tc state. */
function proxyFacts(qdisc: string, filters = ''): HostFacts {
  const base = parseFacts(readFileSync(new URL('../../test/fixtures/facts/proxy-applied.txt', import.meta.url), 'utf8'));
  return { ...base, kernel: '6.1.0-56-amd64', nat: parseNatProbe(NAT_PROBE_MODULE), tc: { pub0: tcFacts(qdisc, filters) } };
}

function planProxy(inv: Inventory, facts: HostFacts) {
  const proxy = desiredHosts(inv, pb).find((t) => t.name === 'proxy')!;
  expect(proxy.desired).toEqual([{ kind: 'stateless-nat', spec: { interface: 'pub0', sources: 'upstreams' } }]);
  const plan = planHost(inv, pb, proxy, facts);
  return { plan, nat: plan.changes.filter((c) => c.kind === 'stateless-nat') };
}

const render = (steps: Parameters<typeof renderStep>[0][]) => steps.map((s) => renderStep(s, '/var/lib/dsrctl/runs/RUN'));
const FILTER_LINES = UPSTREAM_IPS.map(
  (ip) => `tc filter add dev pub0 parent 10: protocol ip prio 10 u32 match ip src ${ip}/32 match ip sport 53 0xffff action nat egress ${ip}/32 ${PUBLIC}`,
);

describe('stateless-nat plan with act_nat as a module (a stock Debian kernel)', () => {
  it('the probe reads as "module"', () => {
    expect(parseNatProbe(NAT_PROBE_MODULE)).toEqual({ actNat: 'module', tc: true, nft: true });
  });

  it('auto picks tc and plans the guide\'s qdisc and one filter per upstream; undo removes the qdisc', () => {
    const { plan, nat } = planProxy(dsrInventory('auto'), proxyFacts(NOQUEUE));
    expect(plan.notes).toContain('stateless NAT backend: tc (auto: act_nat is module)');
    expect(nat).toHaveLength(1);
    expect(nat[0]!.id).toBe('tc nat on pub0');
    expect(nat[0]!.action).toBe('create');
    expect(render(nat[0]!.do).map((l) => l.replace(/\\:/g, ':'))).toEqual(['tc qdisc add dev pub0 root handle 10: htb', ...FILTER_LINES]);
    expect(render(nat[0]!.undo).map((l) => l.replace(/\\:/g, ':'))).toEqual(['tc qdisc del dev pub0 root']);
    expect(tcFilterArgs('pub0', rule('172.16.0.11')).map((a) => a.join(' '))).toEqual([FILTER_LINES[0]]);
  });

  it('a kernel default root qdisc (fq_codel 0:, mq 0:) is nobody\'s: tc still plans its own', () => {
    for (const q of ['qdisc fq_codel 0: root refcnt 2 limit 10240p flows 1024 quantum 1514 target 5ms interval 100ms memory_limit 32Mb ecn drop_batch 64 ', 'qdisc mq 0: root ']) {
      const { nat } = planProxy(dsrInventory('auto'), proxyFacts(q));
      expect(nat.map((c) => c.action), q).toEqual(['create']);
    }
  });

  it('what apply left (htb 10: and the real filters): nothing to do, with auto and with tc', () => {
    for (const backend of ['auto', 'tc'] as const) {
      const { plan, nat } = planProxy(dsrInventory(backend), proxyFacts(OUR_HTB, FILTERS));
      expect(nat, backend).toEqual([]);
      expect(plan.notes.join('\n'), backend).toMatch(/stateless NAT backend: tc /);
    }
  });

  it('our qdisc with one filter missing: adds only that one, into the qdisc that is there', () => {
    const without4 = FILTERS.split(/\n(?=filter )/)
      .filter((b) => !b.includes('nat egress 172.16.0.14/32'))
      .join('\n');
    const { nat } = planProxy(dsrInventory('tc'), proxyFacts(OUR_HTB, without4));
    expect(nat.map((c) => c.action)).toEqual(['update']);
    expect(render(nat[0]!.do).map((l) => l.replace(/\\:/g, ':'))).toEqual([FILTER_LINES[3]]);
    // undo empties dsrctl's priority and puts back the three filters that were there before this run
    expect(render(nat[0]!.undo).map((l) => l.replace(/\\:/g, ':'))).toEqual(['tc filter del dev pub0 parent 10: prio 10', ...FILTER_LINES.slice(0, 3)]);
  });

  it('switching backends: nft takes over from an earlier tc NAT (removed, and put back on undo), and tc from an earlier nft table', () => {
    const f = proxyFacts(OUR_HTB, FILTERS);
    const { nat } = planProxy(dsrInventory('nft'), f);
    expect(nat).toHaveLength(1);
    const doLines = render(nat[0]!.do).map((l) => l.replace(/\\:/g, ':'));
    expect(doLines[0]).toBe('tc qdisc del dev pub0 root');
    expect(doLines.at(-1)).toMatch(/\| nft -f \/dev\/stdin$/);
    const undoLines = render(nat[0]!.undo).map((l) => l.replace(/\\:/g, ':'));
    expect(undoLines.slice(-5)).toEqual(['tc qdisc add dev pub0 root handle 10: htb', ...FILTER_LINES]);

    const g = proxyFacts(NOQUEUE);
    g.nft.tables['netdev dsrctl_nat_pub0'] = 'table netdev dsrctl_nat_pub0 {\n}\n';
    const tc = planProxy(dsrInventory('tc'), g).nat;
    expect(render(tc[0]!.do)[0]).toBe('nft delete table netdev dsrctl_nat_pub0');
    expect(render(tc[0]!.undo).at(-1)).toMatch(/nft -f \/dev\/stdin$/);
  });

  it.each([
    ['fq_codel 8001:', 'qdisc fq_codel 8001: root refcnt 2 limit 10240p flows 1024 quantum 1514 target 5ms interval 100ms memory_limit 32Mb ecn drop_batch 64 '],
    ['htb 1:', 'qdisc htb 1: root refcnt 2 r2q 10 default 0 direct_packets_stat 0 direct_qlen 1000'],
  ])('a root qdisc someone else made (%s): PlanError, usage, and it is left alone', (handle, qdisc) => {
    for (const backend of ['auto', 'tc'] as const) {
      let err: unknown;
      try {
        planProxy(dsrInventory(backend), proxyFacts(qdisc));
      } catch (e) {
        err = e;
      }
      expect(err, backend).toBeInstanceOf(PlanError);
      expect((err as PlanError).usage, backend).toBe(true);
      expect((err as PlanError).message, backend).toContain(`pub0 already has a root qdisc (${handle}) that dsrctl did not make; it is left alone`);
    }
  });
});

describe('stateless-nat tc: filters this inventory does not want', () => {
  it('stops instead of leaving an old rewrite in front of the new ones', () => {
    const inv = dsrInventory('tc');
    inv.upstreams = inv.upstreams.slice(0, 3); // dev4 removed from the inventory, its filter still there
    let err: unknown;
    try {
      planProxy(inv, proxyFacts(OUR_HTB, FILTERS));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlanError);
    expect((err as PlanError).message).toMatch(/pub0 has 1 tc nat filter\(s\) this inventory does not want/);
  });
});
