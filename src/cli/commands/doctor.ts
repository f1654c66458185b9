import { Listr } from 'listr2';
import type { GlobalOptions } from '../progress.js';
import { listrOptions, listrRunner } from '../progress.js';
import { connectAndPlan } from '../../engine/prepare.js';
import { closeAll } from '../../engine/hosts.js';
import { connect } from '../../ssh/session.js';
import { probeTarget } from '../../ssh/targets.js';
import type { ConnectTarget, HostSession } from '../../ssh/types.js';
import { randomBytes } from 'node:crypto';
import type { Inventory } from '../../inventory/schema.js';
import { bold, dim, green, red, yellow } from '../output.js';
import { EXIT, UserError } from '../../util/errors.js';
import { collectDoctor, doctorRequest } from '../../doctor/collect.js';
import { diagnose, type HostEvidence } from '../../doctor/findings.js';
import { formatFindings } from '../../doctor/report.js';
import { buildCaptureScript, buildReadyScript, buildStopScript, captureFilter, captureNotes, formatTimeline, mergeTimeline, parseCaptureOutput, parseReady, type HostCapture } from '../../doctor/capture.js';
import type { Finding } from '../../doctor/types.js';
import { print, printErr, safeError } from '../terminal.js';
import { writeReport } from '../report.js';

export interface DoctorOptions extends GlobalOptions {
  capture?: string | boolean;
}

export const DEFAULT_CAPTURE_SECONDS = 5;

export function captureSeconds(v: string | boolean | undefined): number | undefined {
  if (v === undefined || v === false) return undefined;
  if (v === true) return DEFAULT_CAPTURE_SECONDS;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 600) throw new UserError(`--capture: expected a number of seconds from 1 to 600, got "${v}"`);
  return Number(v);
}

/** How a user makes traffic the capture can see. */
function trafficHint(inv: Inventory): string {
  const { protocol, listen_port } = inv.service;
  const ip = inv.proxy.public_ip;
  if (protocol === 'udp') return `dig +short -p ${listen_port} @${ip} ${inv.verify.probe?.dns_query ?? 'www.example.com'}`;
  if (protocol === 'http') return `curl http://${ip}${listen_port === 80 ? '' : `:${listen_port}`}/`;
  return `nc -z ${ip} ${listen_port}`;
}

interface CaptureResult {
  seconds: number;
  filter: string;
  hosts: HostCapture[];
}

/** tcpdump gives up by itself after this long, should dsrctl vanish before it stops it */
const CAPTURE_SAFETY_SECONDS = 30;
/** how long a host's tcpdump may take to start listening */
const READY_WAIT_SECONDS = 10;

interface CaptureHost {
  name: string;
  target: ConnectTarget;
  /** the host's open session: readiness poll and stop */
  control: HostSession;
}

/**
 * tcpdump on every host at once, each on a second SSH connection, while the first one waits until
 * it listens. Once every host listens the user is told to send traffic; N seconds later every
 * tcpdump is stopped and the lines merged.
 */
