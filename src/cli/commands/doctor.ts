import { Listr } from 'listr2';
import type { GlobalOptions } from '../prepare.js';
import { connectAndPlan, rendererFor } from '../prepare.js';
import { closeAll } from '../../engine/hosts.js';
import { connect } from '../../ssh/session.js';
import { probeTarget } from '../../ssh/targets.js';
import type { HostSession } from '../../ssh/types.js';
import type { Inventory } from '../../inventory/schema.js';
import { bold, dim, green, red, yellow } from '../output.js';
import { EXIT, UserError } from '../../util/errors.js';
import { collectDoctor, doctorRequest } from '../../doctor/collect.js';
import { diagnose, type HostEvidence } from '../../doctor/findings.js';
import { formatFindings } from '../../doctor/report.js';
import { buildCaptureScript, captureFilter, captureNotes, formatTimeline, mergeTimeline, parseCaptureOutput, type HostCapture } from '../../doctor/capture.js';
import type { Finding } from '../../doctor/types.js';

export interface DoctorOptions extends GlobalOptions {
  capture?: string | boolean;
}

export const DEFAULT_CAPTURE_SECONDS = 5;
/** tcpdump starts this long before the user is told to send traffic (SSH exec + tcpdump start-up) */
const CAPTURE_WARMUP_MS = 1000;

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

/** tcpdump on every host at once; the user (or a test) sends traffic meanwhile. */
async function runCapture(inv: Inventory, sessions: Map<string, HostSession>, unreachable: Map<string, string>, seconds: number, say: (s: string) => void): Promise<CaptureResult> {
  const filter = captureFilter(inv);
  // tcpdump runs one warm-up second longer, so the user gets the full N seconds after the prompt
  const script = buildCaptureScript(seconds + Math.ceil(CAPTURE_WARMUP_MS / 1000), filter);
  const names = [...sessions.keys()];
  say(`capture: tcpdump -i any on ${names.join(', ')} for ${seconds} s; filter: ${filter}`);
  const runs = names.map(async (name): Promise<HostCapture> => {
    try {
      const r = await sessions.get(name)!.exec(script, { timeoutMs: (seconds + 20) * 1000 });
      return parseCaptureOutput(name, r.stdout);
    } catch (e) {
      return { host: name, status: 'failed', packets: [], messages: [], note: (e as Error).message };
    }
  });
  await new Promise((r) => setTimeout(r, CAPTURE_WARMUP_MS));
  say(`capturing now: send traffic through the proxy within ${seconds} s (e.g. ${trafficHint(inv)} from a client)`);
  const hosts = await Promise.all(runs);
  for (const [name, why] of unreachable) hosts.push({ host: name, status: 'failed', packets: [], messages: [], note: `not connected: ${why}` });
  return { seconds, filter, hosts };
}

/** `dsrctl doctor -i FILE [--capture SECONDS]`: the guide's Troubleshooting, automated and read-only. */
export async function doctorCommand(file: string, opts: DoctorOptions): Promise<number> {
  const seconds = captureSeconds(opts.capture);
  // read-only: facts without the run lock, no plan, no journal
  const prep = await connectAndPlan(file, opts, false);
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
            throw new Error(ev.error);
          }
          ev.facts = h.facts;
          try {
            ev.doctor = await collectDoctor(h.session, doctorRequest(inv, h.target.role, h.facts));
          } catch (e) {
            ev.error = (e as Error).message;
            throw e;
          }
        },
      })),
      { concurrent: true, exitOnError: false, renderer: rendererFor(opts), collectErrors: false },
    ).run();
    const findings = diagnose(inv, evidence);
    const hasError = findings.some((f) => f.severity === 'error');
    const hostOrder = prep.hosts.map((h) => h.target.name);

    if (!opts.json) printFindings(findings, hostOrder, opts);

    let capture: CaptureResult | undefined;
    if (seconds !== undefined) {
      const sessions = new Map<string, HostSession>();
      const unreachable = new Map<string, string>();
      for (const h of prep.hosts) {
        if (h.session && !prep.errors.has(h.target.name)) sessions.set(h.target.name, h.session);
        else unreachable.set(h.target.name, prep.errors.get(h.target.name)?.message ?? 'no connection');
      }
      const pt = probeTarget(inv);
      if (pt) {
        try {
          probe = await connect(pt);
          sessions.set('probe', probe);
        } catch (e) {
          unreachable.set('probe', (e as Error).message);
        }
      }
      const say = (s: string) => (opts.json ? process.stderr.write(`${s}\n`) : opts.quiet ? undefined : console.log(s));
      if (!opts.json) say('');
      capture = await runCapture(inv, sessions, unreachable, seconds, say);
      if (!opts.json) printCapture(capture, opts);
    }

    const exitCode = hasError ? EXIT.failedRolledBack : EXIT.ok;
    if (opts.json) {
      const tally = Object.fromEntries((['error', 'warn', 'info', 'ok'] as const).map((s) => [s, findings.filter((f) => f.severity === s).length]));
      const doc = {
        command: 'doctor',
        ok: !hasError,
        exitCode,
        summary: tally,
        findings,
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
      };
      process.stdout.write(JSON.stringify(doc, null, 2) + '\n');
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
  console.log(text);
}

function printCapture(c: CaptureResult, opts: DoctorOptions): void {
  if (opts.quiet) return;
  const merged = mergeTimeline(c.hosts);
  console.log('');
  if (merged.length) {
    const t0 = new Date(merged[0]!.time * 1000).toISOString();
    console.log(bold(`timeline: ${merged.length} packets, times relative to the first (${t0}, each host's own clock)`));
    for (const l of formatTimeline(merged)) console.log(`  ${l}`);
  } else console.log(bold('timeline: no packet matched on any host (was traffic sent during the capture?)'));
  for (const n of captureNotes(c.hosts)) console.log(`  ${/not captured|failed/.test(n) ? yellow(n) : n}`);
}
