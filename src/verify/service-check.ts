import { quote } from 'shell-quote';
import type { Inventory } from '../inventory/schema.js';

/**
 * What a health check of the service speaks, how it runs, and what its answer means: one place
 * for verify's direct per-upstream checks, its path check and any future health checker.
 */
export type ServiceCheckKind = 'dns' | 'http' | 'tcp' | 'none';

export interface ServiceCheckChoice {
  kind: ServiceCheckKind;
  /** why this kind, as plan and verify state it */
  reason: string;
}

/** verify.check, else the service's default: http -> http, tcp -> tcp, udp/53 -> dns, other udp -> none. */
export function chooseServiceCheck(inv: Inventory): ServiceCheckChoice {
  const { protocol, upstream_port } = inv.service;
  if (inv.verify.check) return { kind: inv.verify.check, reason: `verify.check: ${inv.verify.check}` };
  if (protocol === 'http') return { kind: 'http', reason: 'default for protocol http' };
  if (protocol === 'tcp') return { kind: 'tcp', reason: 'default for protocol tcp' };
  if (upstream_port === 53) return { kind: 'dns', reason: 'default for udp port 53' };
  return { kind: 'none', reason: `udp port ${upstream_port} is not DNS and dsrctl speaks no other UDP protocol; set verify.check: dns if it is DNS` };
}

export interface DnsQuestion {
  name: string;
  type: string;
  /** true when the user named the query: only a real answer (NOERROR with records) counts */
  needAnswer: boolean;
}

/** The user's verify.probe.dns_query (a real answer required), else keepalived DNS_CHECK's `. SOA` (any response code). */
export function dnsQuestion(inv: Inventory): DnsQuestion {
  const q = inv.verify.probe?.dns_query;
  return q ? { name: q, type: 'A', needAnswer: true } : { name: '.', type: 'SOA', needAnswer: false };
}

export const describeDns = (q: DnsQuestion) => `"${q.name} ${q.type}"${q.needAnswer ? ', a real answer required' : ', any response code counts'}`;

/** How a check of this kind asks ip:port, for check lines. */
export function describeServiceCheck(kind: Exclude<ServiceCheckKind, 'none'>, inv: Inventory, ipPort: string): string {
  if (kind === 'dns') {
    const q = dnsQuestion(inv);
    return `DNS query "${q.name} ${q.type}" to ${ipPort}${inv.service.protocol === 'udp' ? '' : ' over TCP'}, ${q.needAnswer ? 'a real answer required' : 'any response code counts'}`;
  }
  return kind === 'http' ? `HTTP GET / to ${ipPort}, any status below 500` : `TCP connection to ${ipPort}`;
}

/** The path a path check requests: unique per run, so no cache or log line from another run can stand in. */
export const pathCheckPath = (nonce: string) => `/.well-known/dsrctl-path-check/${nonce}`;

/** dig asking ip:port the check's question (one try, the check's timeout); its output unlimited, its errors on stderr. */
export function digCommand(ip: string, port: number, inv: Inventory): string {
  const q = dnsQuestion(inv);
  const tcp = inv.service.protocol === 'udp' ? [] : ['+tcp'];
  return `dig +tries=1 +time=${Math.max(1, Math.ceil(inv.verify.timeout_seconds))} +noall +comments +answer ${quote([...tcp, '-p', String(port), `@${ip}`, q.name, q.type])}`;
}

/** curl's telnet client connects and prints whatever the server sends first (a banner), sending nothing; errors on the same stream. */
export function tcpCommand(ip: string, port: number, inv: Inventory): string {
  const t = inv.verify.timeout_seconds;
  return `curl -sS --connect-timeout ${t} --max-time ${Math.max(1, Math.ceil(t)) + 1} ${quote([`telnet://${ip}:${port}`])} </dev/null 2>&1`;
}

/**
 * The shell command of one check against ip:port: runs the tool and prints everything it said
 * (judged by the pure functions below in verify, by `serviceAliveTest` in the health checker).
 */
export function serviceProbeCommand(kind: Exclude<ServiceCheckKind, 'none'>, ip: string, port: number, inv: Inventory, path = '/'): string {
  switch (kind) {
    case 'dns':
      return `${digCommand(ip, port, inv)} 2>&1 | head -c 2000`;
    case 'http':
      // line 1: the status code (000: no response), line 2: curl's error, then the body's start
      return `f=$(mktemp) && { curl -sS -o "$f" -w '%{http_code}\\n' --max-time ${inv.verify.timeout_seconds} ${quote([`http://${ip}:${port}${path}`])} 2>"$f.err"; head -n 1 "$f.err"; echo; head -c 600 "$f"; rm -f "$f" "$f.err"; }`;
    case 'tcp':
      return `${tcpCommand(ip, port, inv)} | head -c 300`;
  }
}

