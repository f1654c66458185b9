/**
 * `dsrctl doctor --capture`: the guide's "Use tcpdump Everywhere" in one command. Every host runs
 * `timeout N tcpdump -tt -n -l -i any FILTER` at the same moment (one exec each, in parallel); the
 * lines are parsed and merged by timestamp into one timeline, so the user sees where packets stop.
 *
 * Pure here: the filter, the script, the parser and the merge. The exec is in the command.
 * Timestamps are each host's own clock (`-tt`): the merge is only as good as the hosts' clock sync
 * (NTP); in the lab every host shares one clock.
 */
import { quote } from 'shell-quote';
import type { Inventory } from '../inventory/schema.js';
import { REMOTE_PATH } from '../util/remote-env.js';

/** tcpdump stops after this many packets per host (-c), so a busy service cannot flood the run. */
export const MAX_PACKETS_PER_HOST = 5000;

export interface Packet {
  /** seconds since the epoch, from tcpdump -tt (the host's clock) */
  time: number;
  host: string;
  /** interface name, "" when tcpdump did not print one */
  iface: string;
  /** In, Out, B (broadcast), M (multicast), P (to another host), "" when not printed */
  dir: string;
  /** "IP", "IP6", or another link-level protocol tcpdump names (ARP, ...) */
  proto: string;
  src: string;
  dst: string;
  /** the rest of the line, TCP options and sequence numbers left out */
  summary: string;
  raw: string;
}

export interface HostCapture {
  host: string;
  /** ok: tcpdump ran; missing: tcpdump (or timeout) not installed; failed: it ran but did not listen */
  status: 'ok' | 'missing' | 'failed';
  packets: Packet[];
  /** tcpdump's own messages (stderr), e.g. "listening on any ..." and its counters */
  messages: string[];
  /** epoch seconds (the host's clock) when tcpdump was seen listening, from buildReadyScript */
  listeningAt?: number;
  /** what went wrong, for missing and failed */
  note?: string;
}

/** The service's ports in tcpdump's filter language, plus ICMP errors (unreachable, time exceeded). */
export function captureFilter(inv: Inventory): string {
  const l4 = inv.service.protocol === 'udp' ? 'udp' : 'tcp';
  const ports = [...new Set([inv.service.listen_port, inv.service.upstream_port])];
  return `(${l4} and (${ports.map((p) => `port ${p}`).join(' or ')})) or (icmp and (icmp[0] = 3 or icmp[0] = 11))`;
}

/** Marks the capture's tcpdump in its environment, so the control scripts find exactly that process. */
export const TOKEN_VAR = 'DSRCTL_CAPTURE';

function checkToken(token: string): string {
  if (!/^[a-z0-9]{6,40}$/.test(token)) throw new Error(`invalid capture token ${JSON.stringify(token)}`);
  return token;
}

const SH_HEAD = [`PATH=${REMOTE_PATH}`, 'LC_ALL=C', 'export PATH LC_ALL'];

/**
 * The script one host runs on its capture connection: tcpdump for at most `maxSeconds` (the
 * command stops it earlier with buildStopScript), its stderr lines marked "@@stderr ".
 */
export function buildCaptureScript(maxSeconds: number, filter: string, token: string): string {
  if (!Number.isInteger(maxSeconds) || maxSeconds < 1 || maxSeconds > 900) throw new Error(`capture seconds must be 1-900, got ${maxSeconds}`);
  return [
    '# dsrctl doctor --capture: read-only',
    ...SH_HEAD,
    'dsrctl_capture() {',
    "  for _c in tcpdump timeout; do command -v $_c >/dev/null 2>&1 || { printf '@@capture missing %s\\n' $_c; return 0; }; done",
    `  { ${TOKEN_VAR}=${checkToken(token)} timeout ${maxSeconds} tcpdump -tt -n -l -c ${MAX_PACKETS_PER_HOST} -i any ${quote([filter])} 2>&1 1>&3 3>&- | while IFS= read -r _l; do printf '@@stderr %s\\n' "$_l"; done; } 3>&1`,
    "  printf '@@capture end\\n'",
    '}',
    'dsrctl_capture </dev/null',
    'exit 0',
    '',
  ].join('\n');
}

/** Shell that sets _p to the PIDs of this capture's tcpdump (found by its environment). */
const findTcpdump = (token: string) =>
  `_p=; for _e in $(grep -l -z -x '${TOKEN_VAR}=${checkToken(token)}' /proc/[0-9]*/environ 2>/dev/null); do _d=\${_e%/environ}; [ "$(cat "$_d/comm" 2>/dev/null)" = tcpdump ] && _p="$_p \${_d#/proc/}"; done`;

/**
 * Run on the host's other connection while the capture starts: waits (at most `waitSeconds`) until
 * that tcpdump holds a packet socket, i.e. listens, and prints "@@ready PID EPOCH" (or "@@notready").
 */
export function buildReadyScript(token: string, waitSeconds = 10): string {
  if (!Number.isInteger(waitSeconds) || waitSeconds < 1) throw new Error(`invalid wait ${waitSeconds}`);
  return [
    '# dsrctl doctor --capture: is tcpdump listening yet? read-only',
    ...SH_HEAD,
    "command -v tcpdump >/dev/null 2>&1 || { echo '@@notready tcpdump missing'; exit 0; }",
    `_end=$(( $(date +%s) + ${waitSeconds} )); _p=`,
    'while :; do',
    `  [ -n "$_p" ] || { ${findTcpdump(token)}; }`,
    '  for _pid in $_p; do',
    '    for _fd in /proc/$_pid/fd/*; do',
    '      _l=$(readlink "$_fd" 2>/dev/null) || continue',
    '      case $_l in socket:*) _n=${_l#socket:?}; _n=${_n%?} ;; *) continue ;; esac',
    `      if awk -v n="$_n" 'NR > 1 && $NF == n { f = 1 } END { exit !f }' /proc/$_pid/net/packet 2>/dev/null; then printf '@@ready %s %s\\n' "$_pid" "$(date +%s.%N)"; exit 0; fi`,
    '    done',
    '  done',
    '  [ "$(date +%s)" -lt "$_end" ] || break',
    '  sleep 0.05',
    'done',
    'if [ -n "$_p" ]; then echo \'@@notready tcpdump never opened its packet socket\'; else echo \'@@notready no tcpdump of this capture running\'; fi',
    'exit 0',
    '',
  ].join('\n');
}

