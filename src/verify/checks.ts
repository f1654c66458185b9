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
  pathCheckPath,
  type DnsQuestion,
  type ServiceCheckKind,
} from './service-check.js';
import { healthSettings } from '../health/settings.js';
import { httpCheckRaw, parseScriptOutput, probeHttpText } from './check-output.js';
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

/** Pure: the script's output (check-script.ts) -> a result for every check (a check with no answer failed). */
export function parseCheckOutput(checks: Check[], stdout: string, inv: Inventory): CheckResult[] {
  const out = parseScriptOutput(stdout);
  // a check's answer as its one-request command prints it: from curl's batch line (and the
  // body it kept) or the file its tool wrote, else the fallback's @@raw
  const answer = (id: string): string | undefined => {
    const h = out.http.get(id);
    if (h) return httpCheckRaw(h, out.files.get(id));
    return out.files.get(id)?.toString('utf8') ?? out.raw.get(id);
  };
  const missing = { ok: false, detail: 'no result (the check did not run)' };
  const upstreamRaws = (id: string) => inv.upstreams.map((u) => [u.name, answer(`${id}#${u.name}`) ?? ''] as [string, string]);
  const numbered = (id: string) => {
    const n = inv.verify.probe?.requests ?? 0;
    return Array.from({ length: n }, (_, i) => `${id}#${i}`);
  };
  return checks.map((c): CheckResult => {
    const r = answer(c.id);
    switch (c.kind) {
      case 'probe-http': {
        const batch = numbered(c.id).filter((id) => out.http.has(id));
        const bodies = batch.length ? batch.map((id) => probeHttpText(out.http.get(id)!, out.files.get(id))) : out.probes;
        return { ...c, ...judgeHttpProbe(bodies, inv) };
      }
      case 'probe-dns': {
        const answers = numbered(c.id).map(answer).filter((a): a is string => a !== undefined);
        return { ...c, ...judgeDnsProbe(answers, dnsQuestion(inv)) };
      }
      case 'service-http':
      case 'service-dns':
      case 'service-tcp':
        return { ...c, ...(r === undefined ? missing : judgeService(c.kind.slice(8) as 'http' | 'dns' | 'tcp', r, inv)) };
      case 'path-dns':
        return { ...c, ...(r === undefined ? missing : judgeDns(r, dnsQuestion(inv))) };
      case 'path-http':
        return { ...c, ...(r === undefined ? missing : judgeHttpPath(r, upstreamRaws(c.id), c.target, pathCheckPath(out.nonce))) };
      case 'path-tcp':
        return { ...c, ...(r === undefined ? missing : judgeTcpPath(r, upstreamRaws(c.id), c.target)) };
      case 'health':
        return { ...c, ...judgeHealth(out.raw.get(`${c.id}#pid`) ?? '', r ?? '') };
      case 'note':
        return { ...c, ok: true, unproven: true, detail: '' };
      default:
        return { ...c, ...(out.checks.get(c.id) ?? missing) };
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
