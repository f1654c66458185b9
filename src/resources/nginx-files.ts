import { z } from 'zod';
import { dirname } from 'node:path';
import { PlanError, type ResourceKind, type PlanContext } from './types.js';
import type { Change, Step } from '../plan/types.js';
import type { DirStat, FileFact, HostFacts } from '../facts/types.js';
import { setMainDirective, ensureStreamContext, getMainDirective, mainDirectiveText, restoreMainDirective } from './nginx/main-directive.js';
import { decideNginxUser } from './nginx/user-decision.js';
import { renderManagedConfig } from './nginx/render.js';
import { unifiedDiff } from './nginx/diff.js';
import { healthSettings, serversFile } from '../health/settings.js';

/**
 * A file as this plan has left it so far. Several resources may edit one file (nginx.conf gets
 * `user root` and a stream block): each edits the previous one's result and backs that up first,
 * so undoing in reverse order ends byte for byte at the original. Content is a latin1 string: one
 * char per byte, so bytes that are not UTF-8 pass through an edit unchanged.
 */
interface PlannedFile {
  fact: FileFact;
  /** the inventory field that names it, for messages */
  field: string;
  content: string | null;
  touched: boolean;
}

/** What the apply script checks before it changes anything: the file is still what the plan read. */
export interface FilePrecondition {
  path: string;
  /** sha256 of the bytes the plan read; absent: the file must still not exist */
  sha256?: string;
  /** the resolved path the plan saw (a symlink must still point there) */
  realpath?: string;
}

const octal = (m: string) => parseInt(m, 8);

/** A directory a non-root user can write lets them swap the file (or a symlink) under dsrctl's backup and restore. */
export function unsafeDir(d: DirStat): string | undefined {
  const mode = octal(d.mode);
  if (d.uid !== 0) return `${d.path} is owned by uid ${d.uid}, not root`;
  if (mode & 0o002) return `${d.path} is writable by every user (mode ${d.mode})`;
  if (mode & 0o020 && d.gid !== 0) return `${d.path} is writable by group ${d.gid} (mode ${d.mode})`;
  return undefined;
}

