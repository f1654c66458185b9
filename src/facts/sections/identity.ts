import { FactsParseError } from '../format.js';
import type { FactSection } from './section.js';

/** Its part of HostFacts. */
export interface IdentityFacts {
  hostname: string;
  kernel: string;
  uid: number;
  hasSystemd: boolean;
}

/** Who the host is: hostname, kernel, the user dsrctl runs as, whether systemd runs it. */
export const identity: FactSection<IdentityFacts> = {
  id: 'identity',
  single: ['hostname', 'kernel', 'uid', 'systemd'],
  // from /proc by the shell itself where it can (no process: uname -n and -r print the same), else the tools
  helpers: String.raw`# procline NAME FILE CMD...: the first line of FILE, else CMD's output
procline() {
  _n=$1; _f=$2; shift 2
  if { IFS= read -r _v || [ -n "$_v" ]; } <"$_f" 2>/dev/null && [ -n "$_v" ]; then b "$_n"; out "$_v"; e "$_n" 0; else run "$_n" "$@"; fi
}
# euid: the effective uid (Uid: real effective saved fs in /proc/self/status), else id -u
euid() {
  _u=
  while read -r _k _a _b _rest; do [ "$_k" = Uid: ] && { _u=$_b; break; }; done </proc/self/status 2>/dev/null
  case $_u in ''|*[!0-9]*) run uid id -u ;; *) b uid; out "$_u"; e uid 0 ;; esac
}
`,
  shell: () => [
    '  procline hostname /proc/sys/kernel/hostname uname -n',
    '  procline kernel /proc/sys/kernel/osrelease uname -r',
    '  euid',
    '  b systemd; if [ -d /run/systemd/system ]; then echo yes; else echo no; fi; e systemd 0',
  ],
  parse(ctx) {
    const uid = ctx.must('uid').trim();
    if (!/^\d+$/.test(uid)) throw new FactsParseError('uid', 'not a number', uid);
    const systemd = ctx.one('systemd').body.trim();
    if (systemd !== 'yes' && systemd !== 'no') throw new FactsParseError('systemd', 'expected yes or no', systemd);
    return { hostname: ctx.must('hostname').trim(), kernel: ctx.must('kernel').trim(), uid: Number(uid), hasSystemd: systemd === 'yes' };
  },
};
