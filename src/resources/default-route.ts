import { z } from 'zod';
import { quote } from 'shell-quote';
import { PlanError, type ResourceKind } from './types.js';
import type { IpRoute } from '../facts/types.js';
import { ipv4 } from '../inventory/schema.js';

const schema = z.object({ via: ipv4 });
type Spec = z.infer<typeof schema>;

/** The exact `ip route` arguments that re-create a route read from `ip -j route`. */
export function recreateArgs(r: IpRoute): string[] {
  const args = ['default'];
  if (r.gateway) args.push('via', r.gateway);
  if (r.dev) args.push('dev', r.dev);
  if (r.protocol) args.push('proto', r.protocol);
  if (r.scope && r.scope !== 'global') args.push('scope', r.scope);
  if (r.prefsrc) args.push('src', r.prefsrc);
  if (r.metric !== undefined) args.push('metric', String(r.metric));
  if (r.flags.includes('onlink')) args.push('onlink');
  return args;
}

const isMainDefault = (r: IpRoute) => (r.table ?? 'main') === 'main' && (r.type ?? 'unicast') === 'unicast' && (r.dst === 'default' || r.dst === '0.0.0.0/0');

/**
 * The guide's step 3: "remove any pre-existing default route and configure the default route to be
 * the IP address of the NGINX Plus reverse proxy". Every other default route in main goes, because a
 * lower-metric one would still carry the replies past the proxy; undo puts each back as it was.
 */
export const defaultRoute: ResourceKind<Spec> = {
  kind: 'default-route',
  schema,
  plan(spec, facts, ctx) {
    const current = facts.routes.filter(isMainDefault);
    // multipath, nexthop objects and route metrics cannot be put back exactly from `ip -j` here: refuse
    const odd = current.find((r) => r.nexthops !== undefined || r.nhid !== undefined || r.metrics !== undefined);
    if (odd)
      throw new PlanError(
        ctx.host,
        `its default route (${JSON.stringify(odd)}) uses multipath, a nexthop object or route metrics, which dsrctl cannot restore exactly on rollback; replace it by a plain "default via GW dev IF" first`,
        { usage: true },
      );
    if (current.length === 1 && current[0]!.gateway === spec.via && !current[0]!.metric) return null;
    const newArgs = ['default', 'via', spec.via];
    const describe = current.length === 0 ? 'none' : current.map((r) => recreateArgs(r).slice(1).join(' ')).join('; ');
    return {
      kind: 'default-route',
      id: 'ip route default',
      action: current.length ? 'update' : 'create',
      summary: `default route ${describe} -> via ${spec.via}`,
      // delete first: `ip route add` refuses a second default of the same metric
      do: [...current.map((r) => ({ run: ['ip', 'route', 'del', ...recreateArgs(r)] })), { run: ['ip', 'route', 'add', ...newArgs] }],
      undo: [{ run: ['ip', 'route', 'del', ...newArgs] }, ...current.map((r) => ({ run: ['ip', 'route', 'add', ...recreateArgs(r)] }))],
    };
  },
  // dsrctl_default_via (persist/state-script.ts): every other default route of main goes, then this one is added if missing
  boot: (spec) => [{ what: `default route via ${spec.via} (the only default route of table main)`, lines: [quote(['dsrctl_default_via', spec.via])] }],
};
