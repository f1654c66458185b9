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
  helpers: String.raw`# sysctl KEY PROCPATH
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
`,
  shell: (req) => [...new Set(req.sysctls)].map((k) => `  sysctl_value ${quote([k])} ${quote([sysctlProcPath(k)])}`),
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
