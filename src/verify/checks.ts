import { quote } from 'shell-quote';
import { randomBytes } from 'node:crypto';
import type { Inventory } from '../inventory/schema.js';
import {
  chooseServiceCheck,
  describeDns,
  describeServiceCheck,
  dnsQuestion,
  judgeDns,
  judgeHttpPath,
  judgeService,
  judgeTcpPath,
  parseRaw,
  pathCheckPath,
  renderServiceProbe,
  type DnsQuestion,
  type ServiceCheckKind,
} from './service-check.js';
import { healthSettings, HEALTH_PID, HEALTH_STATE } from '../health/settings.js';
import { describeDown, parseHealthState } from '../health/script.js';

/** One verification check, as the guide's Troubleshooting would run it by hand. */
export interface Check {
  id: string;
  /** inventory name of the host the check runs on ("probe" for the probe host, "none" for a note that runs nothing) */
  host: string;
  kind: 'health' | 'ping' | 'probe-http' | 'probe-dns' | 'service-http' | 'service-dns' | 'service-tcp' | 'path-http' | 'path-dns' | 'path-tcp' | 'note';
  target: string;
  description: string;
}

export interface CheckResult extends Check {
  ok: boolean;
  detail: string;
  /** passed without proving anything (a note: no check fits, or the path is unproven) */
  unproven?: boolean;
}

/** The probe kind: dns when the service check speaks DNS (or the service is udp), else http. */
export function probeKind(inv: Inventory): 'http' | 'dns' {
  return inv.verify.probe?.kind ?? (inv.service.protocol === 'udp' || chooseServiceCheck(inv).kind === 'dns' ? 'dns' : 'http');
}

/** The checks of an inventory. Pure. */
export function planChecks(inv: Inventory): Check[] {
  const checks: Check[] = [];
  const kind = probeKind(inv);
  const svc = chooseServiceCheck(inv);
  const q = dnsQuestion(inv);
  if (inv.verify.upstream_checks && svc.kind === 'none')
    checks.push({ id: 'service-none', host: 'none', kind: 'note', target: '', description: `no service check of the upstreams (${svc.reason}); pings only` });
  for (const u of inv.upstreams) {
    checks.push({ id: `ping-proxy-${u.name}`, host: 'proxy', kind: 'ping', target: u.ip, description: `proxy reaches ${u.name} (${u.ip})` });
    if (inv.verify.upstream_checks && svc.kind !== 'none')
      checks.push({
        id: `service-${u.name}`,
        host: 'proxy',
        kind: `service-${svc.kind}`,
        target: `${u.ip}:${inv.service.upstream_port}`,
        description: `${u.name}'s service answers the proxy directly (${describeServiceCheck(svc.kind, inv, `${u.ip}:${inv.service.upstream_port}`)}; ${svc.reason})`,
      });
    if (inv.mode !== 'dsr-origin-nat')
      checks.push({ id: `ping-${u.name}-gw`, host: u.name, kind: 'ping', target: inv.proxy.private_ip, description: `${u.name} reaches its gateway, the proxy (${inv.proxy.private_ip})` });
    for (const t of inv.verify.ping_targets)
      checks.push({ id: `ping-${u.name}-${t}`, host: u.name, kind: 'ping', target: t, description: `${u.name} reaches ${t}${inv.mode === 'dsr-origin-nat' ? '' : ' through the proxy'}` });
  }
  const hs = healthSettings(inv);
  if (hs.enabled)
    checks.push({ id: 'health-checker', host: 'proxy', kind: 'health', target: '', description: `the health checker runs on the proxy (every ${hs.interval} s; down after ${hs.fails} failed, back after ${hs.passes} passed check(s))` });
  const probe = inv.verify.probe;
  const target = `${inv.proxy.public_ip}:${inv.service.listen_port}`;
  if (probe) {
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
            description: `${probe.requests} DNS queries (${describeDns(q)}) from the probe through the proxy: every one answered${inv.mode === 'ip-transparency' ? '' : ', though nginx expects no reply (proxy_responses 0)'}`,
          },
    );
  } else checks.push(pathCheck(inv, svc.kind, target, q));
  return checks;
}

