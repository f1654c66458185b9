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
  helpers: String.raw`# nginx_opt NAME: _o = the value of --NAME= in nginx -V: its last on the first line that has one, up to
# a space (sed 's/.*--NAME=\([^ ]*\).*/\1/p' | head -n 1, by the shell)
nginx_opt() {
  _o=; _q=$NV$NL
  while [ -n "$_q" ]; do pop; case $_v in *"--$1="*) _o=${'$'}{_v##*"--$1="}; _o=${'$'}{_o%% *}; return 0 ;; esac; done
}
# nginx_path PATH: _o = PATH, relative ones under nginx's prefix
nginx_path() { case $1 in /*) _o=$1 ;; *) _o=$NPREFIX/$1 ;; esac; }
# nginx_modules: the load_module lines of nginx.conf and modules-enabled/*.conf, one grep for all
nginx_modules() {
  set --
  for _f in "$NCONF" "$NDIR"/modules-enabled/*.conf; do if [ -f "$_f" ] && [ -r "$_f" ]; then set -- "$@" "$_f"; fi; done
  if [ "$NDIR" != /etc/nginx ]; then
    for _f in /etc/nginx/modules-enabled/*.conf; do if [ -f "$_f" ] && [ -r "$_f" ]; then set -- "$@" "$_f"; fi; done
  fi
  [ $# = 0 ] || grep -h '^[[:space:]]*load_module[[:space:]]' "$@" 2>/dev/null
}
`,
  shell: () => String.raw`
  b nginx-version
  if have nginx; then NV=$(nginx -V 2>&1); _r=$?; out "$NV"; else NV=; _r=127; fi
  e nginx-version "$_r"
  nginx_opt prefix; NPREFIX=$_o
  nginx_opt conf-path; NCONF=$_o
  if [ -n "$NCONF" ]; then nginx_path "$NCONF"; NCONF=$_o; else NCONF=/etc/nginx/nginx.conf; fi
  NPID=
  if [ -r "$NCONF" ]; then
    # the first pid line (one sed: it stops there)
    NPID=$(sed -n '/^[[:space:]]*pid[[:space:]][[:space:]]*\([^;[:space:]]*\)[[:space:]]*;.*$/{s/^[[:space:]]*pid[[:space:]][[:space:]]*\([^;[:space:]]*\)[[:space:]]*;.*$/\1/p;q;}' "$NCONF" 2>/dev/null)
  fi
  [ -n "$NPID" ] || { nginx_opt pid-path; NPID=$_o; }
  if [ -n "$NPID" ]; then nginx_path "$NPID"; NPID=$_o; else NPID=/run/nginx.pid; fi
  b nginx-modules
  NDIR=${'$'}{NCONF%/*}
  nginx_modules
  e nginx-modules 0
  b nginx-pid
  printf 'pidfile=%s\n' "$NPID"
  if [ -r "$NPID" ]; then
    # its first line's digits (head -n 1 | tr -cd 0-9, by the shell)
    _l=; { IFS= read -r _l || :; } 2>/dev/null <"$NPID"; digits "$_l"; _p=$_o
    if [ -n "$_p" ]; then
      printf 'pid=%s\n' "$_p"
      if kill -0 "$_p" 2>/dev/null || [ -d "/proc/$_p" ]; then printf 'alive=1\n'; else printf 'alive=0\n'; fi
      if [ -r "/proc/$_p/comm" ]; then slurp "/proc/$_p/comm"; printf 'comm=%s\n' "$_t"; fi
      # sed -n 's/^CapBnd:[[:space:]]*//p', by the shell
      _cb=; _l=
      while IFS= read -r _l || [ -n "$_l" ]; do
        case $_l in CapBnd:*) _l=${'$'}{_l#CapBnd:}; while case $_l in [[:space:]]*) true ;; *) false ;; esac; do _l=${'$'}{_l#?}; done; _cb=${'$'}{_cb:+$_cb$NL}$_l ;; esac
        _l=
      done 2>/dev/null <"/proc/$_p/status"
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
  # each "# configuration file PATH:" line of the dump, by one sed: a shell loop cutting the dump
  # from one such line to the next costs dash the square of the text between them (a 150 KB
  # included map or blocklist took longer than the facts' 30 s)
  if [ -n "$NT" ]; then
    printf '%s\n' "$NT" | sed -n 's/^# configuration file \(.*\):$/\1/p' | while IFS= read -r _f; do
      if [ -L "$_f" ]; then _st=$(stat -c '%u:%g %.9Y' -- "$_f" 2>/dev/null) || _st=' '; printf '%s\t%s\t%s\t%s\n' "$_f" "$(readlink "$_f")" "${'$'}{_st%% *}" "${'$'}{_st#* }"; fi
    done
  fi
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
