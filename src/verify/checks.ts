import { quote } from 'shell-quote';
import type { Inventory } from '../inventory/schema.js';

/** One verification check, as the guide's Troubleshooting would run it by hand. */
export interface Check {
  id: string;
  /** inventory name of the host the check runs on ("probe" for the probe host) */
  host: string;
  kind: 'ping' | 'probe-http' | 'probe-dns' | 'service-http' | 'service-dns';
  target: string;
  description: string;
}

export interface CheckResult extends Check {
  ok: boolean;
  detail: string;
}

/** The probe kind: http for http and tcp services (the lab's and guide's echo server), dns for udp. */
export function probeKind(inv: Inventory): 'http' | 'dns' {
  return inv.verify.probe?.kind ?? (inv.service.protocol === 'udp' ? 'dns' : 'http');
}

/** The checks of an inventory. Pure. */
export function planChecks(inv: Inventory): Check[] {
  const checks: Check[] = [];
  const kind = probeKind(inv);
  for (const u of inv.upstreams) {
    checks.push({ id: `ping-proxy-${u.name}`, host: 'proxy', kind: 'ping', target: u.ip, description: `proxy reaches ${u.name} (${u.ip})` });
    if (inv.verify.upstream_checks)
      checks.push({
        id: `service-${u.name}`,
        host: 'proxy',
        kind: kind === 'dns' ? 'service-dns' : 'service-http',
        target: `${u.ip}:${inv.service.upstream_port}`,
        description: `${u.name}'s service answers the proxy directly (${kind} ${u.ip}:${inv.service.upstream_port}; the active health check)`,
      });
    if (inv.mode !== 'dsr-origin-nat')
      checks.push({ id: `ping-${u.name}-gw`, host: u.name, kind: 'ping', target: inv.proxy.private_ip, description: `${u.name} reaches its gateway, the proxy (${inv.proxy.private_ip})` });
    for (const t of inv.verify.ping_targets)
      checks.push({ id: `ping-${u.name}-${t}`, host: u.name, kind: 'ping', target: t, description: `${u.name} reaches ${t}${inv.mode === 'dsr-origin-nat' ? '' : ' through the proxy'}` });
  }
  const probe = inv.verify.probe;
  if (probe) {
    const target = `${inv.proxy.public_ip}:${inv.service.listen_port}`;
    checks.push(
      kind === 'http'
        ? {
            id: 'probe-http',
            host: 'probe',
            kind: 'probe-http',
            target,
            description: `${probe.requests} HTTP requests from the probe through the proxy${probe.expect_source ? `: every upstream must see the client address ${probe.expect_source}` : ''}`,
          }
        : {
            id: 'probe-dns',
            host: 'probe',
            kind: 'probe-dns',
            target,
            description: `${probe.requests} DNS queries (${probe.dns_query}) from the probe through the proxy: every one answered${inv.mode === 'ip-transparency' ? '' : ', though nginx expects no reply (proxy_responses 0)'}`,
          },
    );
  }
  return checks;
}

const ok = (id: string, detail: string) => `echo ${quote([`@@check ${id} ok ${detail}`])}`;
const fail = (id: string, detail: string) => `echo ${quote([`@@check ${id} fail ${detail}`])}`;

