/**
 * Which other nginx servers would answer the service's clients: dsrctl's server has no
 * server_name, so on a port it shares it gets a request only when it is the default server, and
 * every other server on that address:port answers at least its own names (the default one: every
 * unknown Host). Pure: parsed listens in, conflicts and what can be done about them out.
 */
import type { NginxListen } from '../facts/parsers/nginx-config.js';
import type { NginxLink } from '../facts/types.js';

export interface PortService {
  protocol: 'http' | 'tcp' | 'udp';
  port: number;
  /** where clients reach the proxy */
  publicIp: string;
  /** dsrctl's own file: its servers are the ones being planned */
  managedPath: string;
}

export interface PortConflict {
  listen: NginxListen;
  /** why this server gets the service's clients, in words */
  why: string;
}

const l4 = (l: NginxListen): 'tcp' | 'udp' => (l.udp ? 'udp' : 'tcp');
const where = (l: NginxListen) => `${l.address}:${l.port}`;
export const at = (l: NginxListen) => `${l.file}:${l.line}`;

/** Does a connection to publicIp:port reach this listen? (IPv6 sockets only with ipv6only=off) */
function reaches(l: NginxListen, svc: PortService): boolean {
  if (l.port !== svc.port) return false;
  if (l.ipv6) return l.address === '[::]' && l.params.includes('ipv6only=off');
  return l.address === '*' || l.address === svc.publicIp;
}

export function findPortConflicts(listens: NginxListen[], svc: PortService): PortConflict[] {
  const want = svc.protocol === 'udp' ? 'udp' : 'tcp';
  const out: PortConflict[] = [];
  for (const l of listens) {
    if (l.serverFile === svc.managedPath || l.file === svc.managedPath) continue;
    if (!reaches(l, svc) || l4(l) !== want) continue;
    out.push({ listen: l, why: whyConflict(l, listens, svc) });
  }
  return out;
}

function whyConflict(l: NginxListen, all: NginxListen[], svc: PortService): string {
  const port = `${svc.port}/${l4(l)}`;
  if (svc.protocol === 'http' && l.context === 'stream')
    return `a stream server on ${where(l)}: http and stream cannot share port ${port} (nginx fails to bind on reload)`;
  if (svc.protocol !== 'http' && l.context === 'http')
    return `an http server on ${where(l)}: it holds port ${port}, which the stream server needs (nginx fails to bind on reload)`;
  if (l.context === 'stream') return `another stream server on ${where(l)}: nginx rejects a second one on the same port ("duplicate listen"), or it takes the connections`;
  if (l.address === svc.publicIp) return `listens on ${svc.publicIp}:${svc.port} itself: nginx hands every connection to that address to its servers, never to a *:${svc.port} server`;
  const names = l.serverNames.filter((n) => n !== '' && n !== '_');
  const sameSocket = all.filter((o) => o.context === 'http' && !o.ipv6 && o.address === l.address && o.port === l.port);
  const isDefault = l.defaultServer || (!sameSocket.some((o) => o.defaultServer) && sameSocket[0] === l);
  if (isDefault)
    return `${l.defaultServer ? 'default_server' : `the first server for ${where(l)} (nginx's default when none says default_server)`}: it gets every request whose Host no other server names, which is every request of your clients`;
  return `answers requests for ${names.length ? `Host ${names.join(', ')}` : 'its server_name'} on ${where(l)}`;
}

/** One file to disable so that its servers stop (Debian's sites-enabled symlinks). */
export interface SiteTakeOver extends NginxLink {
  link: string;
  conflicts: PortConflict[];
  /** every listen of the file's servers: all of them stop with it */
  alsoStops: NginxListen[];
}

export interface TakeOverPlan {
  sites: SiteTakeOver[];
  /** conflicts dsrctl will not resolve itself, each with the reason */
  refused: { conflict: PortConflict; reason: string }[];
}

/**
 * With `proxy.take_over_port`: a conflicting server in a symlinked file that a wildcard include
 * reads (sites-enabled/*) is disabled by removing the link, which rollback puts back exactly.
 * A server in a regular file, or in a file included by name, is the user's to change: refused.
 */
export function planTakeOver(conflicts: PortConflict[], listens: NginxListen[], links: Record<string, NginxLink>): TakeOverPlan {
  const sites = new Map<string, SiteTakeOver>();
  const refused: TakeOverPlan['refused'] = [];
  for (const c of conflicts) {
    const file = c.listen.serverFile;
    const link = links[file];
    const inc = c.listen.serverInclude;
    if (!inc) refused.push({ conflict: c, reason: `it is in nginx's main file ${file}, which dsrctl does not edit: change or remove that server yourself` });
    else if (!link) refused.push({ conflict: c, reason: `${file} is a regular file, not a symlink dsrctl can remove and put back: dsrctl does not edit your files; change that listen or move the file out of ${file.slice(0, file.lastIndexOf('/') + 1)} yourself` });
    else if (!inc.glob) refused.push({ conflict: c, reason: `${file} is included by name (${inc.file}:${inc.line}), so removing it would break nginx -t: remove that server or the include yourself` });
    else {
      const site = sites.get(file) ?? { link: file, ...link, conflicts: [], alsoStops: listens.filter((l) => l.serverFile === file) };
      site.conflicts.push(c);
      sites.set(file, site);
    }
  }
  return { sites: [...sites.values()], refused };
}
