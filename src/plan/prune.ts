import type { HostFacts } from '../facts/types.js';
import type { Change } from './types.js';
import type { Desired } from './desired.js';
import { nftTableName, nftLoad } from '../resources/stateless-nat.js';
import { forwardFilterRemoval, isForwardFilterLine } from '../resources/forward-filter.js';

/** iptables-save quotes a comment only when it needs to; dsrctl's is the bare word. */
const TAG = /(^| )-m comment --comment dsrctl( |$)/;

/** Split an iptables-save rule line into argv words (dsrctl's own rules have no quoted words). */
const words = (line: string) => line.trim().split(/\s+/);

/**
 * What an earlier dsrctl run left that this inventory no longer wants (another mode, an upstream
 * removed): rules tagged `--comment dsrctl` and `dsrctl_nat_*` nft tables. Left in place they can
 * break the new mode (the guide's Method 1 MARK rules divert router-NAT replies into nginx).
 * Each deletion's undo puts the rule back at its old position, so rollback stays exact. Pure.
 */
export function pruneChanges(desired: Desired[], facts: HostFacts): Change[] {
  const changes: Change[] = [];
  const wantRules = new Set(
    desired
      .filter((d) => d.kind === 'iptables-rule')
      .map((d) => {
        const s = d.spec as { table: string; chain: string; rule: string[] };
        return `${s.table} -A ${s.chain} ${s.rule.join(' ')}`;
      }),
  );
  if (!facts.iptables.error) {
    for (const [table, t] of Object.entries(facts.iptables.tables)) {
      const position = new Map<string, number>();
      for (const line of t.rules) {
        const [, chain] = words(line);
        position.set(chain!, (position.get(chain!) ?? 0) + 1);
        // the forward filter's chain and jump are removed whole, below
        if (!TAG.test(line) || wantRules.has(`${table} ${line}`) || isForwardFilterLine(table, line)) continue;
        const [, ch, ...rule] = words(line);
        changes.push({
          kind: 'iptables-rule',
          id: `iptables -t ${table} ${line}`,
          action: 'delete',
          summary: `remove iptables -t ${table} ${line} (left by an earlier dsrctl run; not wanted by this inventory)`,
          do: [{ run: ['iptables', '-w', '-t', table, '-D', ch!, ...rule] }],
          undo: [{ run: ['iptables', '-w', '-t', table, '-I', ch!, String(position.get(chain!)), ...rule] }],
        });
        // later rules of this chain move up by one once this one is gone, but undo runs in
        // reverse order, so each re-insert sees the chain as it was when its rule was deleted
        position.set(chain!, position.get(chain!)! - 1);
      }
    }
  }
  if (!facts.iptables.error && !desired.some((d) => d.kind === 'forward-filter')) {
    const removal = forwardFilterRemoval(facts);
    if (removal) changes.push(removal);
  }
  const wantTables = new Set(
    desired.filter((d) => d.kind === 'stateless-nat').map((d) => `netdev ${nftTableName((d.spec as { interface: string }).interface)}`),
  );
  for (const [key, text] of Object.entries(facts.nft.tables)) {
    const [family, name] = key.split(' ') as [string, string];
    if (!name.startsWith('dsrctl_nat_') || wantTables.has(key)) continue;
    changes.push({
      kind: 'stateless-nat',
      id: `nft table ${key}`,
      action: 'delete',
      summary: `remove nft table ${key} (left by an earlier dsrctl run; not wanted by this inventory)`,
      do: [{ run: ['nft', 'delete', 'table', family, name] }],
      undo: [nftLoad(text, `nft -f - (table ${key} as it was)`)],
    });
  }
  return changes;
}
