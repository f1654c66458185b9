import { quote } from 'shell-quote';
import { FACTS_FORMAT_VERSION, SHELL_PRELUDE } from './format.js';
import type { FactsRequest } from './types.js';
import { ACTIVE_RUN_STATUSES } from '../apply/paths.js';
import { encodePath } from '../resources/nginx-files.js';
import { HEALTH_PID, HEALTH_UNIT } from '../health/settings.js';

/** Files under /var/lib/dsrctl that the facts always read (dead-man's switch / journal state). */
export const DSRCTL_STATE_FILES = {
  /** id of the last run applied on this host (its journal is runs/<id>/) */
  journal: '/var/lib/dsrctl/last-run',
  lock: '/var/lib/dsrctl/lock',
  reverted: '/var/lib/dsrctl/reverted',
} as const;

/** dsrctl's journal directory: root's alone, or backups and undo scripts could be redirected or read. */
export const DSRCTL_STATE_DIR = '/var/lib/dsrctl';

const SYSCTL_KEY_RE = /^[a-z0-9_.\-/]+$/;

/**
 * Checks a sysctl key ("net.ipv4.ip_forward", or with a "/" where an interface name has a dot:
 * "net.ipv4.conf.eth0/100.rp_filter") and returns the file under /proc/sys that holds it.
 */
export function sysctlProcPath(key: string): string {
  if (!SYSCTL_KEY_RE.test(key)) throw new Error(`invalid sysctl key ${JSON.stringify(key)}: only a-z 0-9 _ . - / allowed`);
  // sysctl(8) naming: "." separates levels, "/" stands for a "." inside one level
  const rel = key.replace(/[./]/g, (c) => (c === '.' ? '/' : '.'));
  const parts = rel.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..' || p.startsWith('-'))) {
    throw new Error(`invalid sysctl key ${JSON.stringify(key)}: empty, "." or ".." level, or a level starting with "-"`);
  }
  return `/proc/sys/${rel}`;
}

export function checkFactsPath(path: string): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new Error(`invalid file path ${JSON.stringify(path)}: not absolute`);
  if (/[\0\n]/.test(path)) throw new Error(`invalid file path ${JSON.stringify(path)}: contains NUL or newline`);
  return path;
}

const q = (s: string) => quote([s]);

export function checkIfname(name: string): string {
  if (!/^[A-Za-z0-9_.@-]{1,15}$/.test(name)) throw new Error(`invalid interface name ${JSON.stringify(name)}`);
  return name;
}

