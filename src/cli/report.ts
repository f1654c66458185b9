import { toJson } from './terminal.js';

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

export function reportJson(r: Report): string {
  const { command, result, ok, exitCode, warnings = [], errors = [], hosts = [], ...rest } = r;
  return toJson({ schemaVersion: SCHEMA_VERSION, command, result, ok, exitCode, warnings, errors, hosts, ...rest }) + '\n';
}

let written = false;

export function writeReport(r: Report): void {
  written = true;
  process.stdout.write(reportJson(r));
}

/** Whether this process has printed its report (an error after it must not print a second one). */
export function reportWritten(): boolean {
  return written;
}

/** Host errors as report errors, in the order given. */
export function hostErrors(errors: Iterable<[string, Error]>): ReportError[] {
  return [...errors].map(([host, e]) => ({ host, message: e.message }));
}