async function runCapture(inv: Inventory, hosts: CaptureHost[], unreachable: Map<string, string>, seconds: number, say: (s: string) => void): Promise<CaptureResult> {
  const filter = captureFilter(inv);
  // one token per host: hosts that share a PID namespace (containers, the lab) must not find each other's tcpdump
  const run = randomBytes(6).toString('hex');
  const tokenOf = (i: number) => `${run}h${i}`;
  const maxSeconds = seconds + READY_WAIT_SECONDS + CAPTURE_SAFETY_SECONDS;
  say(`capture: tcpdump -i any on ${hosts.map((h) => h.name).join(', ')}; filter: ${filter}`);
  const extra: HostSession[] = [];
  try {
    const runs = hosts.map((h, i) => {
      const token = tokenOf(i);
      const capture = connect(h.target).then(
        (s) => {
          extra.push(s);
          return s.exec(buildCaptureScript(maxSeconds, filter, token), { timeoutMs: (seconds + READY_WAIT_SECONDS + CAPTURE_SAFETY_SECONDS + 10) * 1000 }).then(
            (r) => parseCaptureOutput(h.name, r.stdout),
            (e: Error): HostCapture => ({ host: h.name, status: 'failed', packets: [], messages: [], note: e.message }),
          );
        },
        (e: Error): HostCapture => ({ host: h.name, status: 'failed', packets: [], messages: [], note: `second connection for tcpdump failed: ${e.message}` }),
      );
      // ready when tcpdump holds its packet socket; a capture that already ended will not get ready
      const ready = Promise.race([
        h.control.exec(buildReadyScript(token, READY_WAIT_SECONDS), { timeoutMs: (READY_WAIT_SECONDS + 10) * 1000 }).then(
          (r) => parseReady(r.stdout),
          (e: Error) => ({ ready: false, why: e.message }) as ReturnType<typeof parseReady>,
        ),
        capture.then(() => ({ ready: false, why: 'tcpdump ended before it listened' }) as ReturnType<typeof parseReady>),
      ]);
      return { h, capture, ready };
    });
    const readiness = await Promise.all(runs.map((r) => r.ready));
    const listening = runs.filter((_, i) => readiness[i]!.ready).map((r) => r.h.name);
    const late = runs.flatMap((r, i) => (readiness[i]!.ready ? [] : [`${r.h.name}: ${readiness[i]!.why ?? 'not listening'}`]));
    say(
      listening.length
        ? `capturing now on ${listening.join(', ')}${late.length ? ` (not on ${late.join(', ')})` : ''}: send traffic through the proxy within ${seconds} s (e.g. ${trafficHint(inv)} from a client)`
        : `no host is capturing${late.length ? `: ${late.join(', ')}` : ''}`,
    );
    if (listening.length) await new Promise((r) => setTimeout(r, seconds * 1000));
    await Promise.all(hosts.map((h, i) => h.control.exec(buildStopScript(tokenOf(i)), { timeoutMs: 15_000 }).catch(() => undefined)));
    const out = await Promise.all(runs.map((r) => r.capture));
    out.forEach((c, i) => {
      const at = readiness[i]!.at;
      if (at !== undefined) c.listeningAt = at;
    });
    for (const [name, why] of unreachable) out.push({ host: name, status: 'failed', packets: [], messages: [], note: `not connected: ${why}` });
    return { seconds, filter, hosts: out };
  } finally {
    await Promise.allSettled(extra.map((s) => s.close()));
  }
}