/** Without a probe host: what can prove that a client on the service port reaches an upstream. */
function pathCheck(inv: Inventory, svc: ServiceCheckKind, target: string, q: DnsQuestion): Check {
  const note = (why: string): Check => ({ id: 'path', host: 'none', kind: 'note', target, description: `end-to-end path unproven: ${why}` });
  if (inv.mode !== 'ip-transparency')
    return note(`no verify.probe, and the proxy cannot ask itself through DSR (a reply to its own address is delivered locally in router NAT and dropped as a martian in origin NAT); set verify.probe to a host that plays the client`);
  if (!inv.verify.path_check) return note('verify.path_check is false and there is no verify.probe');
  if (svc === 'none') return note(`no verify.probe, and no check speaks this service (${chooseServiceCheck(inv).reason})`);
  if (svc === 'dns')
    return { id: 'path', host: 'proxy', kind: 'path-dns', target, description: `an upstream answers DNS at the proxy's own public address ${target} (${describeDns(q)}; nginx never answers DNS itself)` };
  if (svc === 'http')
    return { id: 'path', host: 'proxy', kind: 'path-http', target, description: `an upstream answers the proxy's own public address ${target} (GET ${pathCheckPath('<nonce>')} must get what the upstreams answer directly)` };
  return { id: 'path', host: 'proxy', kind: 'path-tcp', target, description: `the proxy's own public address ${target} reaches an upstream (it must send the upstreams' banner, if they send one)` };
}

/** Plan's account of what verification will check and what it cannot. */
export function describeVerification(inv: Inventory): string[] {
  const svc = chooseServiceCheck(inv);
  const lines = [`service check: ${svc.kind} (${svc.reason})${svc.kind === 'dns' ? `: ${describeDns(dnsQuestion(inv))}` : ''}${inv.verify.upstream_checks ? '' : '; verify.upstream_checks is false: not run against each upstream'}`];
  const checks = planChecks(inv);
  const path = checks.find((c) => c.id === 'path' || c.host === 'probe');
  if (path) lines.push(path.kind === 'note' ? path.description : `end to end: ${path.description}`);
  return lines;
}

const ok = (id: string, detail: string) => `echo ${quote([`@@check ${id} ok ${detail}`])}`;
const fail = (id: string, detail: string) => `echo ${quote([`@@check ${id} fail ${detail}`])}`;

/**
 * raw ID: "$out" as one `@@raw ID BASE64` line (renderServiceProbe). base64 -w0 where it exists:
 * one process less per check than `base64 | tr -d '\n'`, which the proxy runs twice per upstream.
 */
const RAW_HELPER = String.raw`if base64 -w0 </dev/null >/dev/null 2>&1; then
  raw() { printf '@@raw %s %s\n' "$1" "$(printf '%s' "$out" | base64 -w0)"; }
else
  raw() { printf '@@raw %s %s\n' "$1" "$(printf '%s' "$out" | base64 | tr -d '\n')"; }
fi`;

