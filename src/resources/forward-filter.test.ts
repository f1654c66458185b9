/** The forward filter: forwarding limited to what the mode needs, in a chain dsrctl owns, with exact undo. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFacts } from '../facts/parse.js';
import { parseIptablesSave } from '../facts/parsers/iptables-save.js';
import type { HostFacts } from '../facts/types.js';
import { inventorySchema, type Inventory } from '../inventory/schema.js';
import { loadPlaybook } from '../playbook/load.js';
import { desiredHosts } from '../plan/desired.js';
import { planHost } from '../plan/plan-host.js';
import { renderStep } from '../apply/render-step.js';
import { forwardFilter, forwardRules, forwardingPutBack, sysctlUndoValues } from './forward-filter.js';
import { sysctl } from './sysctl.js';
import { renderUndo } from '../apply/apply-script.js';
import type { PlanContext } from './types.js';

/** iptables-save -t filter on the lab's proxy after a dsr-router-nat apply (real output, comments cut). */
const APPLIED = readFileSync(new URL('../../test/fixtures/operations/forward-filter/rnat-applied.iptables-save', import.meta.url), 'utf8');

function inventory(mode: 'ip-transparency' | 'dsr-router-nat', masquerade = false): Inventory {
  return inventorySchema.parse({
    mode,
    service: mode === 'dsr-router-nat' ? { protocol: 'udp', listen_port: 53, upstream_port: 53 } : { protocol: 'http', listen_port: 80, upstream_port: 8080 },
    proxy: { ssh_host: '10.211.0.10', public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0', masquerade, managed_config: '/etc/nginx/conf.d/dsrctl-does-not-exist.conf' },
    upstreams: [1, 2, 3, 4].map((n) => ({ name: `dev${n}`, ssh_host: `10.211.0.1${n}`, ip: `172.16.0.1${n}`, interface: 'priv0' })),
  });
}

/** The lab's proxy (real facts) with the given filter table, or none (iptables-nft creates it on first use). */
function proxy(filter: string | null): HostFacts {
  const f = parseFacts(readFileSync(new URL('../../test/fixtures/facts/proxy-applied.txt', import.meta.url), 'utf8'));
  const tables = filter === null ? {} : parseIptablesSave(filter);
  f.iptables = { variant: 'nft', save: filter ?? '', tables };
  return f;
}

const ctx = (inv: Inventory) => ({ inventory: inv, host: 'proxy', role: 'proxy', shared: new Map(), notes: [] }) as unknown as PlanContext;
const render = (steps: Parameters<typeof renderStep>[0][]) => steps.map((s) => renderStep(s, '/r'));
const ipt = 'iptables -w -t filter';

describe('forward-filter', () => {
  it('router NAT: each upstream\'s replies pass, other forwarding between the two interfaces is dropped; written as iptables-save prints it', () => {
    const inv = inventory('dsr-router-nat');
    const lines = forwardRules(inv, { replies: true }).map((r) => `-A DSRCTL-FORWARD ${r.join(' ')}`);
    // the lab's proxy printed exactly these lines after the apply
    expect(APPLIED.split('\n').filter((l) => l.startsWith('-A DSRCTL-FORWARD'))).toEqual(lines);
    expect(lines).toEqual([
      '-A DSRCTL-FORWARD -s 172.16.0.11/32 -i priv0 -o pub0 -p udp -m udp --sport 53 -j ACCEPT',
      '-A DSRCTL-FORWARD -s 172.16.0.12/32 -i priv0 -o pub0 -p udp -m udp --sport 53 -j ACCEPT',
      '-A DSRCTL-FORWARD -s 172.16.0.13/32 -i priv0 -o pub0 -p udp -m udp --sport 53 -j ACCEPT',
      '-A DSRCTL-FORWARD -s 172.16.0.14/32 -i priv0 -o pub0 -p udp -m udp --sport 53 -j ACCEPT',
      '-A DSRCTL-FORWARD -i priv0 -o pub0 -j DROP',
      '-A DSRCTL-FORWARD -i pub0 -o priv0 -j DROP',
    ]);
  });

  it('masquerade: the upstreams\' outbound traffic and the replies to it pass (conntrack), nothing else from outside', () => {
    const rules = forwardRules(inventory('ip-transparency', true), { replies: false }).map((r) => r.join(' '));
    expect(rules.slice(0, 2)).toEqual(['-s 172.16.0.11/32 -i priv0 -o pub0 -j ACCEPT', '-d 172.16.0.11/32 -i pub0 -o priv0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT']);
    expect(rules).toHaveLength(10);
    expect(rules.slice(-2)).toEqual(['-i priv0 -o pub0 -j DROP', '-i pub0 -o priv0 -j DROP']);
  });

  it('on a proxy without a filter table: creates the chain, fills it, jumps to it from the top of FORWARD; undo takes it all away and the table iptables-nft made', () => {
    const c = forwardFilter.plan({ replies: true }, proxy(null), ctx(inventory('dsr-router-nat')))!;
    expect(c.action).toBe('create');
    const doSteps = render(c.do);
    expect(doSteps[0]).toBe(`${ipt} -N DSRCTL-FORWARD`);
    expect(doSteps.at(-1)).toBe(`${ipt} -I FORWARD 1 -m comment --comment dsrctl -j DSRCTL-FORWARD`);
    expect(doSteps).toHaveLength(8);
    expect(render(c.undo)).toEqual([
      `${ipt} -D FORWARD -m comment --comment dsrctl -j DSRCTL-FORWARD`,
      `${ipt} -F DSRCTL-FORWARD`,
      `${ipt} -X DSRCTL-FORWARD`,
      "if ! iptables-save -t filter | grep -q '^-A '; then nft delete table ip filter; fi",
    ]);
    // the policy of FORWARD is never set
    expect([...doSteps, ...render(c.undo)].some((s) => / -P /.test(s))).toBe(false);
  });

  it('a filter table with rules of the operator\'s: left in place, and not dropped on undo', () => {
    const own = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -i docker0 -j ACCEPT\nCOMMIT\n';
    const c = forwardFilter.plan({ replies: true }, proxy(own), ctx(inventory('dsr-router-nat')))!;
    expect(render(c.undo).some((s) => s.includes('nft delete table'))).toBe(false);
    expect(render(c.do).filter((s) => s.includes(' FORWARD '))).toEqual([`${ipt} -I FORWARD 1 -m comment --comment dsrctl -j DSRCTL-FORWARD`]);
  });

  it('applied: nothing to do', () => {
    expect(forwardFilter.plan({ replies: true }, proxy(APPLIED), ctx(inventory('dsr-router-nat')))).toBeNull();
  });

  it('an upstream removed from the inventory: the chain is rewritten; undo puts the old rules back', () => {
    const inv = inventory('dsr-router-nat');
    const three = { ...inv, upstreams: inv.upstreams.slice(0, 3) };
    const c = forwardFilter.plan({ replies: true }, proxy(APPLIED), ctx(three))!;
    expect(c.action).toBe('update');
    expect(c.summary).toMatch(/6 -> 5 rules/);
    expect(render(c.do)[0]).toBe(`${ipt} -F DSRCTL-FORWARD`);
    expect(render(c.undo)).toEqual([`${ipt} -F DSRCTL-FORWARD`, ...APPLIED.split('\n').filter((l) => l.startsWith('-A DSRCTL-FORWARD')).map((l) => `${ipt} ${l}`)]);
  });

  it('switching to Method 1 without masquerade: the chain and its jump go (before anything else), undo puts the jump back at its place', () => {
    const inv = inventory('ip-transparency');
    const pb = loadPlaybook('ip-transparency');
    const target = desiredHosts(inv, pb).find((t) => t.name === 'proxy')!;
    const withOther = APPLIED.replace('-A FORWARD -m comment', '-A FORWARD -i docker0 -j ACCEPT\n-A FORWARD -m comment');
    const p = planHost(inv, pb, target, proxy(withOther));
    const c = p.changes[0]!;
    expect(c).toMatchObject({ kind: 'forward-filter', action: 'delete' });
    expect(render(c.do)).toEqual([`${ipt} -D FORWARD -m comment --comment dsrctl -j DSRCTL-FORWARD`, `${ipt} -F DSRCTL-FORWARD`, `${ipt} -X DSRCTL-FORWARD`]);
    expect(render(c.undo)[0]).toBe(`${ipt} -N DSRCTL-FORWARD`);
    expect(render(c.undo).at(-1)).toBe(`${ipt} -I FORWARD 2 -m comment --comment dsrctl -j DSRCTL-FORWARD`);
    // and no other change touches the filter table, nor turns forwarding on
    expect(p.changes.slice(1).some((x) => x.kind === 'forward-filter' || x.id === 'sysctl net.ipv4.ip_forward')).toBe(false);
  });

  it('router NAT plan: the filter is in place before forwarding goes on', () => {
    const inv = inventory('dsr-router-nat');
    const pb = loadPlaybook('dsr-router-nat');
    const kinds = desiredHosts(inv, pb).find((t) => t.name === 'proxy')!.desired.map((d) => (d.kind === 'sysctl' ? (d.spec as { key: string }).key : d.kind));
    expect(kinds.indexOf('forward-filter')).toBeLessThan(kinds.indexOf('net.ipv4.ip_forward'));
  });
});

describe('forwarding-put-back', () => {
  /** The undo an earlier run journaled for `ip_forward 0 -> 1`, exactly as the apply script writes it. */
  function earlierRunUndo(): string {
    const f = proxy(null);
    f.sysctl['net.ipv4.ip_forward'] = '0';
    f.sysctl['net.ipv4.conf.all.accept_redirects'] = '1';
    const c = sysctl.plan({ key: 'net.ipv4.ip_forward', value: '1', restore: ['net.ipv4.conf.all.accept_redirects'] }, f, ctx(inventory('dsr-router-nat')))!;
    return renderUndo(c, '/var/lib/dsrctl/runs/R');
  }
  /** The proxy after that run: forwarding on, the kernel's accept_redirects rewritten to 0. */
  function afterEarlierRun(): HostFacts {
    const f = proxy(null);
    f.sysctl['net.ipv4.ip_forward'] = '1';
    f.sysctl['net.ipv4.conf.all.accept_redirects'] = '0';
    f.journalUndos = { 'sysctl net.ipv4.ip_forward': { run: '20261207T120000Z-abcdef', undo: earlierRunUndo() } };
    return f;
  }

  it('reads the values back from the journaled undo', () => {
    expect(sysctlUndoValues(earlierRunUndo())).toEqual([['net.ipv4.ip_forward', '0'], ['net.ipv4.conf.all.accept_redirects', '1']]);
  });

  it('Method 1 without masquerade after a run that turned forwarding on: put back off (with accept_redirects), undo turns it on again', () => {
    const c = forwardingPutBack.plan({}, afterEarlierRun(), ctx(inventory('ip-transparency')))!;
    expect(c).toMatchObject({ id: 'sysctl net.ipv4.ip_forward', action: 'update' });
    expect(c.summary).toBe('set net.ipv4.ip_forward 1 -> 0 (put back: run 20261207T120000Z-abcdef turned forwarding on; ip-transparency without masquerade does not need it)');
    expect(render(c.do)).toEqual(['sysctl -q -w net.ipv4.ip_forward\\=0', 'sysctl -q -w net.ipv4.conf.all.accept_redirects\\=1']);
    expect(render(c.undo)).toEqual(['sysctl -q -w net.ipv4.ip_forward\\=1', 'sysctl -q -w net.ipv4.conf.all.accept_redirects\\=0']);
  });

  it('leaves forwarding alone where the mode needs it, where no dsrctl run turned it on, or where it is already back', () => {
    expect(forwardingPutBack.plan({}, afterEarlierRun(), ctx(inventory('ip-transparency', true)))).toBeNull();
    expect(forwardingPutBack.plan({}, afterEarlierRun(), ctx(inventory('dsr-router-nat')))).toBeNull();
    const own = afterEarlierRun();
    delete own.journalUndos;
    expect(forwardingPutBack.plan({}, own, ctx(inventory('ip-transparency')))).toBeNull();
    const off = afterEarlierRun();
    off.sysctl['net.ipv4.ip_forward'] = '0';
    expect(forwardingPutBack.plan({}, off, ctx(inventory('ip-transparency')))).toBeNull();
  });
});
