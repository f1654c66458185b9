import { quote } from 'shell-quote';
import type { Inventory } from '../inventory/schema.js';

/** One verification check, as the guide's Troubleshooting would run it by hand. */
export interface Check {
  id: string;
  /** inventory name of the host the check runs on */
  host: string;
  kind: 'ping' | 'probe';
  target: string;
  description: string;
}

export interface CheckResult extends Check {
  ok: boolean;
  detail: string;
}

function pingLine(id: string, ip: string, timeout: number): string {
  const w = Math.max(1, Math.ceil(timeout));
  return `( if ping -n -c 1 -W ${w} ${quote([ip])} >/dev/null 2>&1 || ping -n -c 1 -W ${w} ${quote([ip])} >/dev/null 2>&1; then echo ${quote([`@@check ${id} ok reply`])}; else echo ${quote([`@@check ${id} fail no reply within ${w}s (twice)`])}; fi ) &`;
}

/** The checks of an inventory, grouped by the host that runs them. Pure. */
export function planChecks(inv: Inventory): Check[] {
  const checks: Check[] = [];
  for (const u of inv.upstreams) {
    checks.push({ id: `ping-proxy-${u.name}`, host: 'proxy', kind: 'ping', target: u.ip, description: `proxy reaches ${u.name} (${u.ip})` });
    checks.push({ id: `ping-${u.name}-gw`, host: u.name, kind: 'ping', target: inv.proxy.private_ip, description: `${u.name} reaches its gateway, the proxy (${inv.proxy.private_ip})` });
    for (const t of inv.verify.ping_targets)
      checks.push({ id: `ping-${u.name}-${t}`, host: u.name, kind: 'ping', target: t, description: `${u.name} reaches ${t} through the proxy` });
  }
  const probe = inv.verify.probe;
  if (probe && inv.service.protocol === 'http')
    checks.push({
      id: 'probe-http',
      host: 'probe',
      kind: 'probe',
      target: `${inv.proxy.public_ip}:${inv.service.listen_port}`,
      description: `${probe.requests} HTTP requests from the probe through the proxy: every upstream must see the client address ${probe.expect_source}`,
    });
  return checks;
}

/** One script per host: all its checks in parallel, one `@@check ID ok|fail DETAIL` line each. */
export function renderCheckScript(checks: Check[], inv: Inventory): string {
  const t = inv.verify.timeout_seconds;
  const lines = ['#!/bin/sh', 'set -u'];
  for (const c of checks) {
    if (c.kind === 'ping') lines.push(pingLine(c.id, c.target, t));
    else if (c.id === 'probe-http') {
      const probe = inv.verify.probe!;
      const url = `http://${inv.proxy.public_ip}:${inv.service.listen_port}/`;
      // sequential on purpose: round robin then visits every upstream once per pass
      lines.push(
        `i=0; while [ $i -lt ${probe.requests} ]; do`,
        `  body=$(curl -sS --max-time ${t} ${quote([url])} 2>&1 | head -c 300 | tr '\\n' ' ')`,
        `  echo "@@probe $body"; i=$((i+1))`,
        'done',
      );
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
    if (m) seen.set(m[1]!, { ok: m[2] === 'ok', detail: m[3] ?? '' });
    else if (line.startsWith('@@probe ')) probes.push(line.slice(8).trim());
  }
  return checks.map((c) => {
    if (c.kind === 'probe') return { ...c, ...judgeHttpProbe(probes, inv) };
    return { ...c, ...(seen.get(c.id) ?? { ok: false, detail: 'no result (the check did not run)' }) };
  });
}

const HELLO = /You connected from ([0-9.]+):\d+ to ([0-9.]+):\d+/;

/** The guide's test: the upstream reports the client's address, not the proxy's. */
export function judgeHttpProbe(bodies: string[], inv: Inventory): { ok: boolean; detail: string } {
  const expect = inv.verify.probe!.expect_source;
  if (bodies.length === 0) return { ok: false, detail: 'no response' };
  const bad = bodies.filter((b) => HELLO.exec(b)?.[1] !== expect);
  const detail = bodies.map((b) => b.replace(/\s+$/, '')).join(' | ');
  if (bad.length) return { ok: false, detail: `${bad.length} of ${bodies.length} responses did not come from ${expect}: ${detail}` };
  return { ok: true, detail };
}
