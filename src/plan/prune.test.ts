import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFacts } from '../facts/parse.js';
import { pruneChanges } from './prune.js';
import { renderStep } from '../apply/render-step.js';
import type { Desired } from './desired.js';

const facts = () => parseFacts(readFileSync(new URL('../../test/fixtures/facts/proxy-applied.txt', import.meta.url), 'utf8'));
const mark = (ip: string): Desired => ({
  kind: 'iptables-rule',
  spec: { table: 'mangle', chain: 'PREROUTING', rule: ['-s', `${ip}/32`, '-p', 'tcp', '-m', 'tcp', '--sport', '8080', '-m', 'comment', '--comment', 'dsrctl', '-j', 'MARK', '--set-xmark', '0x1/0xffffffff'] },
});
const render = (steps: Parameters<typeof renderStep>[0][]) => steps.map((s) => renderStep(s, '/run'));

describe('pruning what earlier runs left', () => {
  it('keeps tagged rules the inventory still wants, removes the others with an undo that re-inserts them in place', () => {
    const changes = pruneChanges([mark('172.16.0.11')], facts());
    expect(changes.map((c) => c.action)).toEqual(['delete']);
    expect(render(changes[0]!.do)).toEqual(['iptables -w -t nat -D POSTROUTING -s 172.16.0.0/24 -o pub0 -m comment --comment dsrctl -j MASQUERADE']);
    expect(render(changes[0]!.undo)).toEqual(['iptables -w -t nat -I POSTROUTING 1 -s 172.16.0.0/24 -o pub0 -m comment --comment dsrctl -j MASQUERADE']);
  });

  it('a mode without MARK rules (DSR router NAT) removes Method 1 MARK rules, which would divert its replies into nginx', () => {
    const changes = pruneChanges([], facts());
    expect(changes.map((c) => c.summary)).toEqual([
      expect.stringMatching(/^remove iptables -t mangle -A PREROUTING -s 172\.16\.0\.11\/32 .* -j MARK/),
      expect.stringMatching(/^remove iptables -t nat -A POSTROUTING .* -j MASQUERADE/),
    ]);
  });

  it('leaves untagged rules alone', () => {
    const f = facts();
    f.iptables.tables.nat!.rules.push('-A POSTROUTING -o pub0 -j MASQUERADE');
    expect(pruneChanges([], f).some((c) => c.summary.includes('-A POSTROUTING -o pub0 -j MASQUERADE'))).toBe(false);
  });

  it('removes a dsrctl nft NAT table no longer wanted, and undo reloads it as listed', () => {
    const f = facts();
    const table = 'table netdev dsrctl_nat_pub0 {\n\tchain egress {\n\t}\n}\n';
    f.nft.tables['netdev dsrctl_nat_pub0'] = table;
    f.nft.tables['inet filter'] = 'table inet filter {\n}\n';
    const changes = pruneChanges([], f).filter((c) => c.kind === 'stateless-nat');
    expect(changes).toHaveLength(1);
    expect(render(changes[0]!.do)).toEqual(['nft delete table netdev dsrctl_nat_pub0']);
    expect(render(changes[0]!.undo)[0]).toContain(Buffer.from(table).toString('base64'));
    expect(pruneChanges([{ kind: 'stateless-nat', spec: { interface: 'pub0', sources: 'upstreams' } }], f).filter((c) => c.kind === 'stateless-nat')).toEqual([]);
  });
});
