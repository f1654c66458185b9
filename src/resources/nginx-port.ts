import { z } from 'zod';
import { quote } from 'shell-quote';
import { PlanError, type ResourceKind } from './types.js';
import type { Change } from '../plan/types.js';
import type { Inventory } from '../inventory/schema.js';
import type { NginxLink } from '../facts/types.js';
import { nginxListens, splitNginxDump, type NginxListen } from '../facts/parsers/nginx-config.js';
import { at, findPortConflicts, planTakeOver, type PortConflict, type SiteTakeOver } from '../plan/port-conflicts.js';

const q = (s: string) => quote([s]);

export const describeConflict = (c: PortConflict) => {
  const names = c.listen.serverNames.length ? `, server_name ${c.listen.serverNames.join(' ')}` : '';
  return `${at(c.listen)}  ${c.listen.text};  (${c.listen.context}${names}): ${c.why}`;
};

export function disableSite(site: SiteTakeOver, port: number): Change {
  const { link, target, owner, mtime } = site;
  const others = site.alsoStops.filter((l) => !site.conflicts.some((c) => c.listen === l));
  const stops = others.length ? `; its other ${others.length === 1 ? 'listen stops' : 'listens stop'} too: ${others.map((l) => `${l.text} (${at(l)})`).join(', ')}` : '';
  // the link comes back as it was: target, owner and its own mtime
  const chown = /^\d+:\d+$/.test(owner) ? ` && chown -h ${q(owner)} -- ${q(link)}` : '';
  const touch = /^\d+(\.\d+)?$/.test(mtime) ? ` && touch -h -d ${q(`@${mtime}`)} -- ${q(link)}` : '';
  return {
    kind: 'nginx-exclusive-port',
    id: `nginx site ${link}`,
    action: 'delete',
    summary: `take over port ${port}: disable ${link} (symlink to ${target}), whose server answers on it${stops}; rollback puts the link back`,
    diff: [`--- ${link} (symlink)`, '+++ /dev/null', '@@ -1 +0,0 @@', `-${link} -> ${target}`].join('\n') + '\n',
    // the link must still be the one the plan saw; undo recreates it only where nothing else stands
    do: [
      {
        sh: `{ [ "$(readlink -- ${q(link)})" = ${q(target)} ] || { echo ${q(`${link} no longer points to ${target}`)} >&2; false; }; } && rm -f -- ${q(link)}`,
        display: `rm ${link}`,
        files: true,
      },
    ],
    undo: [
      {
        sh: `{ [ -L ${q(link)} ] && [ "$(readlink -- ${q(link)})" = ${q(target)} ]; } || { ln -s -- ${q(target)} ${q(link)}${chown}${touch}; }`,
        display: `ln -s ${target} ${link}`,
        files: true,
      },
    ],
    notify: ['nginx-reload'],
  };
}

export interface ServiceConflicts {
  listens: NginxListen[];
  conflicts: PortConflict[];
  takeOver: ReturnType<typeof planTakeOver>;
  /** one line: which port, how many servers */
  head: string;
}

/** The other nginx servers on the service's port, from `nginx -T` (shared by plan and doctor). */
export function serviceConflicts(inv: Inventory, nginxDump: string, links: Record<string, NginxLink>): ServiceConflicts {
  const { protocol, listen_port: port } = inv.service;
  const dump = splitNginxDump(nginxDump);
  // judge defaults as they will be: dsrctl's server in its file, where nginx's includes read it
  if (protocol === 'http') dump.files.set(inv.proxy.managed_config, `server {\n    listen ${port};\n}\n`);
  const listens = nginxListens(dump);
  const conflicts = findPortConflicts(listens, { protocol, port, publicIp: inv.proxy.public_ip, managedPath: inv.proxy.managed_config });
  const l4 = protocol === 'udp' ? 'udp' : 'tcp';
  const head = `port ${port}/${l4} on ${inv.proxy.public_ip} is already served by ${conflicts.length === 1 ? 'another nginx server' : `${conflicts.length} other nginx servers`}, which would answer clients instead of the upstreams:`;
  return { listens, conflicts, takeOver: planTakeOver(conflicts, listens, links), head };
}

/** What the user can do about the conflicts, one "  - ..." line each. */
export function conflictFixes({ conflicts, takeOver }: ServiceConflicts): string[] {
  return [
    ...conflicts
      .map((c) => {
        const site = takeOver.sites.find((s) => s.conflicts.includes(c));
        return site
          ? `  - disable ${site.link} (rm ${site.link}; it links to ${site.target}) or move its server to another port`
          : `  - change or remove the server at ${at(c.listen)} (${c.listen.serverFile})`;
      })
      .filter((l, i, all) => all.indexOf(l) === i),
    takeOver.refused.length === 0
      ? '  - set proxy.take_over_port: true: dsrctl disables those sites itself and rollback puts them back'
      : `  - (proxy.take_over_port: true cannot help with ${takeOver.refused.map((r) => at(r.conflict.listen)).join(', ')}: dsrctl only removes symlinks like sites-enabled/*, never edits your files)`,
    `  - pick another service.listen_port`,
  ];
}

/**
 * No other nginx server may answer on the service's address and port (Debian's default site, the
 * user's own sites, another stream server): refused with every file:line and what to do, or with
 * `proxy.take_over_port` the sites that hold it are disabled, with an exact undo.
 */
export const nginxExclusivePort: ResourceKind<Record<string, never>> = {
  kind: 'nginx-exclusive-port',
  schema: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
  facts: () => ({ sections: ['nginx'] }),
  plan(_, facts, ctx) {
    const cfg = facts.nginxConfig;
    // facts of an older script, or no nginx (nginx-managed-config says so): nothing to compare
    if (!cfg || cfg.status === 'absent') return null;
    const inv = ctx.inventory;
    const port = inv.service.listen_port;
    if (cfg.status === 'failed') {
      const fix = facts.uid !== 0 ? `as uid ${facts.uid}; nginx -T needs root (set ssh.sudo: true, or log in as root)` : "fix nginx's configuration first";
      throw new PlanError(ctx.host, `nginx -T failed, so dsrctl cannot tell which servers hold port ${port}: ${cfg.error.split('\n').join(' ')}; ${fix}`, { usage: true });
    }
    let found: ServiceConflicts;
    try {
      found = serviceConflicts(inv, cfg.dump, cfg.links);
    } catch (e) {
      throw new PlanError(ctx.host, `cannot read nginx -T's output: ${(e as Error).message}`);
    }
    const { conflicts, takeOver, head } = found;
    if (conflicts.length === 0) return null;
    if (!inv.proxy.take_over_port) throw new PlanError(ctx.host, [head, ...conflicts.map((c) => `  ${describeConflict(c)}`), 'Nothing was changed. Do one of:', ...conflictFixes(found)].join('\n'), { usage: true });
    if (takeOver.refused.length)
      throw new PlanError(
        ctx.host,
        [
          head,
          ...conflicts.map((c) => `  ${describeConflict(c)}`),
          'proxy.take_over_port is set, but dsrctl will not take over these (nothing was changed):',
          ...takeOver.refused.map((r) => `  ${at(r.conflict.listen)}: ${r.reason}`),
        ].join('\n'),
        { usage: true },
      );
    ctx.notes.push(`proxy.take_over_port: ${takeOver.sites.map((s) => s.link).join(', ')} disabled so that only dsrctl's server answers on port ${port}`);
    return takeOver.sites.map((s) => disableSite(s, port));
  },
};
