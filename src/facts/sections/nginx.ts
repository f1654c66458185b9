import { parseNginx } from '../parsers/nginx.js';
import { FactsParseError } from '../format.js';
import type { NginxConfigFacts } from '../types.js';
import { reason, type FactSection } from './section.js';
import type { NginxFacts } from '../types.js';

/** Its part of HostFacts. */
export interface NginxSectionFacts {
  nginx: NginxFacts;
  /** absent from facts of an older script (then nothing is known about other servers) */
  nginxConfig?: NginxConfigFacts;
}

/**
 * nginx: version and build options, loaded modules, the master process (and its capability
 * bounding set), the effective configuration (nginx -T) and which of its files are symlinks.
 */
export const nginx: FactSection<NginxSectionFacts> = {
  id: 'nginx',
  optional: { notRead: () => ({ nginx: { installed: false, version: null, modules: [], running: false, masterPid: null, confPath: '' } }) },
  single: ['nginx-version', 'nginx-modules', 'nginx-pid'],
  helpers: String.raw`# nginx_opt NAME: value of --NAME= in nginx -V
nginx_opt() { printf '%s\n' "$NV" | sed -n "s/.*--$1=\([^ ]*\).*/\1/p" | head -n 1; }
nginx_path() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$NPREFIX" "$1" ;; esac; }
`,
  shell: () => String.raw`
  b nginx-version
  if have nginx; then NV=$(nginx -V 2>&1); _r=$?; out "$NV"; else NV=; _r=127; fi
  e nginx-version "$_r"
  NPREFIX=$(nginx_opt prefix)
  NCONF=$(nginx_opt conf-path)
  if [ -n "$NCONF" ]; then NCONF=$(nginx_path "$NCONF"); else NCONF=/etc/nginx/nginx.conf; fi
  NPID=
  if [ -r "$NCONF" ]; then
    NPID=$(sed -n 's/^[[:space:]]*pid[[:space:]][[:space:]]*\([^;[:space:]]*\)[[:space:]]*;.*$/\1/p' "$NCONF" 2>/dev/null | head -n 1)
  fi
  [ -n "$NPID" ] || NPID=$(nginx_opt pid-path)
  if [ -n "$NPID" ]; then NPID=$(nginx_path "$NPID"); else NPID=/run/nginx.pid; fi
  b nginx-modules
  NDIR=${'$'}{NCONF%/*}
  for _f in "$NCONF" "$NDIR"/modules-enabled/*.conf; do
    if [ -f "$_f" ] && [ -r "$_f" ]; then grep -h '^[[:space:]]*load_module[[:space:]]' "$_f" 2>/dev/null; fi
  done
  if [ "$NDIR" != /etc/nginx ]; then
    for _f in /etc/nginx/modules-enabled/*.conf; do
      if [ -f "$_f" ] && [ -r "$_f" ]; then grep -h '^[[:space:]]*load_module[[:space:]]' "$_f" 2>/dev/null; fi
    done
  fi
  e nginx-modules 0
  b nginx-pid
  printf 'pidfile=%s\n' "$NPID"
  if [ -r "$NPID" ]; then
    _p=$(head -n 1 "$NPID" 2>/dev/null | tr -cd 0-9)
    if [ -n "$_p" ]; then
      printf 'pid=%s\n' "$_p"
      if kill -0 "$_p" 2>/dev/null || [ -d "/proc/$_p" ]; then printf 'alive=1\n'; else printf 'alive=0\n'; fi
      if [ -r "/proc/$_p/comm" ]; then printf 'comm=%s\n' "$(cat "/proc/$_p/comm" 2>/dev/null)"; fi
      _cb=$(sed -n 's/^CapBnd:[[:space:]]*//p' "/proc/$_p/status" 2>/dev/null)
      if [ -n "$_cb" ]; then printf 'capbnd=%s\n' "$_cb"; fi
    fi
  fi
  e nginx-pid 0
  # the effective configuration: every file nginx reads, each after "# configuration file PATH:".
  # Each line gets a "|" in front, so no line of a config can look like a section marker.
  NT=
  b nginx-config
  if have nginx; then
    NT=$(nginx -T 2>/dev/null); _r=$?
    if [ "$_r" = 0 ]; then printf '%s\n' "$NT" | sed 's/^/|/'; else NT=; nginx -T 2>&1 >/dev/null | grep -v '^@@' | tail -n 5; fi
  else _r=127; fi
  e nginx-config "$_r"
  # which of those files are symlinks (Debian's sites-enabled/*): target, owner, mtime, for an exact undo
  b nginx-links
  printf '%s\n' "$NT" | sed -n 's/^# configuration file \(.*\):$/\1/p' | while IFS= read -r _f; do
    if [ -L "$_f" ]; then printf '%s\t%s\t%s\t%s\n' "$_f" "$(readlink "$_f")" "$(stat -c %u:%g "$_f" 2>/dev/null)" "$(stat -c %.9Y "$_f" 2>/dev/null)"; fi
  done
  e nginx-links 0
`.replace(/^\n|\n$/g, '').split('\n'),
  parse(ctx) {
    const config = ctx.maybe('nginx-config');
    return {
      nginx: parseNginx(ctx.one('nginx-version'), ctx.ok('nginx-modules'), ctx.ok('nginx-pid')),
      ...(config ? { nginxConfig: parseNginxConfigSection(config, ctx.maybe('nginx-links')?.body ?? '') } : {}),
    };
  },
};

/** The `nginx-config` section (each dump line behind a "|") and the `nginx-links` lines (path TAB target TAB uid:gid TAB mtime). */
export function parseNginxConfigSection(config: { rc: number; body: string }, links: string): NginxConfigFacts {
  if (config.rc === 127) return { status: 'absent' };
  if (config.rc !== 0) return { status: 'failed', error: config.body.trim() || `nginx -T: ${reason(config.rc)}` };
  const dump = config.body === '' ? '' : config.body.split('\n').map((l) => {
    if (!l.startsWith('|')) throw new FactsParseError('nginx-config', 'line without the "|" prefix', l);
    return l.slice(1);
  }).join('\n');
  const map: Record<string, { target: string; owner: string; mtime: string }> = {};
  for (const l of links.split('\n')) {
    if (l === '') continue;
    const [path, target, owner = '', mtime = ''] = l.split('\t');
    if (!path || !target) throw new FactsParseError('nginx-links', 'expected PATH TAB TARGET TAB UID:GID TAB MTIME', l);
    map[path] = { target, owner, mtime };
  }
  return { status: 'ok', dump, links: map };
}
