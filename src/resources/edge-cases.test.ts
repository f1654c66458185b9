/** Real-world states a network engineer meets, found in review: each planned safely or refused. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFacts, parseRtTables } from '../facts/parse.js';
import { parseTc } from '../facts/parsers/nat.js';
import type { HostFacts } from '../facts/types.js';
import { matchesRule } from './ip-rule.js';
import { defaultRoute } from './default-route.js';
import { sysctl } from './sysctl.js';
import { PlanError, type PlanContext } from './types.js';
import { renderStep } from '../apply/render-step.js';

const facts = (): HostFacts => parseFacts(readFileSync(new URL('../../test/fixtures/facts/pristine-upstream.txt', import.meta.url), 'utf8'));
const ctx = { host: 'dev1', notes: [], shared: new Map() } as unknown as PlanContext;
const render = (steps: Parameters<typeof renderStep>[0][]) => steps.map((s) => renderStep(s, '/r').replace(/\\=/g, '='));

describe('edge cases', () => {
  it('a table named in rt_tables is read as its number, so a named table 100 is still ours', () => {
    const names = parseRtTables('255\tlocal\n254\tmain\n253\tdefault\n0\tunspec\n# comment\n100 transparent\n');
    expect([...names]).toEqual([['transparent', '100']]);
    const text = readFileSync(new URL('../../test/fixtures/facts/proxy-applied.txt', import.meta.url), 'utf8')
      .replace('"table":"100"', '"table":"transparent"')
      .replace('@@dsrctl-facts:begin done@@', '@@dsrctl-facts:begin rt-tables@@\n100 transparent\n@@dsrctl-facts:end rt-tables rc=0@@\n@@dsrctl-facts:begin done@@');
    expect(parseFacts(text).rules.some((r) => r.fwmark === '0x1' && r.table === '100')).toBe(true);
  });

  it('only a plain fwmark rule consulted before main counts as the guide\'s rule', () => {
    const spec = { fwmark: '0x1', table: '100' };
    expect(matchesRule({ priority: 32765, src: 'all', fwmark: '0x1', table: '100' }, spec)).toBe(true);
    expect(matchesRule({ priority: 40000, src: 'all', fwmark: '0x1', table: '100' }, spec)).toBe(false);
    expect(matchesRule({ priority: 32765, src: 'all', fwmark: '0x1', table: '100', not: null }, spec)).toBe(false);
    expect(matchesRule({ priority: 32765, src: 'all', fwmark: '0x1', iif: 'eth1', table: '100' }, spec)).toBe(false);
  });

  it('a multipath or nexthop-object default route is refused: it could not be restored exactly', () => {
    const f = facts();
    const d = f.routes.find((r) => r.dst === 'default')!;
    f.routes = f.routes.map((r) => (r === d ? { ...r, gateway: undefined, dev: undefined, nexthops: [{ gateway: '172.16.0.254', dev: 'priv0', weight: 1 }] } : r));
    expect(() => defaultRoute.plan({ via: '172.16.0.1' }, f, ctx)).toThrow(PlanError);
    expect(() => defaultRoute.plan({ via: '172.16.0.1' }, f, ctx)).toThrow(/multipath/);
  });

  it('ip_forward\'s undo also puts back conf.all.accept_redirects, which the kernel rewrites with it', () => {
    const f = facts();
    f.sysctl['net.ipv4.ip_forward'] = '0';
    f.sysctl['net.ipv4.conf.all.accept_redirects'] = '0';
    const c = sysctl.plan({ key: 'net.ipv4.ip_forward', value: '1', restore: ['net.ipv4.conf.all.accept_redirects'] }, f, ctx)!;
    expect(render(c.undo)).toEqual(['sysctl -q -w net.ipv4.ip_forward=0', 'sysctl -q -w net.ipv4.conf.all.accept_redirects=0']);
  });

  it('any root qdisc with handle 0: is the kernel default, not someone else\'s', () => {
    expect(parseTc('dev=pub0\nqdisc fq 0: root refcnt 2 limit 10000p\n--filters--\n')[1].rootQdisc).toBeNull();
    expect(parseTc('dev=pub0\nqdisc fq 8001: root refcnt 2 limit 10000p\n--filters--\n')[1].rootQdisc).toEqual({ kind: 'fq', handle: '8001:' });
  });
});
