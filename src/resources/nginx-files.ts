import { z } from 'zod';
import { PlanError, type ResourceKind, type PlanContext } from './types.js';
import type { Change } from '../plan/types.js';
import type { FileFact, HostFacts } from '../facts/types.js';
import { setMainDirective } from './nginx/main-directive.js';
import { renderManagedConfig } from './nginx/render.js';
import { unifiedDiff } from './nginx/diff.js';

/** Replace a whole file: back it up (or remember it was absent) so undo restores it byte for byte. */
export function fileChange(kind: string, fact: FileFact, content: string, summary: string): Change {
  const key = fact.path.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_+/, '');
  return {
    kind,
    id: `file ${fact.path}`,
    action: fact.exists ? 'update' : 'create',
    summary,
    diff: unifiedDiff(fact.path, fact.exists ? (fact.content ?? '') : null, content),
    do: [...(fact.exists ? [{ backup: { path: fact.path, key } }] : []), { write: { path: fact.path, content } }],
    undo: [fact.exists ? { restore: { path: fact.path, key } } : { remove: { path: fact.path } }],
    notify: ['nginx-reload'],
  };
}

function fileFact(facts: HostFacts, path: string, ctx: PlanContext): FileFact {
  const f = facts.files[path];
  if (!f) throw new Error(`${ctx.host}: facts did not include ${path}`);
  return f;
}

const directiveSchema = z.object({ directive: z.enum(['user']), args: z.array(z.string().regex(/^[a-z_][a-z0-9_-]*$/)).min(1) });

/** One directive of nginx's main context (the guide's `user root;`); the rest of nginx.conf stays byte-identical. */
export const nginxMainDirective: ResourceKind<z.infer<typeof directiveSchema>> = {
  kind: 'nginx-main-directive',
  schema: directiveSchema,
  facts: (_, ctx) => ({ files: [ctx.inventory.proxy.nginx_conf] }),
  plan(spec, facts, ctx) {
    const path = ctx.inventory.proxy.nginx_conf;
    const fact = fileFact(facts, path, ctx);
    if (!fact.exists) throw new PlanError(ctx.host, `${path} does not exist (is nginx installed? set proxy.nginx_conf)`);
    let result;
    try {
      result = setMainDirective(fact.content ?? '', spec.directive, spec.args);
    } catch (e) {
      throw new PlanError(ctx.host, `${path}: ${(e as Error).message}`);
    }
    if (!result.changed) return null;
    return fileChange('nginx-main-directive', fact, result.content, `${path}: ${result.before ?? `(no ${spec.directive})`} -> ${spec.directive} ${spec.args.join(' ')};`);
  },
};

/** The nginx config dsrctl owns: the service of the inventory with the playbook's proxy_bind. */
export const nginxManagedConfig: ResourceKind<Record<string, never>> = {
  kind: 'nginx-managed-config',
  schema: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
  facts: (_, ctx) => ({ files: [ctx.inventory.proxy.managed_config] }),
  plan(_, facts, ctx) {
    const { inventory: inv, playbook } = ctx;
    const path = inv.proxy.managed_config;
    const fact = fileFact(facts, path, ctx);
    if (!facts.nginx.installed) throw new PlanError(ctx.host, 'nginx is not installed');
    if (inv.service.protocol !== 'http' && !facts.nginx.modules.includes('stream'))
      throw new PlanError(ctx.host, `nginx has no stream module (needed for ${inv.service.protocol}); install libnginx-mod-stream`);
    const content = renderManagedConfig({
      mode: inv.mode,
      protocol: inv.service.protocol,
      listenPort: inv.service.listen_port,
      upstreamPort: inv.service.upstream_port,
      upstreams: inv.upstreams.map((u) => ({ name: u.name, ip: u.ip })),
      proxyBind: playbook.nginx.proxy_bind,
      extra: inv.service.protocol === 'udp' ? playbook.nginx.udp_directives : [],
    });
    if (fact.exists && fact.content === content) return null;
    return fileChange('nginx-managed-config', fact, content, `${fact.exists ? 'rewrite' : 'create'} ${path} (${inv.service.protocol} service on :${inv.service.listen_port}, proxy_bind ${playbook.nginx.proxy_bind})`);
  },
};
