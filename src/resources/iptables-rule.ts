import { z } from 'zod';
import { quote } from 'shell-quote';
import { PlanError, type ResourceKind } from './types.js';
import type { Step } from '../plan/types.js';

const schema = z.object({
  table: z.enum(['filter', 'nat', 'mangle', 'raw']),
  chain: z.string().regex(/^[A-Za-z0-9_-]{1,28}$/),
  /** the rule exactly as `iptables-save` prints it after `-A CHAIN` */
  rule: z.array(z.string().regex(/^[^\s'"\\;&|`$]+$/, 'iptables rule words must not contain spaces or shell characters')),
});
type Spec = z.infer<typeof schema>;

export const iptablesRule: ResourceKind<Spec> = {
  kind: 'iptables-rule',
  schema,
  facts: () => ({ sections: ['iptables'] }),
  plan(spec, facts, ctx) {
    const { variant, tables } = facts.iptables;
    if (variant === null) throw new PlanError(ctx.host, 'iptables is not installed');
    if (facts.iptables.error) throw new PlanError(ctx.host, `cannot read the current rules (${facts.iptables.error}); dsrctl needs root there`);
    const line = `-A ${spec.chain} ${spec.rule.join(' ')}`;
    const table = tables[spec.table];
    if (table?.rules.includes(line)) return null;
    const undo: Step[] = [{ run: ['iptables', '-w', '-t', spec.table, '-D', spec.chain, ...spec.rule] }];
    // iptables-nft creates the whole table on first use and never removes it; drop it again when
    // this plan created it and it is empty, so iptables-save reads back exactly as before.
    const createdKey = `iptables-table:${spec.table}`;
    if (!table && variant === 'nft' && !ctx.shared.has(createdKey)) {
      ctx.shared.set(createdKey, true);
      undo.push({
        sh: `if ! iptables-save -t ${quote([spec.table])} | grep -q '^-A '; then nft delete table ip ${quote([spec.table])}; fi`,
      });
    }
    return {
      kind: 'iptables-rule',
      id: `iptables -t ${spec.table} ${line}`,
      action: 'create',
      summary: `add iptables -t ${spec.table} ${line}`,
      do: [{ run: ['iptables', '-w', '-t', spec.table, '-A', spec.chain, ...spec.rule] }],
      undo,
    };
  },
  // -C: the rule is there already (appended at boot like the apply appends it)
  boot(spec) {
    return [
      {
        what: `iptables -t ${spec.table} -A ${spec.chain} ${spec.rule.join(' ')}`,
        lines: [`${quote(['iptables', '-w', '-t', spec.table, '-C', spec.chain, ...spec.rule])} 2>/dev/null || ${quote(['iptables', '-w', '-t', spec.table, '-A', spec.chain, ...spec.rule])}`],
      },
    ];
  },
};