/**
 * The same decision as `judgeService`, as a shell test of "$out" (what serviceProbeCommand
 * printed), for the health checker on the proxy, where no Node runs. Unit tests hold the two
 * to the same verdict on real outputs.
 */
export function serviceAliveTest(kind: Exclude<ServiceCheckKind, 'none'>, inv: Inventory): string {
  switch (kind) {
    case 'dns':
      // a response header with any status; with dns_query: NOERROR and an answer record
      return dnsQuestion(inv).needAnswer
        ? `printf '%s\\n' "$out" | grep -q -- '->>HEADER<<-.*status: NOERROR' && printf '%s\\n' "$out" | awk '!/^;/ && NF > 4 { f = 1 } END { exit !f }'`
        : `printf '%s\\n' "$out" | grep -q -- '->>HEADER<<-.*status: [A-Z]'`;
    case 'http':
      return `{ c=$(printf '%s\\n' "$out" | head -n 1 | tr -cd 0-9); [ -n "$c" ] && [ "$c" -gt 0 ] && [ "$c" -lt 500 ]; }`;
    case 'tcp':
      return `! printf '%s\\n' "$out" | grep -E '^curl: \\([0-9]+\\)' | head -n 1 | grep -qiE "Failed to connect|Couldn't connect|Connection timed out|Connection refused|Could not resolve"`;
  }
}

export interface Verdict {
  ok: boolean;
  detail: string;
}

export interface DnsVerdict extends Verdict {
  /** the response code, when a response came */
  rcode?: string;
  answers: string[];
}

/**
 * A DNS server that responds at all is alive, whatever the code (NOERROR, REFUSED, NXDOMAIN,
 * SERVFAIL); a timeout or an ICMP error (dig's "connection refused") is not. With needAnswer,
 * only NOERROR with answer records passes.
 */
export function judgeDns(raw: string, q: DnsQuestion): DnsVerdict {
  const rcode = /->>HEADER<<-.*status: ([A-Z]+)/.exec(raw)?.[1];
  const answers = raw
    .split('\n')
    .filter((l) => l && !l.startsWith(';'))
    .map((l) => l.trim().split(/\s+/).slice(4).join(' '))
    .filter(Boolean);
  if (!rcode) {
    const err = /communications error to \S+: (.+)/.exec(raw)?.[1]?.trim();
    const why = err === 'connection refused' ? 'connection refused (ICMP port unreachable: nothing listens)' : err ?? (raw.trim().split('\n')[0] || 'dig printed nothing');
    return { ok: false, detail: `no response: ${why}`, answers };
  }
  if (q.needAnswer && (rcode !== 'NOERROR' || answers.length === 0))
    return { ok: false, rcode, detail: `${rcode}${answers.length ? '' : ', no answer records'} for ${q.name} ${q.type} (verify.probe.dns_query needs a real answer)`, answers };
  return { ok: true, rcode, detail: answers.length ? `${rcode}, answer ${answers.join(' ')}` : `${rcode} (the server responded)`, answers };
}

export interface HttpAnswer {
  /** HTTP status, 0 when no response came */
  code: number;
  error: string;
  body: string;
}

export function parseHttp(raw: string): HttpAnswer {
  const [code = '', error = '', ...body] = raw.split('\n');
  return { code: Number(code.trim()) || 0, error: error.trim(), body: body.join('\n') };
}

/** Any HTTP status below 500 is a live server; 5xx or no response is not. */
export function judgeHttp(raw: string): Verdict {
  const a = parseHttp(raw);
  if (a.code === 0) return { ok: false, detail: `no response: ${a.error || 'nothing'}` };
  return a.code < 500 ? { ok: true, detail: `HTTP ${a.code}` } : { ok: false, detail: `HTTP ${a.code}` };
}

export interface TcpAnswer {
  connected: boolean;
  /** what the server sent first, within a second of the connection */
  banner: string;
  error: string;
}