/** Injective: distinct paths never share a backup name ("/" and every byte outside [A-Za-z0-9._-] as %XX). */
export function encodePath(path: string): string {
  return [...Buffer.from(path, 'utf8')].map((b) => (/[A-Za-z0-9._-]/.test(String.fromCharCode(b)) && b < 0x80 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

/** Text dsrctl renders (UTF-8) as the latin1 byte string file contents are kept in. */
export const asBytes = (text: string) => Buffer.from(text, 'utf8').toString('latin1');
/** A byte string for a person to read (diffs, summaries): UTF-8 where it is, U+FFFD where not. */
export const forDisplay = (bytes: string) => Buffer.from(bytes, 'latin1').toString('utf8');

function plannedFile(facts: HostFacts, path: string, ctx: PlanContext, field: string): PlannedFile {
  const fact = facts.files[path];
  if (!fact) throw new Error(`${ctx.host}: facts did not include ${path}`);
  // one file, one key, whatever its spelling: "/etc/nginx/./nginx.conf", "//", a symlink
  const real = fact.realpath ?? path;
  const key = `file:${real}`;
  const known = ctx.shared.get(key) as PlannedFile | undefined;
  if (known) {
    if (known.field === field) return known;
    const same = real === path && real === known.fact.path ? '' : ` (both are ${real} on this host)`;
    throw new PlanError(ctx.host, `${field} (${path}) and ${known.field} (${known.fact.path}) are the same file${same}: dsrctl replaces ${field === 'proxy.managed_config' || known.field === 'proxy.managed_config' ? 'proxy.managed_config' : field} whole; give it a file of its own`, { usage: true });
  }
  if (fact.type === 'dangling') throw new PlanError(ctx.host, `${field}: ${path} is a symlink to nothing (${real}); point it at a file, or remove it`, { usage: true });
  if (fact.exists && fact.type !== 'file')
    throw new PlanError(ctx.host, `${field}: ${path} is ${fact.type === 'dir' ? 'a directory' : 'not a regular file (a FIFO, socket or device)'}; dsrctl writes regular files only`, { usage: true });
  for (const d of [fact.dir, fact.linkDir]) {
    const bad = d && unsafeDir(d);
    if (bad) throw new PlanError(ctx.host, `${field}: ${bad}; a non-root user could redirect dsrctl's backup, write and restore of ${path}. Fix the directory's owner or mode first`);
  }
  if (fact.exists && fact.type === 'file' && fact.content === undefined)
    throw new PlanError(ctx.host, `${path} exists but its content could not be read (permissions, or no base64 on the host); dsrctl will not replace a file it has not read`);
  const pf = { fact, field, content: fact.exists ? (fact.content ?? '') : null, touched: false };
  ctx.shared.set(key, pf);
  return pf;
}

function preconditions(ctx: PlanContext): FilePrecondition[] {
  let list = ctx.shared.get('preconditions') as FilePrecondition[] | undefined;
  if (!list) ctx.shared.set('preconditions', (list = []));
  return list;
}

/** The apply script checks, before any change, that this file is still what the plan read. */
export function addPrecondition(ctx: PlanContext, f: FileFact): void {
  preconditions(ctx).push({ path: f.path, ...(f.sha256 ? { sha256: f.sha256 } : {}), ...(f.realpath ? { realpath: f.realpath } : {}) });
}

/** A backup key of its own in this plan: its place in the plan and the encoded path (no two changes share one). */
export function backupKey(ctx: PlanContext, path: string): string {
  const seq = ((ctx.shared.get('backups') as number | undefined) ?? 0) + 1;
  ctx.shared.set('backups', seq);
  return `${String(seq).padStart(3, '0')}-${encodePath(path)}`;
}

/**
 * Replace a whole file: back it up first (or remember it was absent), so undo restores it byte for
 * byte. Every change of a file has its own backup, named by its place in the plan and the encoded
 * path: two changes never share one, and no undo carries file contents.
 */
export function fileChange(kind: string, pf: PlannedFile, content: string, summary: string, ctx: PlanContext, extra: { before?: Step[]; afterUndo?: Step[] } = {}): Change {
  const { path } = pf.fact;
  const key = backupKey(ctx, path);
  const existed = pf.content !== null;
  if (!pf.touched) addPrecondition(ctx, pf.fact);
  const change: Change = {
    kind,
    id: pf.touched ? `file ${path} (${kind})` : `file ${path}`,
    action: existed ? 'update' : 'create',
    summary,
    diff: unifiedDiff(path, pf.content === null ? null : forDisplay(pf.content), forDisplay(content)),
    do: [...(pf.touched ? [] : (extra.before ?? [])), ...(existed ? [{ backup: { path, key } }] : []), { write: { path, content } }],
    undo: [existed ? { restore: { path, key } } : { remove: { path } }, ...(pf.touched ? [] : (extra.afterUndo ?? []))],
    notify: ['nginx-reload'],
  };
  pf.content = content;
  pf.touched = true;
  return change;
}

const directiveSchema = z.object({ directive: z.enum(['user']), args: z.array(z.string().regex(/^[a-z_][a-z0-9_-]*$/)).min(1) });

function mainConf(facts: HostFacts, ctx: PlanContext): PlannedFile {
  const path = ctx.inventory.proxy.nginx_conf;
  // "/etc/nginx//nginx.conf" is the file nginx reads: compare where the path leads on the host
  const real = facts.files[path]?.realpath;
  if (facts.nginx.installed && facts.nginx.confPath && facts.nginx.confPath !== path && facts.nginx.confPath !== real)
    throw new PlanError(ctx.host, `proxy.nginx_conf is ${path}, but this nginx reads ${facts.nginx.confPath} (nginx -V --conf-path); nginx -t and reload would not see the edit`, { usage: true });
  const pf = plannedFile(facts, path, ctx, 'proxy.nginx_conf');
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
  facts: (_, ctx) => ({ sections: ['nginx'], files: [ctx.inventory.proxy.nginx_conf] }),
  plan(spec, facts, ctx) {
    const pf = mainConf(facts, ctx);
    const result = nginxEdit(ctx, pf.fact.path, () => setMainDirective(pf.content!, spec.directive, spec.args));
    if (!result.changed) return null;
    return fileChange('nginx-main-directive', pf, result.content, `${pf.fact.path}: ${result.before === undefined || result.before === null ? `(no ${spec.directive})` : forDisplay(result.before)} -> ${spec.directive} ${spec.args.join(' ')};`, ctx);
  },
};

/**
 * The `user` of nginx's workers (proxy.nginx_user). `root`: the guide's `user root;`. `keep` (the
 * default where nginx keeps CAP_NET_RAW for unprivileged workers): `user` is left alone, except
 * that a `user root;` an earlier dsrctl run put there goes back to what that run recorded (the copy
 * of nginx.conf in the oldest run still in place). The plan says which and why.
 */
export const nginxUser: ResourceKind<Record<string, never>> = {
  kind: 'nginx-user',
  schema: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
  facts: (_, ctx) => ({ sections: ['nginx'], files: [ctx.inventory.proxy.nginx_conf], journalFiles: [ctx.inventory.proxy.nginx_conf] }),
  plan(_, facts, ctx) {
    const pf = mainConf(facts, ctx);
    const path = pf.fact.path;
    const decision = decideNginxUser(ctx.inventory.proxy.nginx_user, facts.nginx);
    ctx.notes.push(`nginx user: ${decision.user} (${decision.reason})`);
    if (decision.warning) ctx.notes.push(`WARNING: ${decision.warning}`);
    if (decision.user === 'root') {
      const result = nginxEdit(ctx, path, () => setMainDirective(pf.content!, 'user', ['root']));
      if (!result.changed) return null;
      return fileChange('nginx-user', pf, result.content, `${path}: ${result.before === undefined || result.before === null ? '(no user)' : forDisplay(result.before)} -> user root;`, ctx);
    }
    const current = nginxEdit(ctx, path, () => getMainDirective(pf.content!, 'user'));
    if (current?.[0] !== 'root') return null;
    const backup = facts.journalBackups?.[path];
    const before = backup ? nginxEdit(ctx, `${path} (copy in run ${backup.run})`, () => mainDirectiveText(backup.content, 'user')) : undefined;
    if (backup === undefined || before === undefined || /^user\s+root\s*;$/.test(before ?? '')) {
      ctx.notes.push(`${path} says \`user root;\` and no dsrctl run still in place put it there: left as it is (not needed here)`);
      return null;
    }
    const result = nginxEdit(ctx, path, () => restoreMainDirective(pf.content!, 'user', before));
    if (!result.changed) return null;
    const was = mainDirectiveText(pf.content!, 'user');
    return fileChange(
      'nginx-user',
      pf,
      result.content,
      `${path}: ${forDisplay(was ?? '')} -> ${before === null ? '(no user)' : forDisplay(before)} (put back: run ${backup.run} set \`user root;\`, which nginx ${facts.nginx.version} does not need)`,
      ctx,
    );
  },
};

/** A top-level `stream { include <managed config>; }` in nginx.conf, for tcp and udp services. */
export const nginxStreamContext: ResourceKind<Record<string, never>> = {
  kind: 'nginx-stream-context',
  schema: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
  facts: (_, ctx) => ({ sections: ['nginx'], files: [ctx.inventory.proxy.nginx_conf] }),
  plan(_, facts, ctx) {
    if (!facts.nginx.modules.includes('stream'))
      throw new PlanError(ctx.host, `nginx has no stream module loaded (needed for ${ctx.inventory.service.protocol}); on Debian or Ubuntu install libnginx-mod-stream, elsewhere add load_module for ngx_stream_module.so`);
    const pf = mainConf(facts, ctx);
    const include = ctx.inventory.proxy.managed_config;
    const result = nginxEdit(ctx, pf.fact.path, () => ensureStreamContext(pf.content!, asBytes(include)));
    if (!result.changed) return null;
    return fileChange('nginx-stream-context', pf, result.content, `${pf.fact.path}: ${result.hadStream ? 'add' : 'add a stream { } block with'} include ${include};`, ctx);
  },
};

/** The nginx config dsrctl owns: the service of the inventory with the playbook's proxy_bind. */
export const nginxManagedConfig: ResourceKind<Record<string, never>> = {
  kind: 'nginx-managed-config',
  schema: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
  facts: (_, ctx) => ({ sections: ['nginx'], files: [ctx.inventory.proxy.managed_config, dirname(ctx.inventory.proxy.managed_config)] }),
  plan(_, facts, ctx) {
    const { inventory: inv, playbook } = ctx;
    const path = inv.proxy.managed_config;
    if (!facts.nginx.installed) throw new PlanError(ctx.host, 'nginx is not installed');
    if (inv.service.protocol !== 'http' && !facts.nginx.modules.includes('stream'))
      throw new PlanError(ctx.host, `nginx has no stream module loaded (needed for ${inv.service.protocol}); on Debian or Ubuntu install libnginx-mod-stream`);
    const pf = plannedFile(facts, path, ctx, 'proxy.managed_config');
    const content = asBytes(renderManagedConfig({
      mode: inv.mode,
      protocol: inv.service.protocol,
      listenPort: inv.service.listen_port,
      upstreamPort: inv.service.upstream_port,
      upstreams: inv.upstreams.map((u) => ({ name: u.name, ip: u.ip })),
      proxyBind: playbook.nginx.proxy_bind,
      extra: inv.service.protocol === 'udp' ? playbook.nginx.udp_directives : [],
      ...(healthSettings(inv).enabled ? { serversInclude: serversFile(inv) } : {}),
    }));
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
      ctx,
      mkdir ? { before: [{ run: ['mkdir', '-p', '-m', '755', dir] }], afterUndo: [{ run: ['rmdir', dir] }] } : {},
    );
  },
};
