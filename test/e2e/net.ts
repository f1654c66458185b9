/**
 * Packet-level helpers for the e2e files: the lab's addresses, DNS and HTTP requests from the
 * client, and tcpdump captures inside lab hosts. Built on harness.ts's onHost; nothing here changes
 * a host's network state (a capture is a process writing to the host's private /tmp).
 */
import { quote } from 'shell-quote';
import { onHost } from './harness.js';

export const PROXY_PUBLIC = '192.168.99.10';
export const CLIENT_IP = '192.168.99.1';
export const PROXY_PRIVATE = '172.16.0.1';
export const UPSTREAM_IPS = ['172.16.0.11', '172.16.0.12', '172.16.0.13', '172.16.0.14'];

export interface DigRun {
  /** per query: its one answer (an IPv4 address) or undefined when it got none */
  answers: (string | undefined)[];
  /** per query: everything dig printed (stdout and stderr) */
  outputs: string[];
  raw: string;
}

/**
 * `n` queries from the client in one exec, one after the other (round robin then visits every
 * upstream): `dig +short +tries=1 +time=2`. A query counts as answered only when dig printed
 * exactly one line and it is an IPv4 address: a warning such as "reply from unexpected source"
 * makes it unanswered.
 */
export function digs(n = 8, opts: { port?: number; server?: string; name?: string } = {}): DigRun {
  const args = ['+short', '+tries=1', '+time=2', '-p', String(opts.port ?? 53), `@${opts.server ?? PROXY_PUBLIC}`, opts.name ?? 'www.example.com'];
  const r = onHost('client', `for i in $(seq ${n}); do echo @@query; dig ${quote(args)} 2>&1; done`);
  const raw = r.stdout + r.stderr;
  const outputs = raw.split('@@query\n').slice(1);
  const answers = outputs.map((o) => {
    const lines = o.split('\n').filter((l) => l.trim() !== '');
    return lines.length === 1 && /^\d+\.\d+\.\d+\.\d+$/.test(lines[0]!.trim()) ? lines[0]!.trim() : undefined;
  });
  return { answers, outputs, raw };
}

/** `n` HTTP requests from the client in one exec (`url`: the proxy's port 80 by default): who answered and whom they saw. */
export function hello(n = 4, url = `http://${PROXY_PUBLIC}/`): { names: string[]; sources: string[]; raw: string } {
  const r = onHost('client', `for i in $(seq ${n}); do curl -sS --max-time 3 ${url} || echo "curl failed"; done`);
  const raw = r.stdout + r.stderr;
  return { names: [...raw.matchAll(/Hello from ([^.\s]+)\./g)].map((m) => m[1]!), sources: [...raw.matchAll(/You connected from ([0-9.]+):/g)].map((m) => m[1]!), raw };
}

/** One full (not +short) dig from the client: what a person reads to see that nothing is odd. */
export function digFull(opts: { port?: number; server?: string; name?: string } = {}): { code: number; out: string } {
  const args = ['+tries=1', '+time=2', '-p', String(opts.port ?? 53), `@${opts.server ?? PROXY_PUBLIC}`, opts.name ?? 'www.example.com'];
  const r = onHost('client', ['dig', ...args]);
  return { code: r.code, out: r.stdout + r.stderr };
}

/**
 * Start tcpdump in the background inside `host` (-n -l, not promiscuous), writing to the host's
 * own /tmp; resolves once tcpdump says it is listening. `timeout` bounds it in case the test
 * never stops it (lab.sh down kills whatever is left in the namespaces anyway).
 */
export function startCapture(host: string, filter: string, opts: { iface?: string; name?: string; maxSeconds?: number } = {}): void {
  const name = opts.name ?? 'cap';
  const out = `/tmp/dsrctl-e2e-${name}.out`;
  const pid = `/tmp/dsrctl-e2e-${name}.pid`;
  const script = [
    `rm -f ${out} ${pid}`,
    `timeout ${opts.maxSeconds ?? 60} tcpdump -p -n -l -i ${quote([opts.iface ?? 'any'])} ${quote([filter])} >${out} 2>&1 </dev/null &`,
    `echo $! >${pid}`,
    `for i in $(seq 50); do grep -q 'listening on' ${out} 2>/dev/null && exit 0; sleep 0.1; done`,
    `cat ${out}; exit 1`,
  ].join('\n');
  const r = onHost(host, script);
  if (r.code !== 0) throw new Error(`tcpdump on ${host} did not start: ${r.stdout}${r.stderr}`);
}

/** Stop a capture (SIGINT, so tcpdump flushes) and return the packet lines it printed. */
export function stopCapture(host: string, opts: { name?: string } = {}): { packets: string[]; raw: string } {
  const name = opts.name ?? 'cap';
  const out = `/tmp/dsrctl-e2e-${name}.out`;
  const pid = `/tmp/dsrctl-e2e-${name}.pid`;
  const script = [
    'sleep 0.3', // let the last packets reach the capture
    `p=$(cat ${pid} 2>/dev/null)`,
    // $p is timeout's PID: it passes SIGINT on to tcpdump
    `[ -n "$p" ] && kill -INT "$p" 2>/dev/null`,
    `for i in $(seq 30); do [ -n "$p" ] && kill -0 "$p" 2>/dev/null || break; sleep 0.1; done`,
    `cat ${out}; rm -f ${out} ${pid}`,
  ].join('\n');
  const r = onHost(host, script);
  const raw = r.stdout + r.stderr;
  return { packets: raw.split('\n').filter((l) => /^\d\d:\d\d:\d\d\.\d+ /.test(l)), raw };
}
