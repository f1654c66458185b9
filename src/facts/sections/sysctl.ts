import { quote } from 'shell-quote';
import { parseSysctl } from '../parsers/sysctl.js';
import type { FactSection } from './section.js';

/** Its part of HostFacts. */
export interface SysctlFacts {
  /** requested keys that exist, value as the kernel prints it (tabs kept, trailing newline cut);
   *  a key the kernel does not have is absent here and listed in sysctlMissing */
  sysctl: Record<string, string>;
  sysctlMissing?: string[];
}

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

/** The sysctls the plan needs, each from /proc/sys (missing ones are told apart from unreadable ones). */
export const sysctl: FactSection<SysctlFacts> = {
  id: 'sysctl',
  repeated: ['sysctl'],
  // not by the shell's read: dash reads a byte at a time, and a sysctl read at an offset past 0 ends there
  helpers: String.raw`# sysctl_values KEY PROCPATH...: a sysctl section per key; every value from one grep -H '' (each of
# its lines behind "PATH:"), each file with its own cat only where grep could not read them all
sysctl_values() {
  _SP=; _n=0
  while [ $# -gt 1 ]; do eval "_sk$_n=\$1 _sf$_n=\$2"; [ -f "$2" ] && _SP=$_SP$2$NL; _n=$((_n + 1)); shift 2; done
  _sr=2
  if [ -n "$_SP" ] && have grep; then
    _ifs=$IFS; IFS=$NL; set -f
    _SG=$(grep -H '' -- $_SP 2>/dev/null)$NL; _sr=$?
    IFS=$_ifs; set +f
  fi
  _i=0
  while [ "$_i" -lt "$_n" ]; do
    eval "_k=\$_sk$_i _f=\$_sf$_i"; _i=$((_i + 1))
    b sysctl
    printf 'key=%s\n' "$_k"
    if [ ! -f "$_f" ]; then
      printf 'status=missing\n'
    elif [ "$_sr" -le 1 ]; then
      # its lines, joined, trailing newlines cut: what $(cat) gives
      _t=; _sl=; _q=$_SG
      while [ -n "$_q" ]; do pop; case $_v in "$_f:"*) _t=$_t$_sl${'$'}{_v#"$_f:"}; _sl=$NL ;; esac; done
      chomp
      printf 'status=ok\nvalue=%s\n' "$_t"
    elif _v=$(cat "$_f" 2>/dev/null); then printf 'status=ok\nvalue=%s\n' "$_v"
    else printf 'status=unreadable\n'; fi
    e sysctl 0
  done
}
`,
  shell: (req) => {
    const keys = [...new Set(req.sysctls)];
    return keys.length ? [`  sysctl_values ${keys.map((k) => `${quote([k])} ${quote([sysctlProcPath(k)])}`).join(' ')}`] : [];
  },
  parse(ctx) {
    const values: Record<string, string> = {};
    const missing: string[] = [];
    for (const s of ctx.all('sysctl')) {
      const entry = parseSysctl(s.body);
      if (entry.status === 'ok') values[entry.key] = entry.value;
      else if (entry.status === 'missing') missing.push(entry.key);
      else ctx.incomplete.push({ section: 'sysctl', reason: `${entry.key}: unreadable` });
    }
    return { sysctl: values, sysctlMissing: missing };
  },
};
