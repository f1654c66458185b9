import { REMOTE_PATH } from '../util/remote-env.js';
/**
 * Wire format of the facts script's stdout, shared by the script builder and the parser.
 *
 * Every section is framed by two marker lines:
 *
 *   @@dsrctl-facts:begin NAME@@
 *   ...body: the command's stdout as printed (or key=value lines for file/sysctl sections)...
 *   @@dsrctl-facts:end NAME rc=N@@
 *
 * `rc` is the exit status of the section's command (127: command not found). A section name may
 * repeat (`sysctl`, `file`: one per requested key or path). Bodies never contain a line starting
 * with the marker prefix: tool output is single-line JSON or starts otherwise, and file contents are
 * base64. The script starts with a `facts` section (format version) and ends with `done`, so a
 * truncated output is detected.
 */

export const MARKER_PREFIX = '@@dsrctl-facts:';
export const FACTS_FORMAT_VERSION = 1;

export const beginMarker = (name: string) => `${MARKER_PREFIX}begin ${name}@@`;
export const endMarker = (name: string, rc: number | string) => `${MARKER_PREFIX}end ${name} rc=${rc}@@`;

/**
 * The start every read-only POSIX sh script shares (facts, doctor): a PATH that finds the sbin
 * tools, the C locale, `b NAME` / `e NAME RC` (the only writers of marker lines) and `have CMD`.
 * Each script puts its own comment line before it and its own helpers after it.
 */
export const SHELL_PRELUDE = String.raw`PATH=${REMOTE_PATH}
LC_ALL=C
export PATH LC_ALL
b() { printf '%sbegin %s@@\n' '${MARKER_PREFIX}' "$1"; }
e() { printf '%send %s rc=%s@@\n' '${MARKER_PREFIX}' "$1" "$2"; }
have() { command -v "$1" >/dev/null 2>&1; }
`;

/** A section's output did not parse. The message names the section and shows the offending line. */
export class FactsParseError extends Error {
  override name = 'FactsParseError';
  constructor(
    readonly section: string,
    readonly problem: string,
    readonly offendingLine?: string,
  ) {
    super(
      `facts section "${section}": ${problem}` +
        (offendingLine === undefined ? '' : `; offending line: ${JSON.stringify(clip(offendingLine))}`),
    );
  }
}

export function clip(line: string, max = 200): string {
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

export interface Section {
  name: string;
  /** exit status of the section's command */
  rc: number;
  /** lines between the markers joined with "\n" (no trailing newline) */
  body: string;
  /** 1-based line number of the begin marker in the whole output */
  line: number;
}

const BEGIN_RE = /^@@dsrctl-facts:begin ([a-z0-9-]+)@@$/;
const END_RE = /^@@dsrctl-facts:end ([a-z0-9-]+) rc=(\d+)@@$/;

/** Splits the facts output into sections. Lines outside sections (none expected) are ignored. */
export function splitSections(stdout: string): Section[] {
  const lines = stdout.split('\n');
  const sections: Section[] = [];
  let open: { name: string; line: number; body: string[] } | null = null;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!;
    if (!text.startsWith(MARKER_PREFIX)) {
      if (open) open.body.push(text);
      continue;
    }
    const begin = BEGIN_RE.exec(text);
    const end = END_RE.exec(text);
    if (begin) {
      if (open) throw new FactsParseError(open.name, `section not closed before line ${i + 1}`, text);
      open = { name: begin[1]!, line: i + 1, body: [] };
    } else if (end) {
      if (!open || open.name !== end[1]) {
        throw new FactsParseError(end[1]!, `end marker without matching begin at line ${i + 1}`, text);
      }
      sections.push({ name: open.name, rc: Number(end[2]), body: open.body.join('\n'), line: open.line });
      open = null;
    } else {
      throw new FactsParseError(open ? open.name : '(outside sections)', `malformed marker at line ${i + 1}`, text);
    }
  }
  if (open) {
    throw new FactsParseError(open.name, 'output ends inside this section (truncated?)', open.body.at(-1) ?? '');
  }
  return sections;
}

/** `key=value` lines (value = rest of the line); `multiline` keys take everything after them. */
export function parseKeyValues(section: string, body: string, multiline: string[] = []): Map<string, string> {
  const out = new Map<string, string>();
  const lines = body === '' ? [] : body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new FactsParseError(section, 'expected key=value', line);
    const key = line.slice(0, eq);
    if (!/^[a-z0-9_-]+$/.test(key)) throw new FactsParseError(section, 'expected key=value', line);
    if (out.has(key)) throw new FactsParseError(section, `duplicate key "${key}"`, line);
    if (multiline.includes(key)) {
      out.set(key, [line.slice(eq + 1), ...lines.slice(i + 1)].join('\n'));
      break;
    }
    out.set(key, line.slice(eq + 1));
  }
  return out;
}
