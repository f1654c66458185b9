import { z } from 'zod';
import { quote } from 'shell-quote';
import type { ResourceKind } from './types.js';
import type { IpRule } from '../facts/types.js';
import { ipAddChange } from './ip-route.js';

const schema = z.object({
  fwmark: z.string().regex(/^(0x[0-9a-f]+|\d+)$/i),
  table: z.string().regex(/^[0-9]+$/),
});
type Spec = z.infer<typeof schema>;

const num = (s: string | undefined) => (s === undefined ? undefined : Number(s));

/** `ip rule add fwmark 1 lookup 100`: matches a rule with exactly that mark (full mask) and table, from all. */
const PLAIN_KEYS = new Set(['priority', 'src', 'fwmark', 'fwmask', 'table']);

/**
 * A rule that does what `ip rule add fwmark 1 lookup 100` does: exactly that mark (full mask) and
 * table, from all, no other selector (`not`, iif, ...), and consulted before main (priority < 32766).
 */
export function matchesRule(r: IpRule, spec: Spec): boolean {
  const fullMask = r.fwmask === undefined || num(r.fwmask) === 0xffffffff;
  const plain = Object.keys(r).every((k) => PLAIN_KEYS.has(k));
  return plain && r.priority < 32766 && num(r.fwmark) === num(spec.fwmark) && fullMask && r.table === spec.table && (r.src === undefined || r.src === 'all');
}

export const ipRule: ResourceKind<Spec> = {
  kind: 'ip-rule',
  schema,
  plan(spec, facts) {
    if (facts.rules.some((r) => matchesRule(r, spec))) return null;
    return ipAddChange('rule', ['fwmark', spec.fwmark, 'lookup', spec.table]);
  },
  // `ip rule list SELECTOR` prints only the rules that match it: add the rule where none does
  boot(spec) {
    const args = ['fwmark', spec.fwmark, 'lookup', spec.table];
    return [{ what: `ip rule ${args.join(' ')}`, lines: [`${quote(['ip', 'rule', 'list', ...args])} | grep -q . || ${quote(['ip', 'rule', 'add', ...args])}`] }];
  },
};
