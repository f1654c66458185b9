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
  /** epoch seconds when tcpdump said it was listening (the host's clock) */
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

/** The script one host runs: tcpdump for `seconds`, its stderr lines time-stamped and marked. */
export function buildCaptureScript(seconds: number, filter: string): string {
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600) throw new Error(`capture seconds must be 1-600, got ${seconds}`);
  return [
    '# dsrctl doctor --capture: read-only',
    'PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"',
    'LC_ALL=C',
    'export PATH LC_ALL',
    'dsrctl_capture() {',
    "  for _c in tcpdump timeout; do command -v $_c >/dev/null 2>&1 || { printf '@@capture missing %s\\n' $_c; return 0; }; done",
    `  { timeout ${seconds} tcpdump -tt -n -l -c ${MAX_PACKETS_PER_HOST} -i any ${quote([filter])} 2>&1 1>&3 3>&- | while IFS= read -r _l; do printf '@@stderr %s %s\\n' "$(date +%s.%N)" "$_l"; done; } 3>&1`,
    "  printf '@@capture end\\n'",
    '}',
    'dsrctl_capture </dev/null',
    'exit 0',
    '',
  ].join('\n');
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
    const err = /^@@stderr (\d+(?:\.\d+)?) (.*)$/.exec(line);
    if (err) {
      out.messages.push(err[2]!);
      if (/^listening on /.test(err[2]!)) {
        listening = true;
        out.listeningAt = Number(err[1]);
      }
      continue;
    }
    if (line.startsWith('@@')) continue;
    const p = parsePacketLine(host, line);
    if (p) out.packets.push(p);
  }
  if (listening) out.status = 'ok';
  else out.note = out.messages.filter((m) => /tcpdump:|permission|denied|error/i.test(m)).join('; ') || 'tcpdump never said it was listening';
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
