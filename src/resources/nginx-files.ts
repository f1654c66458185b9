import { z } from 'zod';
import { dirname } from 'node:path';
import { PlanError, type ResourceKind, type PlanContext } from './types.js';
import type { Change, Step } from '../plan/types.js';
import type { FileFact, HostFacts } from '../facts/types.js';
import { setMainDirective, ensureStreamContext } from './nginx/main-directive.js';
import { renderManagedConfig } from './nginx/render.js';
import { unifiedDiff } from './nginx/diff.js';

/**
 * A file as this plan has left it so far. Several resources may edit one file (nginx.conf gets
 * `user root` and a stream block): each edits the previous one's result, and each undo puts back
 * exactly the content it replaced, so undoing in reverse order ends byte for byte at the original.
 */
interface PlannedFile {
  fact: FileFact;
  content: string | null;
  touched: boolean;
}

function plannedFile(facts: HostFacts, path: string, ctx: PlanContext): PlannedFile {
  const key = `file:${path}`;
  const known = ctx.shared.get(key) as PlannedFile | undefined;
  if (known) return known;
  const fact = facts.files[path];
  if (!fact) throw new Error(`${ctx.host}: facts did not include ${path}`);
  if (fact.exists && fact.type === 'file' && fact.content === undefined)
    throw new PlanError(ctx.host, `${path} exists but its content could not be read (permissions, or no base64 on the host); dsrctl will not replace a file it has not read`);
  const pf = { fact, content: fact.exists ? (fact.content ?? '') : null, touched: false };
  ctx.shared.set(key, pf);
  return pf;
}

/** Replace a whole file: back it up (or remember it was absent) so undo restores it byte for byte. */
export function fileChange(kind: string, pf: PlannedFile, content: string, summary: string, extra: { before?: Step[]; afterUndo?: Step[] } = {}): Change {
  const { path } = pf.fact;
  const key = path.replace(/[^A-Za-z0-9]+/g, '_').replace(/^_+/, '');
  let change: Change;
  if (pf.touched) {
    // an earlier change of this plan already saved the original
    change = {
      kind,
      id: `file ${path} (${kind})`,
      action: 'update',
      summary,
      diff: unifiedDiff(path, pf.content, content),
      do: [{ write: { path, content } }],
      undo: pf.content === null ? [{ remove: { path } }] : [{ write: { path, content: pf.content } }],
      notify: ['nginx-reload'],
    };
  } else {
    const existed = pf.fact.exists;
    change = {
      kind,
      id: `file ${path}`,
      action: existed ? 'update' : 'create',
      summary,
      diff: unifiedDiff(path, existed ? pf.content : null, content),
      do: [...(extra.before ?? []), ...(existed ? [{ backup: { path, key } }] : []), { write: { path, content } }],
      undo: [existed ? { restore: { path, key } } : { remove: { path } }, ...(extra.afterUndo ?? [])],
      notify: ['nginx-reload'],
    };
  }
  pf.content = content;
  pf.touched = true;
  return change;
}

const directiveSchema = z.object({ directive: z.enum(['user']), args: z.array(z.string().regex(/^[a-z_][a-z0-9_-]*$/)).min(1) });

function mainConf(facts: HostFacts, ctx: PlanContext): PlannedFile {
  const path = ctx.inventory.proxy.nginx_conf;
  if (facts.nginx.installed && facts.nginx.confPath && facts.nginx.confPath !== path)
    throw new PlanError(ctx.host, `proxy.nginx_conf is ${path}, but this nginx reads ${facts.nginx.confPath} (nginx -V --conf-path); nginx -t and reload would not see the edit`, { usage: true });
  const pf = plannedFile(facts, path, ctx);
  if (pf.content === null) throw new PlanError(ctx.host, `${path} does not exist (is nginx installed? set proxy.nginx_conf)`);
  return pf;
}

function nginxEdit<T>(ctx: PlanContext, path: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new PlanError(ctx.host, `${path}: ${(e as Error).message}`);
  }
}