/** One script per host: its checks in parallel, one `@@check ID ok|fail DETAIL` line each. */
export function renderCheckScript(checks: Check[], inv: Inventory): string {
  const t = inv.verify.timeout_seconds;
  const w = Math.max(1, Math.ceil(t));
  const probe = inv.verify.probe;
  const lines = ['#!/bin/sh', 'set -u'];
  for (const c of checks) {
    const [ip, port] = c.target.split(':') as [string, string | undefined];
    switch (c.kind) {
      case 'ping':
        lines.push(
          `( if ping -n -c 1 -W ${w} ${quote([ip])} >/dev/null 2>&1 || ping -n -c 1 -W ${w} ${quote([ip])} >/dev/null 2>&1; then ${ok(c.id, 'reply')}; else ${fail(c.id, `no reply within ${w}s (twice)`)}; fi ) &`,
        );
        break;
      case 'service-http':
        lines.push(
          `( code=$(curl -s -o /dev/null -w '%{http_code}' --max-time ${t} ${quote([`http://${ip}:${port}/`])} 2>/dev/null); case "$code" in 2*|3*|4*) ${ok(c.id, 'HTTP')} "$code" ;; *) ${fail(c.id, 'HTTP')} "$code (no answer within ${t}s)" ;; esac ) &`,
        );
        break;
      case 'service-dns':
        lines.push(
          `( a=$(dig +short +tries=1 +time=${w} -p ${port} ${quote([`@${ip}`, probe?.dns_query ?? 'www.example.com'])} 2>&1 | head -n 3 | tr '\\n' ' '); case "$a" in ''|*timed\\ out*|*error*|*refused*) ${fail(c.id, 'no answer:')} "$a" ;; *) ${ok(c.id, 'answer')} "$a" ;; esac ) &`,
        );
        break;
      case 'probe-http':
        // sequential on purpose: round robin then visits every upstream once per pass
        lines.push(
          `i=0; while [ $i -lt ${probe!.requests} ]; do`,
          `  body=$(curl -sS -f --max-time ${t} ${quote([`http://${ip}:${port}/`])} 2>&1 | head -c 300 | tr '\\n' ' ')`,
          `  echo "@@probe $body"; i=$((i+1))`,
          'done',
        );
        break;
      case 'probe-dns':
        lines.push(
          `i=0; while [ $i -lt ${probe!.requests} ]; do`,
          `  a=$(dig +short +tries=1 +time=${w} -p ${port} ${quote([`@${ip}`, probe!.dns_query])} 2>&1 | head -n 3 | tr '\\n' ' ')`,
          `  echo "@@probe $a"; i=$((i+1))`,
          'done',
        );
        break;
    }
  }
  lines.push('wait', '');
  return lines.join('\n');
}

/** Pure: the script's output -> a result for every check (a check with no line failed). */
export function parseCheckOutput(checks: Check[], stdout: string, inv: Inventory): CheckResult[] {
  const seen = new Map<string, { ok: boolean; detail: string }>();
  const probes: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^@@check (\S+) (ok|fail) ?(.*)$/.exec(line);
    if (m) seen.set(m[1]!, { ok: m[2] === 'ok', detail: (m[3] ?? '').trim() });
    else if (line.startsWith('@@probe')) probes.push(line.slice(7).trim());
  }
  return checks.map((c) => {
    if (c.kind === 'probe-http') return { ...c, ...judgeHttpProbe(probes, inv) };
    if (c.kind === 'probe-dns') return { ...c, ...judgeDnsProbe(probes) };
    return { ...c, ...(seen.get(c.id) ?? { ok: false, detail: 'no result (the check did not run)' }) };
  });
}

const HELLO = /You connected from ([0-9.]+):\d+ to ([0-9.]+):\d+/;

/** The guide's test: the upstream reports the client's address, not the proxy's. */
export function judgeHttpProbe(bodies: string[], inv: Inventory): { ok: boolean; detail: string } {
  const expect = inv.verify.probe?.expect_source;
  if (bodies.length === 0) return { ok: false, detail: 'no response' };
  const detail = bodies.map((b) => b.replace(/\s+$/, '')).join(' | ');
  // without an expected address: every request must succeed (curl -f: no 4xx/5xx, e.g. nginx's 502
  // when the transparent bind fails), and an upstream that echoes must not see the proxy itself
  const proxyIps = [inv.proxy.private_ip, inv.proxy.public_ip];
  const bad = expect
    ? bodies.filter((b) => HELLO.exec(b)?.[1] !== expect)
    : bodies.filter((b) => b === '' || /^curl: /.test(b) || proxyIps.includes(HELLO.exec(b)?.[1] ?? ''));
  if (bad.length) return { ok: false, detail: `${bad.length} of ${bodies.length} responses ${expect ? `did not come from ${expect}` : 'failed'}: ${detail}` };
  return { ok: true, detail };
}

/** DSR's proof: answers arrive although nginx expects none; they come from the upstreams in turn. */
export function judgeDnsProbe(answers: string[]): { ok: boolean; detail: string } {
  if (answers.length === 0) return { ok: false, detail: 'no query ran' };
  const bad = answers.filter((a) => a === '' || /timed out|no servers|error|refused|;;/.test(a));
  const distinct = [...new Set(answers.filter((a) => !bad.includes(a)))];
  const detail = `answers: ${answers.map((a) => a || '(none)').join(' | ')}`;
  if (bad.length) return { ok: false, detail: `${bad.length} of ${answers.length} queries got no answer; ${detail}` };
  return { ok: true, detail: `${distinct.length} distinct answer(s); ${detail}` };
}
