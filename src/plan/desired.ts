import type { Inventory, Upstream } from '../inventory/schema.js';
import type { Playbook, PlaybookEntry } from '../playbook/load.js';
import { interpolate, lookup } from '../playbook/interpolate.js';
import { RESOURCE_KINDS } from '../resources/index.js';
import type { FactsRequest } from '../facts/types.js';
import type { PlanContext } from '../resources/types.js';
import { persistFactsFiles } from '../persist/plan.js';

/** A resource instance: its kind and its spec with every `{{ }}` resolved. */
export interface Desired {
  kind: string;
  spec: unknown;
}

export interface HostTarget {
  /** "proxy" or the upstream's name */
  name: string;
  role: 'proxy' | 'upstream';
  upstream?: Upstream;
  desired: Desired[];
}

/** The template context: the inventory plus derived values. */
function templateContext(inv: Inventory, upstream?: Upstream) {
  return {
    ...inv,
    service: { ...inv.service, l4: inv.service.protocol === 'udp' ? 'udp' : 'tcp', stream: inv.service.protocol !== 'http' },
    upstream,
  };
}

function expand(entries: PlaybookEntry[], inv: Inventory, hostUpstream: Upstream | undefined): Desired[] {
  const out: Desired[] = [];
  for (const [i, entry] of entries.entries()) {
    const { kind, foreach, when, ...rest } = entry;
    const resource = RESOURCE_KINDS[kind];
    if (!resource) throw new Error(`playbook entry ${i}: unknown resource kind "${kind}"`);
    const items: (Upstream | undefined)[] = foreach === 'upstreams' ? inv.upstreams : [hostUpstream];
    for (const u of items) {
      if (when !== undefined && lookup(templateContext(inv, u), when) !== true) continue;
      const spec = interpolate(rest, templateContext(inv, u), `playbook entry ${i} (${kind})`);
      out.push({ kind, spec: resource.schema.parse(spec) });
    }
  }
  return out;
}

/** Inventory × Playbook -> the resources each host must have. Pure. */
export function desiredHosts(inv: Inventory, pb: Playbook): HostTarget[] {
  return [
    { name: 'proxy', role: 'proxy', desired: expand(pb.proxy, inv, undefined) },
    ...inv.upstreams.map((u) => ({ name: u.name, role: 'upstream' as const, upstream: u, desired: expand(pb.upstream, inv, u) })),
  ];
}

export function planContext(inv: Inventory, pb: Playbook, target: HostTarget): PlanContext {
  return { inventory: inv, playbook: pb, role: target.role, host: target.name, upstream: target.upstream, shared: new Map(), notes: [] };
}

/** What the facts exec must read for this host's resources. */
export function factsRequest(inv: Inventory, pb: Playbook, target: HostTarget): FactsRequest {
  // the proxy's plan checks that its private interface reaches every upstream (upstream-reach.ts): ip, always read
  const req: FactsRequest = { sysctls: [], files: [], interfaces: [], journalFiles: [], journalChanges: [], reads: [], sections: [] };
  const ctx = planContext(inv, pb, target);
  for (const d of target.desired) {
    const more = RESOURCE_KINDS[d.kind]!.facts?.(d.spec, ctx);
    req.sysctls.push(...(more?.sysctls ?? []));
    req.files.push(...(more?.files ?? []));
    req.interfaces!.push(...(more?.interfaces ?? []));
    req.journalFiles!.push(...(more?.journalFiles ?? []));
    req.journalChanges!.push(...(more?.journalChanges ?? []));
    req.reads!.push(...(more?.reads ?? []));
    req.sections!.push(...(more?.sections ?? []));
  }
  // persistence files, on every host (persist.ts decides from the facts what to do with them)
  req.files.push(...persistFactsFiles());
  if (inv.persist) req.sections!.push('netmgr');
  return {
    sysctls: [...new Set(req.sysctls)],
    files: [...new Set(req.files)],
    interfaces: [...new Set(req.interfaces)],
    ...(req.journalFiles!.length ? { journalFiles: [...new Set(req.journalFiles)] } : {}),
    ...(req.journalChanges!.length ? { journalChanges: [...new Set(req.journalChanges)] } : {}),
    ...(req.reads!.length ? { reads: [...new Set(req.reads)] } : {}),
    sections: [...new Set(req.sections)],
  };
}