/** One script per host: its checks in parallel, one `@@check ID ok|fail DETAIL` or `@@raw ID BASE64` line each. */
export function renderCheckScript(checks: Check[], inv: Inventory, nonce = randomBytes(8).toString('hex')): string {
  const t = inv.verify.timeout_seconds;
  const w = Math.max(1, Math.ceil(t));
  const probe = inv.verify.probe;
  const lines = ['#!/bin/sh', 'set -u', RAW_HELPER];
  // HTTP probes keep their answers in one private directory of the script's (checkHttpCommand)
  let files = 0;
  const file = (kind: string) => (kind === 'http' ? `"$ck"/${++files}` : undefined);
  for (const c of checks) {
    const [ip = '', portText = ''] = c.target.split(':');
    const port = Number(portText);
    switch (c.kind) {
      case 'ping':
        lines.push(
          `( if ping -n -c 1 -W ${w} ${quote([ip])} >/dev/null 2>&1 || ping -n -c 1 -W ${w} ${quote([ip])} >/dev/null 2>&1; then ${ok(c.id, 'reply')}; else ${fail(c.id, `no reply within ${w}s (twice)`)}; fi ) &`,
        );
        break;
      case 'service-http':
      case 'service-dns':
      case 'service-tcp':
        lines.push(`( ${renderServiceProbe(c.id, c.kind.slice(8) as 'http' | 'dns' | 'tcp', ip, port, inv, '/', file(c.kind.slice(8)))} ) &`);
        break;
      case 'path-dns':
        lines.push(`( ${renderServiceProbe(c.id, 'dns', ip, port, inv)} ) &`);
        break;
      case 'path-http':
      case 'path-tcp': {
        // the upstreams' own answers to the same request first, then the one at the public address
        const k = c.kind === 'path-http' ? 'http' : 'tcp';
        const path = pathCheckPath(nonce);
        const steps = inv.upstreams.map((u) => renderServiceProbe(`${c.id}#${u.name}`, k, u.ip, inv.service.upstream_port, inv, path, file(k)));
        lines.push(`( ${[...steps, renderServiceProbe(c.id, k, ip, port, inv, path, file(k))].join('; ')} ) &`);
        lines.push(`echo ${quote([`@@nonce ${nonce}`])}`);
        break;
      }
      case 'probe-http':
        // sequential on purpose: round robin then visits every upstream once per pass
        lines.push(
          `i=0; while [ $i -lt ${probe!.requests} ]; do`,
          `  body=$(curl -sS -f --max-time ${t} ${quote([`http://${ip}:${port}/`])} 2>&1 | head -c 300 | tr '\n' ' ')`,
          `  echo "@@probe $body"; i=$((i+1))`,
          'done',
        );
        break;
      case 'probe-dns':
        // sequential, like the HTTP probe
        for (let i = 0; i < probe!.requests; i++) lines.push(renderServiceProbe(`${c.id}#${i}`, 'dns', ip, port, inv));
        break;
      case 'health':
        // one read of the state file, and whether the pid it recorded runs the checker
        lines.push(
          `p=$(cat ${quote([HEALTH_PID])} 2>/dev/null | tr -cd 0-9); a=0; [ -n "$p" ] && [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ] && tr '\\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q 'dsrctl/health/check\\.sh' && a=1`,
          `printf '@@raw %s %s\\n' ${quote([`${c.id}#pid`])} "$(printf '%s %s' "$a" "$p" | base64 | tr -d '\\n')"`,
          `printf '@@raw %s %s\\n' ${quote([c.id])} "$(cat ${quote([HEALTH_STATE])} 2>/dev/null | base64 | tr -d '\\n')"`,
        );
        break;
      case 'note':
        break;
    }
  }
  if (files) {
    lines.splice(3, 0, 'ck=$(mktemp -d) || exit 1');
    lines.push('wait', 'rm -rf "$ck"', '');
  } else lines.push('wait', '');
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
  const raw = parseRaw(stdout);
  const nonce = /^@@nonce (\S+)$/m.exec(stdout)?.[1] ?? '';
  const missing = { ok: false, detail: 'no result (the check did not run)' };
  const upstreamRaws = (id: string) => inv.upstreams.map((u) => [u.name, raw.get(`${id}#${u.name}`) ?? ''] as [string, string]);
  return checks.map((c): CheckResult => {
    switch (c.kind) {
      case 'probe-http':
        return { ...c, ...judgeHttpProbe(probes, inv) };
      case 'probe-dns': {
        const answers = [...raw].filter(([id]) => id.startsWith(`${c.id}#`)).map(([, r]) => r);
        return { ...c, ...judgeDnsProbe(answers, dnsQuestion(inv)) };
      }
      case 'service-http':
      case 'service-dns':
      case 'service-tcp': {
        const r = raw.get(c.id);
        return { ...c, ...(r === undefined ? missing : judgeService(c.kind.slice(8) as 'http' | 'dns' | 'tcp', r, inv)) };
      }
      case 'path-dns': {
        const r = raw.get(c.id);
        return { ...c, ...(r === undefined ? missing : judgeDns(r, dnsQuestion(inv))) };
      }
      case 'path-http': {
        const r = raw.get(c.id);
        return { ...c, ...(r === undefined ? missing : judgeHttpPath(r, upstreamRaws(c.id), c.target, pathCheckPath(nonce))) };
      }
      case 'path-tcp': {
        const r = raw.get(c.id);
        return { ...c, ...(r === undefined ? missing : judgeTcpPath(r, upstreamRaws(c.id), c.target)) };
      }
      case 'health':
        return { ...c, ...judgeHealth(raw.get(`${c.id}#pid`) ?? '', raw.get(c.id) ?? '') };
      case 'note':
        return { ...c, ok: true, unproven: true, detail: '' };
      default:
        return { ...c, ...(seen.get(c.id) ?? missing) };
    }
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

/** DSR's proof: responses arrive although nginx expects none (and nginx never answers DNS itself). */
export function judgeDnsProbe(raws: string[], q: DnsQuestion): { ok: boolean; detail: string } {
  if (raws.length === 0) return { ok: false, detail: 'no query ran' };
  const verdicts = raws.map((r) => judgeDns(r, q));
  const bad = verdicts.filter((v) => !v.ok);
  const detail = verdicts.map((v) => (v.ok ? (v.answers.length ? v.answers.join(' ') : v.rcode) : v.detail)).join(' | ');
  if (bad.length) return { ok: false, detail: `${bad.length} of ${raws.length} queries failed: ${detail}` };
  return { ok: true, detail: `${raws.length} of ${raws.length} answered: ${detail}` };
}

/** The checker runs (its recorded pid runs its script); the detail names the upstreams it has taken out. */
export function judgeHealth(pidRaw: string, stateRaw: string): { ok: boolean; detail: string } {
  const [alive, pid] = pidRaw.trim().split(' ');
  const state = parseHealthState(stateRaw);
  if (alive !== '1') return { ok: false, detail: `not running (${pid ? `pid ${pid} is gone` : 'no pid file'}): run dsrctl apply to start it again` };
  if (!state) return { ok: true, detail: `running (pid ${pid}), no round finished yet (it waits while dsrctl holds the lock)` };
  const down = describeDown(state, null);
  return { ok: true, detail: `running (pid ${pid}); ${down.length ? `out of rotation: ${down.join('; ')}` : `all ${state.upstreams.length} upstreams in rotation`}` };
}
