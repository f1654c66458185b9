import { toJson } from './terminal.js';
import { reportDocument, type Report } from '../report/documents.js';

export { hostErrors, JSON_COMMANDS, type Report } from '../report/documents.js';

/** A report as JSON text (DEL and C1 controls escaped too: src/cli/terminal.ts). */
export function reportJson(r: Report): string {
  return toJson(reportDocument(r)) + '\n';
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

