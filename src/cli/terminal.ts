import { randomBytes } from 'node:crypto';

/**
 * The output boundary: everything dsrctl prints passes through here. Text from hosts (probe
 * answers, remote stderr, nginx -t, hostnames, file contents in diffs) may carry terminal escape
 * sequences that set the window title, recolour or rewrite lines: C0 and C1 controls and DEL are
 * shown as visible \xHH escapes instead. dsrctl's own colours are marked with a per-process random
 * token that host text cannot guess, and become escape sequences only after the text is made safe.
 */

/** Every C0 control but newline and tab, DEL, and every C1 control. */
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;
const hex = (c: string) => c.charCodeAt(0).toString(16).padStart(2, '0');

/** Host text made harmless for a terminal: `\x1b]0;title\x07` becomes the 14 visible characters. */
export function escapeControls(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${hex(c)}`);
}

/** Start of one of dsrctl's own SGR sequences, as text that cannot come from a host. */
export const COLOR_MARK = `\uE000${randomBytes(12).toString('hex')}\uE001`;

/** Text ready for the terminal: host controls escaped, then dsrctl's colour marks made real. */
export function terminalText(text: string): string {
  return escapeControls(text).split(COLOR_MARK).join('\x1b[');
}

/** One line (or several) on stdout, safe. */
export function print(text = ''): void {
  process.stdout.write(`${terminalText(text)}\n`);
}

/** One line (or several) on stderr, safe. */
export function printErr(text = ''): void {
  process.stderr.write(`${terminalText(text)}\n`);
}

/**
 * JSON for stdout. JSON.stringify escapes C0 controls but leaves DEL and C1 raw, and a C1 CSI
 * (\x9b) is an escape sequence for many terminals: those are written as \u007f-\u009f too.
 */
export function toJson(value: unknown, indent = 2): string {
  return JSON.stringify(value, null, indent).replace(/[\x7f-\x9f]/g, (c) => `\\u00${hex(c)}`);
}

/** Host text for places dsrctl does not print itself (listr2 task titles and errors). */
export function safeError(e: unknown): Error {
  const err = e instanceof Error ? e : new Error(String(e));
  const message = escapeControls(err.message);
  if (message === err.message) return err;
  return Object.assign(new Error(message), { name: err.name });
}