export function parseTcp(raw: string): TcpAnswer {
  const lines = raw.split('\n');
  const errLine = lines.find((l) => /^curl: \(\d+\)/.test(l)) ?? '';
  const banner = lines.filter((l) => l !== errLine).join('\n').trim();
  // after a connection curl's telnet only ever times out ("(28) Time-out"); these come before one
  const failed = /Failed to connect|Couldn't connect|Connection timed out|Connection refused|Could not resolve/i.test(errLine);
  return { connected: !failed, banner, error: errLine.replace(/^curl: \(\d+\) /, '') };
}

export function judgeTcp(raw: string): Verdict {
  const a = parseTcp(raw);
  if (!a.connected) return { ok: false, detail: `no connection: ${a.error}` };
  return { ok: true, detail: a.banner ? `connected, banner ${JSON.stringify(excerpt(a.banner, 60))}` : 'connected' };
}

export function judgeService(kind: Exclude<ServiceCheckKind, 'none'>, raw: string, inv: Inventory): Verdict {
  if (kind === 'dns') return judgeDns(raw, dnsQuestion(inv));
  return kind === 'http' ? judgeHttp(raw) : judgeTcp(raw);
}

const excerpt = (s: string, n: number) => {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > n ? `${one.slice(0, n)}...` : one;
};

/**
 * What stays the same between two answers of the same server: numbers (ports, counters, times)
 * and long hex or base64 runs (request ids, tokens) are masked.
 */
export function answerShape(s: string): string {
  return excerpt(s, 400)
    .replace(/[A-Za-z0-9+/_-]{24,}={0,2}/g, '*')
    .replace(/[0-9a-f]{8,}/gi, '*')
    .replace(/\d+/g, '#');
}

/**
 * The path check's verdict: the answer at the proxy's public address must be one that an
 * upstream gives for the same request (same status, same shape of body). nginx's own answers
 * (a default server's page, another server block, a 502/504 error page) and timeouts fail.
 * `upstreams` are each upstream's direct answer to the same request, by name.
 */
export function judgeHttpPath(via: string, upstreams: [string, string][], target: string, path: string): Verdict {
  const v = parseHttp(via);
  const show = (a: HttpAnswer) => (a.code ? `${a.code} ${JSON.stringify(excerpt(a.body, 60))}` : `no response (${a.error || 'nothing'})`);
  if (v.code === 0) return { ok: false, detail: `${target} gave no response to GET ${path}: ${v.error || 'nothing'}` };
  const direct = upstreams.map(([name, raw]) => [name, parseHttp(raw)] as const).filter(([, a]) => a.code !== 0);
  if (direct.length === 0) return { ok: false, detail: `no upstream answered GET ${path} directly, so nothing proves who answered ${target} (${show(v)})` };
  const shape = (a: HttpAnswer) => `${a.code} ${answerShape(a.body)}`;
  const match = direct.find(([, a]) => shape(a) === shape(v));
  if (match) return { ok: true, detail: `${target} answered GET ${path} like upstream ${match[0]} does: ${show(v)}` };
  const [name, a] = direct[0]!;
  return {
    ok: false,
    detail: `${target} answered GET ${path} with ${show(v)}, which no upstream gives (${name} answers ${show(a)}): something other than the upstreams answers on the service port (another server block or default_server, or nginx's own error)`,
  };
}

/**
 * TCP: nginx accepts every connection itself, so a connection proves nothing; only a banner the
 * upstreams send first can. ok with unproven when they send none.
 */
export function judgeTcpPath(via: string, upstreams: [string, string][], target: string): Verdict & { unproven?: boolean } {
  const v = parseTcp(via);
  if (!v.connected) return { ok: false, detail: `${target}: no connection (${v.error})` };
  const direct = upstreams.map(([name, raw]) => [name, parseTcp(raw)] as const).filter(([, a]) => a.connected && a.banner);
  if (direct.length === 0)
    return { ok: true, unproven: true, detail: `${target} accepts connections, but the upstreams send nothing first (no banner), and nginx accepts connections itself: the path through an upstream is unproven (set verify.probe to prove it)` };
  const match = direct.find(([, a]) => answerShape(a.banner) === answerShape(v.banner));
  if (match) return { ok: true, detail: `${target} sent upstream ${match[0]}'s banner ${JSON.stringify(excerpt(v.banner, 60))}` };
  return { ok: false, detail: `${target} sent ${v.banner ? JSON.stringify(excerpt(v.banner, 60)) : 'nothing'}, not the upstreams' banner ${JSON.stringify(excerpt(direct[0]![1].banner, 60))}` };
}