/** `dsrctl doctor -i FILE [--capture SECONDS]`: the guide's Troubleshooting, automated and read-only. */
export async function doctorCommand(file: string, opts: DoctorOptions): Promise<number> {
  const seconds = captureSeconds(opts.capture);
  // read-only: facts without the run lock, no plan, no journal
  const prep = await connectAndPlan(file, listrRunner(opts), false);
  const { inv } = prep;
  let probe: HostSession | undefined;
  try {
    const evidence: HostEvidence[] = prep.hosts.map((h) => ({ name: h.target.name, role: h.target.role, ...(h.target.upstream ? { upstream: h.target.upstream } : {}) }));
    await new Listr(
      prep.hosts.map((h, i) => ({
        title: `${h.target.name}: read-only checks`,
        task: async () => {
          const ev = evidence[i]!;
          const err = prep.errors.get(h.target.name);
          if (err || !h.session || !h.facts) {
            ev.error = err?.message ?? 'not connected';
            throw safeError(new Error(ev.error));
          }
          ev.facts = h.facts;
          try {
            ev.doctor = await collectDoctor(h.session, doctorRequest(inv, h.target.role, h.facts));
          } catch (e) {
            ev.error = (e as Error).message;
            throw safeError(e);
          }
        },
      })),
      { concurrent: true, exitOnError: false, ...listrOptions(opts), collectErrors: false },
    ).run();
    const findings = diagnose(inv, evidence);
    const hasError = findings.some((f) => f.severity === 'error');
    const hostOrder = prep.hosts.map((h) => h.target.name);

    if (!opts.json) printFindings(findings, hostOrder, opts);

    let capture: CaptureResult | undefined;
    if (seconds !== undefined) {
      const hosts: CaptureHost[] = [];
      const unreachable = new Map<string, string>();
      for (const h of prep.hosts) {
        if (h.session && !prep.errors.has(h.target.name)) hosts.push({ name: h.target.name, target: h.ssh, control: h.session });
        else unreachable.set(h.target.name, prep.errors.get(h.target.name)?.message ?? 'no connection');
      }
      const pt = probeTarget(inv);
      if (pt) {
        try {
          probe = await connect(pt);
          hosts.push({ name: 'probe', target: pt, control: probe });
        } catch (e) {
          unreachable.set('probe', (e as Error).message);
        }
      }
      const say = (s: string) => (opts.json ? printErr(s) : opts.quiet ? undefined : print(s));
      if (!opts.json) say('');
      capture = await runCapture(inv, hosts, unreachable, seconds, say);
      if (!opts.json) printCapture(capture, opts);
    }

    const exitCode = hasError ? EXIT.failedRolledBack : EXIT.ok;
    if (opts.json) {
      const tally = Object.fromEntries((['error', 'warn', 'info', 'ok'] as const).map((s) => [s, findings.filter((f) => f.severity === s).length]));
      const names = [...hostOrder, ...new Set(findings.map((f) => f.host).filter((h) => !hostOrder.includes(h)))];
      writeReport({
        command: 'doctor',
        result: hasError ? 'problems' : 'healthy',
        ok: !hasError,
        exitCode,
        mode: inv.mode,
        summary: tally,
        errors: evidence.filter((e) => e.error).map((e) => ({ host: e.name, message: e.error! })),
        hosts: names.map((h) => ({ host: h, ...(evidence.find((e) => e.name === h) ? { role: evidence.find((e) => e.name === h)!.role } : {}), findings: findings.filter((f) => f.host === h) })),
        ...(capture
          ? {
              capture: {
                seconds: capture.seconds,
                filter: capture.filter,
                hosts: capture.hosts.map((c) => ({ host: c.host, status: c.status, packets: c.packets.length, ...(c.note ? { note: c.note } : {}), ...(c.listeningAt ? { listeningAt: c.listeningAt } : {}) })),
                timeline: mergeTimeline(capture.hosts).map(({ raw: _raw, ...p }) => p),
              },
            }
          : {}),
      });
    }
    return exitCode;
  } finally {
    await probe?.close();
    await closeAll(prep.hosts);
  }
}

function printFindings(findings: Finding[], hostOrder: string[], opts: DoctorOptions): void {
  const text = formatFindings(findings, hostOrder, {
    verbose: opts.verbose,
    quiet: opts.quiet,
    paint: { error: red, warn: yellow, ok: green, bold, dim },
  });
  if (opts.quiet && !findings.some((f) => f.severity === 'error' || f.severity === 'warn')) return;
  print(text);
}

function printCapture(c: CaptureResult, opts: DoctorOptions): void {
  if (opts.quiet) return;
  const merged = mergeTimeline(c.hosts);
  print('');
  if (merged.length) {
    const t0 = new Date(merged[0]!.time * 1000).toISOString();
    print(bold(`timeline: ${merged.length} packets, times relative to the first (${t0}, each host's own clock)`));
    for (const l of formatTimeline(merged)) print(`  ${l}`);
  } else print(bold('timeline: no packet matched on any host (was traffic sent during the capture?)'));
  for (const n of captureNotes(c.hosts)) print(`  ${/not captured|failed/.test(n) ? yellow(n) : n}`);
}