/** Shell helpers (SHELL_PRELUDE and the facts' own); every marker line comes from `b` and `e`. */
const PRELUDE = String.raw`# dsrctl facts: read-only, POSIX sh; every section prints what it can
${SHELL_PRELUDE}# out TEXT: print a captured output with its newline back (nothing when empty)
out() { [ -z "$1" ] || printf '%s\n' "$1"; }
# run NAME CMD...: the command's stdout is the body (stderr dropped), its exit status goes in the end marker
run() {
  _n=$1; shift
  b "$_n"
  if have "$1"; then _o=$("$@" 2>/dev/null); _r=$?; out "$_o"; else _r=127; fi
  e "$_n" "$_r"
}
if base64 -w0 </dev/null >/dev/null 2>&1; then
  b64() { base64 -w0; }
else
  b64() { base64 | tr -d '\n'; }
fi
# fileinfo NAME PATH: exists, type, mode, sha256 and base64 content of one file; the path resolved
# (symlinks, ".", "//"), whether it is a symlink, and owner and mode of the nearest existing
# directory above the resolved path (and above the path itself, when it is a symlink)
dirstat() {
  _d=$1; while [ -n "$_d" ] && [ ! -d "$_d" ]; do _d=${'$'}{_d%/*}; done; [ -n "$_d" ] || _d=/
  stat -c "%u %g %a $_d" "$_d" 2>/dev/null
}
fileinfo() {
  b "$1"
  printf 'path=%s\n' "$2"
  if _rp=$(realpath -m -- "$2" 2>/dev/null) || _rp=$(readlink -f -- "$2" 2>/dev/null); then printf 'realpath=%s\n' "$_rp"; else _rp=$2; fi
  if _s=$(dirstat "${'$'}{_rp%/*}"); then printf 'dir=%s\n' "$_s"; fi
  if [ -L "$2" ]; then
    printf 'link=1\n'
    if _s=$(dirstat "${'$'}{2%/*}"); then printf 'link_dir=%s\n' "$_s"; fi
  fi
  if [ -L "$2" ] && [ ! -e "$2" ]; then
    printf 'exists=1\ntype=dangling\n'
  elif [ -e "$2" ]; then
    printf 'exists=1\n'
    if [ -f "$2" ]; then _t=file; elif [ -d "$2" ]; then _t=dir; else _t=other; fi
    printf 'type=%s\n' "$_t"
    if _m=$(stat -L -c %a "$2" 2>/dev/null); then printf 'mode=%s\n' "$_m"; fi
    if _o=$(stat -L -c '%u %g' "$2" 2>/dev/null); then printf 'owner=%s\n' "$_o"; fi
    if [ "$_t" = file ]; then
      if [ -r "$2" ]; then
        if _h=$(sha256sum <"$2" 2>/dev/null); then printf 'sha256=%s\n' "${'$'}{_h%% *}"; fi
        if have base64 && _c=$(b64 <"$2"); then printf 'content=%s\n' "$_c"; else printf 'content-error=no base64\n'; fi
      else
        printf 'readable=0\n'
      fi
    fi
  else
    printf 'exists=0\n'
  fi
  e "$1" 0
}
# journal_file PATH ENCODED: PATH as the oldest run whose changes are still in place found it: that
# run's first backup of it (files/NNN-ENCODED, the lowest NNN)
journal_file() {
  b journal-file
  printf 'path=%s\n' "$1"
  for _r in $(ls -1 /var/lib/dsrctl/runs 2>/dev/null | sort); do
    case "$(cat "/var/lib/dsrctl/runs/$_r/status" 2>/dev/null)" in
      ${ACTIVE_RUN_STATUSES.join('|')}) ;;
      *) continue ;;
    esac
    _jf=
    for _c in "/var/lib/dsrctl/runs/$_r/files/"[0-9][0-9][0-9]-"$2"; do [ -f "$_c" ] && { _jf=$_c; break; }; done
    if [ -n "$_jf" ] && [ -r "$_jf" ] && have base64; then printf 'run=%s\n' "$_r"; printf 'content=%s\n' "$(b64 <"$_jf")"; break; fi
  done
  e journal-file 0
}
# journal_change ID: the undo of change ID (done) in the oldest run still in place that made one
journal_change() {
  b journal-change
  printf 'id=%s\n' "$1"
  _jc=
  for _r in $(ls -1 /var/lib/dsrctl/runs 2>/dev/null | sort); do
    case "$(cat "/var/lib/dsrctl/runs/$_r/status" 2>/dev/null)" in
      ${ACTIVE_RUN_STATUSES.join('|')}) ;;
      *) continue ;;
    esac
    for _i in "/var/lib/dsrctl/runs/$_r/changes/"*.id; do
      [ -f "$_i" ] && [ "$(cat "$_i")" = "$1" ] && [ "$(cat "${'$'}{_i%.id}.state" 2>/dev/null)" = done ] && [ -r "${'$'}{_i%.id}.undo" ] || continue
      _jc=${'$'}{_i%.id}.undo; break
    done
    if [ -n "$_jc" ] && have base64; then printf 'run=%s\n' "$_r"; printf 'undo=%s\n' "$(b64 <"$_jc")"; break; fi
  done
  e journal-change 0
}
# sysctl KEY PROCPATH
sysctl_value() {
  b sysctl
  printf 'key=%s\n' "$1"
  if [ -f "$2" ]; then
    if _v=$(cat "$2" 2>/dev/null); then printf 'status=ok\nvalue=%s\n' "$_v"; else printf 'status=unreadable\n'; fi
  else
    printf 'status=missing\n'
  fi
  e sysctl 0
}
# nginx_opt NAME: value of --NAME= in nginx -V
nginx_opt() { printf '%s\n' "$NV" | sed -n "s/.*--$1=\([^ ]*\).*/\1/p" | head -n 1; }
nginx_path() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$NPREFIX" "$1" ;; esac; }
`;

const NGINX = String.raw`
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
`;

/**
 * The read-only POSIX sh script that gathers one host's facts in a single exec (`sh -s`, script on
 * stdin). Runs under dash, as root or not; a missing tool only empties its own section.
 * Keys and paths are validated (throws on bad ones) and shell-quoted.
 */
