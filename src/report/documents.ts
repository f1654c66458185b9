import type { HostPlan } from '../plan/types.js';
import { displayStep } from '../plan/display-step.js';
import { renderStep } from '../apply/render-step.js';
import { runDir } from '../apply/paths.js';
import type { HostRollbackResult } from '../engine/apply-host.js';
import type { PlanResult } from '../engine/plan.js';
import type { ApplyResult } from '../engine/apply.js';
import type { VerifyResult } from '../engine/verify.js';
import type { RollbackResult } from '../engine/rollback.js';
import type { DoctorResult } from '../engine/doctor.js';
import { mergeTimeline } from '../doctor/capture.js';
import { EXIT } from '../util/errors.js';

/**
 * The one JSON vocabulary of every command's `--json` (schema/dsrctl-report.schema.json):
 * exactly one document on stdout, whatever happens (bad input and internal errors included).
 *
 *   schemaVersion  1; raised when a field changes meaning or goes away (new fields do not raise it)
 *   command        plan | apply | verify | rollback | doctor
 *   result         what happened, one word per command (see the schema's enums)
 *   ok             true when the command did what was asked (exit code 0 or, for plan, 4)
 *   exitCode       the process exit code (the contract's codes)
 *   warnings       things to know that did not stop the command
 *   errors         { host?, message }: a host that could not be read or acted on, or the command's own error
 *   hosts          one entry per host, { host, role?, ... } with the command's own fields
 */
export const SCHEMA_VERSION = 1;

export type Command = 'plan' | 'apply' | 'verify' | 'rollback' | 'doctor';
export const JSON_COMMANDS: readonly Command[] = ['plan', 'apply', 'verify', 'rollback', 'doctor'];

export interface ReportError {
  host?: string;
  message: string;
}

export interface Report {
  command: Command;
  result: string;
  ok: boolean;
  exitCode: number;
  warnings?: string[];
  errors?: ReportError[];
  hosts?: Record<string, unknown>[];
  [field: string]: unknown;
}

/** The document: the envelope's fields first, in the schema's order. */
export function reportDocument(r: Report): Record<string, unknown> {
  const { command, result, ok, exitCode, warnings = [], errors = [], hosts = [], ...rest } = r;
  return { schemaVersion: SCHEMA_VERSION, command, result, ok, exitCode, warnings, errors, hosts, ...rest };
}

/** Host errors as report errors, in the order given. */
export function hostErrors(errors: Iterable<[string, Error]>): ReportError[] {
  return [...errors].map(([host, e]) => ({ host, message: e.message }));
}

/** JSON form of a plan: commands rendered exactly as they will run. */
export function planJson(p: HostPlan, runId: string) {
  const run = runDir(runId);
  return {
    host: p.host,
    role: p.role,
    notes: p.notes,
    changes: p.changes.map((c) => ({
      kind: c.kind,
      id: c.id,
      action: c.action,
      summary: c.summary,
      commands: c.do.map((s) => ('write' in s ? `write ${s.write.path}` : displayStep(s, runId))),
      undo: c.undo.map((s) => renderStep(s, run)),
      diff: c.diff,
    })),
  };
}

/** A host's rollback in the report vocabulary. */
export function rollbackJson(r: HostRollbackResult) {
  return { host: r.host, ok: r.ok, nothingToUndo: r.nothing, undone: r.lines, ...(r.status ? { status: r.status } : {}), ...(r.error ? { error: r.error } : {}) };
}

/** `plan`'s result as its report; `detailedExitcode`: exit 4 when changes are pending. */
export function planReport(r: PlanResult, detailedExitcode = false): Report {
  const exitCode = r.exitCode === EXIT.ok && detailedExitcode && r.changes > 0 ? EXIT.changesPending : r.exitCode;
  return {
    command: 'plan',
    result: r.errors.size ? 'failed' : r.changes > 0 ? 'changes-pending' : 'no-changes',
    ok: exitCode === EXIT.ok || exitCode === EXIT.changesPending,
    exitCode,
    mode: r.inventory.mode,
    changes: r.changes,
    verification: r.verification,
    errors: hostErrors(r.errors),
    hosts: r.plans.map((p) => planJson(p, 'RUN')),
  };
}

export function applyReport(r: ApplyResult): Report {
  return {
    command: 'apply',
    result: r.result,
    ok: r.exitCode === EXIT.ok,
    exitCode: r.exitCode,
    runId: r.runId,
    mode: r.inventory.mode,
    failure: r.failure,
    warnings: r.warnings,
    errors: hostErrors(r.errors),
    hosts: r.hosts.map((h) => ({
      ...(h.plan ? planJson(h.plan, r.runId) : { host: h.host, role: h.role, notes: [], changes: [] }),
      error: h.error,
      outcome: h.outcome ? { ...h.outcome, stdout: undefined } : null,
      rollback: h.rollback ? rollbackJson(h.rollback) : null,
      execs: h.execs,
    })),
    checks: r.checks,
  };
}

export function verifyReport(r: VerifyResult): Report {
  return {
    command: 'verify',
    result: r.ok ? 'passed' : 'failed',
    ok: r.ok,
    exitCode: r.exitCode,
    mode: r.inventory.mode,
    warnings: [...r.reverted, ...r.notApplied],
    errors: hostErrors(r.errors),
    hosts: r.hosts.map((h) => ({ ...h })),
    checks: r.checks,
    reverted: r.reverted,
  };
}

export function rollbackReport(r: RollbackResult): Report {
  return {
    command: 'rollback',
    result: r.result,
    ok: r.ok,
    exitCode: r.exitCode,
    nothingToUndo: r.nothingToUndo,
    warnings: r.notices,
    errors: hostErrors(r.errors),
    hosts: r.hosts.map(rollbackJson),
  };
}

export function doctorReport(r: DoctorResult): Report {
  const { findings, hostOrder, capture } = r;
  const tally = Object.fromEntries((['error', 'warn', 'info', 'ok'] as const).map((s) => [s, findings.filter((f) => f.severity === s).length]));
  const names = [...hostOrder, ...new Set(findings.map((f) => f.host).filter((h) => !hostOrder.includes(h)))];
  return {
    command: 'doctor',
    result: r.exitCode === EXIT.ok ? 'healthy' : 'problems',
    ok: r.exitCode === EXIT.ok,
    exitCode: r.exitCode,
    mode: r.inventory.mode,
    summary: tally,
    errors: [...r.errors].map(([host, message]) => ({ host, message })),
    hosts: names.map((h) => ({ host: h, ...(r.roles.has(h) ? { role: r.roles.get(h) } : {}), findings: findings.filter((f) => f.host === h) })),
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
}