/** Ends this capture's tcpdump (it prints its counters and exits, as on ^C). Touches nothing else. */
export function buildStopScript(token: string): string {
  return [...SH_HEAD, findTcpdump(token), '[ -z "$_p" ] || kill -INT $_p 2>/dev/null', 'exit 0', ''].join('\n');
}

/** "@@ready PID EPOCH" -> the epoch; null for "@@notready ..." or anything else. */
export function parseReady(stdout: string): { ready: boolean; at?: number; why?: string } {
  const m = /^@@ready \d+ (\d+(?:\.\d+)?)$/m.exec(stdout);
  if (m) return { ready: true, at: Number(m[1]) };
  return { ready: false, why: /^@@notready ?(.*)$/m.exec(stdout)?.[1] || 'no answer' };
}

/** TCP's long tail (seq, ack, win, options) cut: "Flags [P.], length 77: HTTP: GET / HTTP/1.1". */
export function summarize(rest: string): string {
  const tcp = /^Flags \[([^\]]*)\].*?, length (\d+)(.*)$/.exec(rest);
  if (tcp) return `Flags [${tcp[1]}], length ${tcp[2]}${tcp[3]}`;
  return rest;
}

const LINE = /^(\d+\.\d+)\s+(?:(\S+)\s+(In|Out|B|M|P|\?)\s+)?(IP6?|[A-Z][A-Za-z0-9]*),?\s+(.*)$/;

/** One line of `tcpdump -tt -n -l [-i any]`, or null when it is not a packet line. */
export function parsePacketLine(host: string, line: string): Packet | null {
  const m = LINE.exec(line);
  if (!m) return null;
  const [, t, iface = '', dir = '', proto, rest] = m as unknown as [string, string, string | undefined, string | undefined, string, string];
  let src = '';
  let dst = '';
  let summary = rest;
  if (proto === 'IP' || proto === 'IP6') {
    const a = /^(\S+) > (\S+?):\s*(.*)$/.exec(rest);
    if (a) {
      src = a[1]!;
      dst = a[2]!;
      summary = summarize(a[3]!);
    }
  }
  return { time: Number(t), host, iface, dir, proto, src, dst, summary, raw: line };
}

/** Parses one host's capture output (stdout of buildCaptureScript's script). */
export function parseCaptureOutput(host: string, stdout: string): HostCapture {
  const out: HostCapture = { host, status: 'failed', packets: [], messages: [] };
  let listening = false;
  for (const line of stdout.split('\n')) {
    if (line === '') continue;
    const missing = /^@@capture missing (\S+)$/.exec(line);
    if (missing) return { host, status: 'missing', packets: [], messages: [], note: `${missing[1]} is not installed` };
    if (line.startsWith('@@stderr ')) {
      const msg = line.slice('@@stderr '.length);
      out.messages.push(msg);
      if (/^listening on /.test(msg)) listening = true;
      continue;
    }
    if (line.startsWith('@@')) continue;
    const p = parsePacketLine(host, line);
    if (p) out.packets.push(p);
  }
  if (listening) out.status = 'ok';
  else out.note = out.messages.filter((m) => m !== '' && !/^(tcpdump: (data link type|verbose output)|\d+ packets )/.test(m)).join('; ') || 'tcpdump never said it was listening';
  return out;
}

/** Every host's packets in one list, sorted by time (stable: same-time packets keep host order). */
export function mergeTimeline(captures: HostCapture[]): Packet[] {
  return captures
    .flatMap((c, hi) => c.packets.map((p, pi) => ({ p, hi, pi })))
    .sort((a, b) => a.p.time - b.p.time || a.hi - b.hi || a.pi - b.pi)
    .map((x) => x.p);
}

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));

/** The merged timeline as a person reads it: relative seconds from the first packet. */
export function formatTimeline(packets: Packet[]): string[] {
  if (!packets.length) return [];
  const t0 = packets[0]!.time;
  const rows = packets.map((p) => [`+${(p.time - t0).toFixed(6)}`, p.host, `${p.iface}${p.dir ? ` ${p.dir}` : ''}`, p.src ? `${p.src} > ${p.dst}` : p.proto, p.summary]);
  const head = ['time', 'host', 'iface', 'src > dst', 'summary'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  widths[4] = 0;
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : pad(c, widths[i]!))).join('  ').trimEnd();
  return [fmt(head), ...rows.map(fmt)];
}

/** One line per host: how many packets it saw, or why it saw none. */
export function captureNotes(captures: HostCapture[]): string[] {
  return captures.map((c) => {
    if (c.status === 'missing') return `${c.host}: not captured: ${c.note}`;
    if (c.status === 'failed') return `${c.host}: tcpdump failed: ${c.note}`;
    const ifaces = [...new Set(c.packets.map((p) => p.iface).filter(Boolean))];
    return `${c.host}: ${c.packets.length} packet${c.packets.length === 1 ? '' : 's'}${ifaces.length ? ` on ${ifaces.join(', ')}` : c.packets.length ? '' : ' (nothing of the service reached this host)'}`;
  });
}