/** `epilogue`: more shell run after the facts in the same exec (the run lock), its output after `done`. */
export function buildFactsScript(req: FactsRequest, epilogue = ''): string {
  const sysctls = [...new Set(req.sysctls)].map((k) => ({ key: k, proc: sysctlProcPath(k) }));
  const files = [...new Set(req.files)].map(checkFactsPath);
  const reads = [...new Set(req.reads ?? [])].map(checkFactsPath);

  const body: string[] = [
    `  b facts; printf 'format=%s\\n' ${FACTS_FORMAT_VERSION}; e facts 0`,
    '  run hostname uname -n',
    '  run kernel uname -r',
    '  run uid id -u',
    '  b systemd; if [ -d /run/systemd/system ]; then echo yes; else echo no; fi; e systemd 0',
    '  run ip-addr ip -j addr show',
    '  run ip-rule ip -j -4 rule show',
    '  run ip-route ip -j -4 route show table all',
    // iproute2 prints a table by its name from rt_tables: the parser maps names back to numbers
    `  b rt-tables; cat /etc/iproute2/rt_tables /etc/iproute2/rt_tables.d/*.conf /usr/share/iproute2/rt_tables /usr/lib/iproute2/rt_tables 2>/dev/null; e rt-tables 0`,
    ...sysctls.map(({ key, proc }) => `  sysctl_value ${q(key)} ${q(proc)}`),
    '  run iptables-version iptables -V',
    '  run iptables-save iptables-save',
    '  run nft nft list ruleset',
    // stateless NAT backends: act_nat for tc (loaded, built in, or a module on disk), nft for netdev egress
    `  b nat-probe; printf 'act_nat_loaded=%s\\n' "$(grep -c '^act_nat ' /proc/modules 2>/dev/null)"; _k=$(uname -r); printf 'act_nat_builtin=%s\\n' "$(grep -c '/act_nat.ko' "/lib/modules/$_k/modules.builtin" 2>/dev/null)"; printf 'act_nat_module=%s\\n' "$(grep -o '[^ :]*/act_nat\\.ko[^ :]*' "/lib/modules/$_k/modules.dep" 2>/dev/null | head -n 1)"; printf 'tc=%s\\n' "$(command -v tc)"; printf 'nft=%s\\n' "$(command -v nft)"; e nat-probe 0`,
    ...(req.interfaces ?? []).map((i) => `  b tc; printf 'dev=%s\\n' ${q(checkIfname(i))}; tc qdisc show dev ${q(i)} 2>/dev/null; printf '%s\\n' '--filters--'; tc filter show dev ${q(i)} 2>/dev/null; e tc 0`),
    NGINX.replace(/^\n|\n$/g, ''),
    ...files.map((p) => `  fileinfo file ${q(p)}`),
    ...[...new Set(req.journalChanges ?? [])].map((id) => {
      if (!/^[A-Za-z0-9 ._\/:-]{1,200}$/.test(id)) throw new Error(`invalid change id ${JSON.stringify(id)}`);
      return `  journal_change ${q(id)}`;
    }),
    ...[...new Set(req.journalFiles ?? [])].map(checkFactsPath).map((p) => `  journal_file ${q(p)} ${q(encodePath(p))}`),
    // one open, one read: a file the checker replaces (mv) meanwhile is read whole, old or new
    ...reads.map((p) => `  b read; printf 'path=%s\\n' ${q(p)}; if { printf 'exists=1\\ncontent=%s\\n' "$(b64 <&3)"; } 2>/dev/null 3<${q(p)}; then :; else printf 'exists=0\\n'; fi; e read 0`),
    `  b health; _p=$(cat ${q(HEALTH_PID)} 2>/dev/null | tr -cd 0-9); printf 'pid=%s\\n' "$_p"; if [ -n "$_p" ] && [ "$(cut -d' ' -f3 "/proc/$_p/stat" 2>/dev/null)" != Z ] && tr '\\0' ' ' < "/proc/$_p/cmdline" 2>/dev/null | grep -q 'dsrctl/health/check\\.sh'; then echo alive=1; else echo alive=0; fi; if [ -d /run/systemd/system ] && have systemctl; then printf 'unit_active=%s\\nunit_enabled=%s\\n' "$(systemctl is-active ${HEALTH_UNIT} 2>/dev/null)" "$(systemctl is-enabled ${HEALTH_UNIT} 2>/dev/null)"; fi; e health 0`,
    `  fileinfo dsrctl-journal ${q(DSRCTL_STATE_FILES.journal)}`,
    `  fileinfo dsrctl-lock ${q(DSRCTL_STATE_FILES.lock)}`,
    `  fileinfo dsrctl-reverted ${q(DSRCTL_STATE_FILES.reverted)}`,
    `  fileinfo dsrctl-state ${q(DSRCTL_STATE_DIR)}`,
    '  b done; e done 0',
  ];
  // Everything runs inside one function called with stdin from /dev/null: the shell reads the whole
  // definition before running anything, and no command can eat the rest of the script from `sh -s`.
  return `${PRELUDE}dsrctl_facts() {\n${body.join('\n')}\n}\ndsrctl_facts </dev/null\n${epilogue ? `${epilogue}\n` : ''}exit 0\n`;
}