/** One directive of nginx's main context (the guide's `user root;`); the rest of nginx.conf stays byte-identical. */
export const nginxMainDirective: ResourceKind<z.infer<typeof directiveSchema>> = {
  kind: 'nginx-main-directive',
  schema: directiveSchema,
  facts: (_, ctx) => ({ files: [ctx.inventory.proxy.nginx_conf] }),
  plan(spec, facts, ctx) {
    const pf = mainConf(facts, ctx);
    const result = nginxEdit(ctx, pf.fact.path, () => setMainDirective(pf.content!, spec.directive, spec.args));
    if (!result.changed) return null;
    return fileChange('nginx-main-directive', pf, result.content, `${pf.fact.path}: ${result.before ?? `(no ${spec.directive})`} -> ${spec.directive} ${spec.args.join(' ')};`);
  },
};

/** A top-level `stream { include <managed config>; }` in nginx.conf, for tcp and udp services. */
export const nginxStreamContext: ResourceKind<Record<string, never>> = {
  kind: 'nginx-stream-context',
  schema: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
  facts: (_, ctx) => ({ files: [ctx.inventory.proxy.nginx_conf] }),
  plan(_, facts, ctx) {
    if (!facts.nginx.modules.includes('stream'))
      throw new PlanError(ctx.host, `nginx has no stream module loaded (needed for ${ctx.inventory.service.protocol}); on Debian or Ubuntu install libnginx-mod-stream, elsewhere add load_module for ngx_stream_module.so`);
    const pf = mainConf(facts, ctx);
    const include = ctx.inventory.proxy.managed_config;
    const result = nginxEdit(ctx, pf.fact.path, () => ensureStreamContext(pf.content!, include));
    if (!result.changed) return null;
    return fileChange('nginx-stream-context', pf, result.content, `${pf.fact.path}: ${result.hadStream ? 'add' : 'add a stream { } block with'} include ${include};`);
  },
};

/** The nginx config dsrctl owns: the service of the inventory with the playbook's proxy_bind. */
export const nginxManagedConfig: ResourceKind<Record<string, never>> = {
  kind: 'nginx-managed-config',
  schema: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
  facts: (_, ctx) => ({ files: [ctx.inventory.proxy.managed_config, dirname(ctx.inventory.proxy.managed_config)] }),
  plan(_, facts, ctx) {
    const { inventory: inv, playbook } = ctx;
    const path = inv.proxy.managed_config;
    if (!facts.nginx.installed) throw new PlanError(ctx.host, 'nginx is not installed');
    if (inv.service.protocol !== 'http' && !facts.nginx.modules.includes('stream'))
      throw new PlanError(ctx.host, `nginx has no stream module loaded (needed for ${inv.service.protocol}); on Debian or Ubuntu install libnginx-mod-stream`);
    const pf = plannedFile(facts, path, ctx);
    const content = renderManagedConfig({
      mode: inv.mode,
      protocol: inv.service.protocol,
      listenPort: inv.service.listen_port,
      upstreamPort: inv.service.upstream_port,
      upstreams: inv.upstreams.map((u) => ({ name: u.name, ip: u.ip })),
      proxyBind: playbook.nginx.proxy_bind,
      extra: inv.service.protocol === 'udp' ? playbook.nginx.udp_directives : [],
    });
    if (pf.content === content) return null;
    // a new directory for the stream config (e.g. /etc/nginx/dsrctl) goes again on undo
    const dir = dirname(path);
    const dirFact = facts.files[dir];
    if (dirFact?.exists && dirFact.type !== 'dir') throw new PlanError(ctx.host, `${dir} exists and is not a directory`);
    const mkdir = !pf.touched && dirFact && !dirFact.exists;
    return fileChange(
      'nginx-managed-config',
      pf,
      content,
      `${pf.fact.exists ? 'rewrite' : 'create'} ${path} (${inv.service.protocol} service on :${inv.service.listen_port}, proxy_bind ${playbook.nginx.proxy_bind}${playbook.nginx.udp_directives.length && inv.service.protocol === 'udp' ? `, ${playbook.nginx.udp_directives.join(' ')}` : ''})`,
      mkdir ? { before: [{ run: ['mkdir', '-p', '-m', '755', dir] }], afterUndo: [{ run: ['rmdir', dir] }] } : {},
    );
  },
};
