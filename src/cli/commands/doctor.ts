import type { GlobalOptions } from '../progress.js';
import { listrRunner } from '../progress.js';
import { doctor } from '../../engine/doctor.js';
import type { CaptureResult } from '../../engine/doctor-capture.js';
import { bold, dim, green, red, yellow } from '../output.js';
import { UserError } from '../../util/errors.js';
import { formatFindings } from '../../doctor/report.js';
import { captureNotes, formatTimeline, mergeTimeline } from '../../doctor/capture.js';
import type { Finding } from '../../doctor/types.js';
import { print, printErr } from '../terminal.js';
import { writeReport } from '../report.js';
import { doctorReport } from '../../report/documents.js';

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

/** `dsrctl doctor -i FILE [--capture SECONDS]`: the engine's doctor, as a report or a document. */
export async function doctorCommand(file: string, opts: DoctorOptions): Promise<number> {
  const seconds = captureSeconds(opts.capture);
  const say = (s: string) => (opts.json ? printErr(s) : print(s));
  const r = await doctor(file, {
      ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
    runner: listrRunner(opts),
    onFindings: (findings, hostOrder) => {
      if (!opts.json) printFindings(findings, hostOrder, opts);
      if (seconds !== undefined && !opts.json) print('');
    },
    ...(seconds !== undefined ? { capture: { seconds, say } } : {}),
  });
  if (r.capture && !opts.json) printCapture(r.capture);
  if (opts.json) writeReport(doctorReport(r));
  return r.exitCode;
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

/** The merged timeline: what `--capture` was asked for, so printed with -q too. */
function printCapture(c: CaptureResult): void {
  const merged = mergeTimeline(c.hosts);
  print('');
  if (merged.length) {
    const t0 = new Date(merged[0]!.time * 1000).toISOString();
    print(bold(`timeline: ${merged.length} packets, times relative to the first (${t0}, each host's own clock)`));
    for (const l of formatTimeline(merged)) print(`  ${l}`);
  } else print(bold('timeline: no packet matched on any host (was traffic sent during the capture?)'));
  for (const n of captureNotes(c.hosts)) print(`  ${/not captured|failed/.test(n) ? yellow(n) : n}`);
}
