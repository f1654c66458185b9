import { z } from 'zod';
import { quote } from 'shell-quote';
import type { ResourceKind } from './types.js';
import type { Change } from '../plan/types.js';
import type { IpRoute } from '../facts/types.js';
import { ipv4 } from '../inventory/schema.js';

const schema = z.object({
  type: z.enum(['local', 'unicast']).default('unicast'),
  dst: z.string().regex(/^[0-9./]+$|^default$/),
  dev: z.string().regex(/^[A-Za-z0-9_.@-]{1,15}$/).optional(),
  via: ipv4.optional(),
  table: z.string().regex(/^[0-9]+$|^main$/).default('main'),
});
type Spec = z.infer<typeof schema>;

/** iproute2 prints 0.0.0.0/0 as "default" and host routes without /32. */
export function normDst(dst: string): string {
  if (dst === '0.0.0.0/0' || dst === 'default') return 'default';
  return dst.endsWith('/32') ? dst.slice(0, -3) : dst;
}

export function routeMatches(r: IpRoute, spec: Spec): boolean {
  return (
    (r.type ?? 'unicast') === spec.type &&
    normDst(r.dst) === normDst(spec.dst) &&
    (r.table ?? 'main') === spec.table &&
    (spec.dev === undefined || r.dev === spec.dev) &&
    (spec.via === undefined || r.gateway === spec.via)
  );
}

export function routeArgs(spec: Spec): string[] {
  return [
    ...(spec.type === 'local' ? ['local'] : []),
    spec.dst,
    ...(spec.via ? ['via', spec.via] : []),
    ...(spec.dev ? ['dev', spec.dev] : []),
    'table',
    spec.table,
  ];
}

/** Kind `ip-OBJECT`: `ip OBJECT add ARGS`, undone by `ip OBJECT del ARGS` (ip-route, ip-rule). */
export function ipAddChange(object: 'route' | 'rule', args: string[]): Change {
  return {
    kind: `ip-${object}`,
    id: `ip ${object} ${args.join(' ')}`,
    action: 'create',
    summary: `add ip ${object} ${args.join(' ')}`,
    do: [{ run: ['ip', object, 'add', ...args] }],
    undo: [{ run: ['ip', object, 'del', ...args] }],
  };
}

export const ipRoute: ResourceKind<z.input<typeof schema>> = {
  kind: 'ip-route',
  schema,
  plan(input, facts) {
    const spec = schema.parse(input);
    if (facts.routes.some((r) => routeMatches(r, spec))) return null;
    return ipAddChange('route', routeArgs(spec));
  },
  // replace: adds the route, or leaves the one there as it is
  boot(input) {
    const args = routeArgs(schema.parse(input));
    return [{ what: `ip route ${args.join(' ')}`, lines: [quote(['ip', 'route', 'replace', ...args])] }];
  },
};
