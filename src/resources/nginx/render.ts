/**
 * The config file dsrctl owns on the proxy: the guide's load-balancing config with
 * `proxy_bind ... transparent`. For http it belongs in the http context (e.g. conf.d/), for tcp
 * and udp in the stream context (a file included from `stream { }`, never from conf.d/, which
 * Debian includes inside http). Pure: inputs in, text out; every value is validated, because the
 * text ends up in a file that a root-run nginx reads.
 */
import ipaddr from 'ipaddr.js';
import { UserError } from '../../util/errors.js';

export type NginxProtocol = 'http' | 'tcp' | 'udp';

export interface RenderOptions {
  /** label for the header comment, e.g. "ip-transparency" */
  mode: string;
  protocol: NginxProtocol;
  listenPort: number;
  upstreamPort: number;
  upstreams: { name: string; ip: string }[];
  /** e.g. `$remote_addr transparent` or `$remote_addr:$remote_port transparent` */
  proxyBind: string;
  /**
   * extra directives, one per entry, e.g. `proxy_responses 1;`, `proxy_timeout 1s;`
   * (stream: in the server block; http: in `location /` beside proxy_bind)
   */
  extra?: string[];
  /** the health checker's file of `server` lines: the upstream block includes it instead of listing them */
  serversInclude?: string;
}

export const UPSTREAM_GROUP = 'dsrctl_upstreams';

const MODE = /^[a-z0-9][a-z0-9_-]{0,39}$/;
const UPSTREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const PROXY_BIND = /^\$remote_addr(?::\$remote_port)?(?: transparent)?$/;
/** one simple directive: a name and plain arguments (no quotes, braces, comments, variables) */
const EXTRA = /^([a-z][a-z0-9_]*)((?: [A-Za-z0-9_.:\/-]+)*) ?;?$/;
/** directives the rendered file sets itself, or that could pull in other files */
const EXTRA_FORBIDDEN = new Set(['include', 'listen', 'proxy_bind', 'proxy_pass', 'server', 'upstream', 'location', 'load_module']);

function bad(what: string, value: unknown, expected: string): never {
  throw new UserError(`nginx config: ${what} ${JSON.stringify(value)} is not valid: ${expected}`);
}

function checkPort(what: string, p: unknown): number {
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) bad(what, p, 'must be a port 1-65535');
  return p;
}

function normalizeExtra(line: string): string {
  const m = typeof line === 'string' ? EXTRA.exec(line.trim().replace(/[ \t]+/g, ' ')) : null;
  if (!m) bad('extra directive', line, 'must be one simple directive like "proxy_timeout 1s;"');
  const name = m[1]!;
  if (EXTRA_FORBIDDEN.has(name)) bad('extra directive', line, `"${name}" is set by dsrctl itself or not allowed here`);
  return `${name}${m[2] ?? ''};`;
}

export function renderManagedConfig(opts: RenderOptions): string {
  const { mode, protocol, proxyBind } = opts;
  if (typeof mode !== 'string' || !MODE.test(mode)) bad('mode', mode, 'must be a short lower-case label');
  if (protocol !== 'http' && protocol !== 'tcp' && protocol !== 'udp') bad('protocol', protocol, 'must be http, tcp or udp');
  const listenPort = checkPort('listen port', opts.listenPort);
  const upstreamPort = checkPort('upstream port', opts.upstreamPort);
  if (typeof proxyBind !== 'string' || !PROXY_BIND.test(proxyBind))
    bad('proxy_bind', proxyBind, 'must be "$remote_addr[:$remote_port][ transparent]"');
  if (!Array.isArray(opts.upstreams) || opts.upstreams.length === 0) bad('upstreams', opts.upstreams, 'must list at least one upstream');
  const servers = opts.upstreams.map((u) => {
    if (typeof u.name !== 'string' || !UPSTREAM_NAME.test(u.name)) bad('upstream name', u.name, 'must be letters, digits, "_", ".", "-"');
    if (typeof u.ip !== 'string' || !ipaddr.IPv4.isValidFourPartDecimal(u.ip)) bad('upstream address', u.ip, 'must be an IPv4 address');
    return `server ${u.ip}:${upstreamPort}; # ${u.name}`;
  });
  const extra = (opts.extra ?? []).map(normalizeExtra);
  const inc = opts.serversInclude;
  if (inc !== undefined && (typeof inc !== 'string' || !/^\/[A-Za-z0-9_.\/-]+$/.test(inc))) bad('servers include', inc, 'must be an absolute path of letters, digits, "_", ".", "-", "/"');

  const ind = (depth: number) => (line: string) => '    '.repeat(depth) + line;
  const lines: string[] = [
    `# Managed by dsrctl (mode ${mode}, protocol ${protocol}). Changes here are overwritten by dsrctl apply and undone by dsrctl rollback.`,
    `# Context: ${protocol === 'http' ? 'http' : 'stream'}.`,
    '',
    `upstream ${UPSTREAM_GROUP} {`,
    ...(inc
      ? [`# the health checker's list (${servers.map((l) => l.replace(/^server (\S+); # (.*)$/, '$2 $1')).join(', ')}): it marks a failing upstream down there`, `include ${inc};`].map(ind(1))
      : servers.map(ind(1))),
    '}',
    '',
    'server {',
  ];
  if (protocol === 'http') {
    lines.push(
      ind(1)(`listen ${listenPort};`),
      '',
      ind(1)('location / {'),
      ...[`proxy_bind ${proxyBind};`, ...extra, `proxy_pass http://${UPSTREAM_GROUP};`].map(ind(2)),
      ind(1)('}'),
    );
  } else {
    lines.push(
      ...[
        `listen ${listenPort}${protocol === 'udp' ? ' udp' : ''};`,
        '',
        `proxy_bind ${proxyBind};`,
        ...extra,
        `proxy_pass ${UPSTREAM_GROUP};`,
      ].map((l) => (l === '' ? l : ind(1)(l))),
    );
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}
