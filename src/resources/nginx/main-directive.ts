/**
 * Edits of nginx.conf's main (top-level) context that touch only the bytes they must:
 * `user root;` for transparent proxy_bind, and a `stream { include ...; }` block for TCP/UDP.
 * Pure functions: text in, text out.
 */
import { NginxParseError, formatArg, parseNginx, type Statement } from './parse.js';

export { NginxParseError } from './parse.js';

const DIRECTIVE_NAME = /^[a-z_][a-z0-9_]*$/;

function checkName(name: string): void {
  if (!DIRECTIVE_NAME.test(name)) throw new NginxParseError(`not an nginx directive name: ${JSON.stringify(name)}`);
}

/** The single top-level simple statement named `name`, or null; throws if there are several. */
function findTopLevel(conf: string, name: string): Statement | null {
  checkName(name);
  const found = parseNginx(conf).filter((s) => s.name === name);
  if (found.some((s) => s.block)) throw new NginxParseError(`"${name}" is a block at the top level of nginx.conf; expected a simple directive`);
  if (found.length > 1)
    throw new NginxParseError(`"${name}" appears ${found.length} times at the top level of nginx.conf (nginx rejects duplicates); fix the file by hand`);
  return found[0] ?? null;
}

/** Current arguments of a top-level simple directive (unescaped), or null when absent. */
export function getMainDirective(conf: string, name: string): string[] | null {
  return findTopLevel(conf, name)?.args ?? null;
}

export interface SetMainDirectiveResult {
  content: string;
  changed: boolean;
  /** the statement's old text, byte for byte (from the name to its `;`), or null when absent */
  before: string | null;
}

const sameArgs = (a: string[], b: string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Set `name args...;` in the main context. An existing statement is replaced in place (only its
 * own bytes change); an absent one is inserted as its own line before the first top-level
 * statement (so after any leading comment block), or at the end of a file without statements.
 */
export function setMainDirective(conf: string, name: string, args: string[]): SetMainDirectiveResult {
  const current = findTopLevel(conf, name);
  const text = [name, ...args.map(formatArg)].join(' ') + ';';
  if (current) {
    const before = conf.slice(current.start, current.end);
    if (sameArgs(current.args, args)) return { content: conf, changed: false, before };
    return { content: conf.slice(0, current.start) + text + conf.slice(current.end), changed: true, before };
  }
  const first = parseNginx(conf)[0];
  if (first) {
    // only whitespace precedes the first statement on its line (comments end at a newline)
    const lineStart = conf.lastIndexOf('\n', first.start - 1) + 1;
    return { content: conf.slice(0, lineStart) + text + '\n' + conf.slice(lineStart), changed: true, before: null };
  }
  const sep = conf === '' || conf.endsWith('\n') ? '' : '\n';
  return { content: conf + sep + text + '\n', changed: true, before: null };
}

export interface EnsureStreamContextResult {
  content: string;
  changed: boolean;
  /** a top-level `stream { }` block existed before */
  hadStream: boolean;
  /** `include <includeGlob>;` is directly inside the top-level stream block (always true after a change) */
  includePresent: boolean;
}

/** Absolute path or glob without whitespace, quotes, `;`, `{`, `}`, `#`, `$` or backslashes. */
const INCLUDE_GLOB = /^\/[A-Za-z0-9_.\/*?[\]@+=,-]+$/;

/**
 * Make sure nginx.conf has a top-level `stream { }` block that includes `includeGlob`. When absent,
 * append one; when present without the include, add the include inside it; otherwise unchanged.
 * (The stream module itself must be loaded, e.g. Debian's libnginx-mod-stream; `nginx -t` tells.)
 */
export function ensureStreamContext(conf: string, includeGlob: string): EnsureStreamContextResult {
  if (!INCLUDE_GLOB.test(includeGlob)) throw new NginxParseError(`not a safe absolute include path: ${JSON.stringify(includeGlob)}`);
  const streams = parseNginx(conf).filter((s) => s.name === 'stream');
  if (streams.length > 1) throw new NginxParseError(`"stream" appears ${streams.length} times at the top level of nginx.conf`);
  const stream = streams[0];
  if (stream) {
    if (!stream.block) throw new NginxParseError('"stream" at the top level of nginx.conf is not a block');
    const includePresent = stream.block.some((s) => s.name === 'include' && !s.block && sameArgs(s.args, [includeGlob]));
    if (includePresent) return { content: conf, changed: false, hadStream: true, includePresent };
    // add the include just before the block's closing brace; every other byte stays
    const close = stream.end - 1;
    const lineStart = conf.lastIndexOf('\n', close - 1) + 1;
    const onOwnLine = conf.slice(lineStart, close).trim() === '';
    const insert = onOwnLine ? `\tinclude ${includeGlob};\n` : `\n\tinclude ${includeGlob};\n`;
    const at = onOwnLine ? lineStart : close;
    return { content: conf.slice(0, at) + insert + conf.slice(at), changed: true, hadStream: true, includePresent: true };
  }
  return {
    content: `${conf}\nstream {\n\tinclude ${includeGlob};\n}\n`,
    changed: true,
    hadStream: false,
    includePresent: true,
  };
}

/** The statement's text byte for byte (from its name to its `;`), or null when absent. */
export function mainDirectiveText(conf: string, name: string): string | null {
  const s = findTopLevel(conf, name);
  return s ? conf.slice(s.start, s.end) : null;
}

/**
 * Put a main-context statement back as `before` (its old text, byte for byte, from a backup), or
 * take it out when there was none: a line that held only the statement goes whole, as
 * setMainDirective inserted it. The rest of the file stays byte-identical.
 */
export function restoreMainDirective(conf: string, name: string, before: string | null): { content: string; changed: boolean } {
  const current = findTopLevel(conf, name);
  if (before !== null && (parseNginx(before).length !== 1 || parseNginx(before)[0]!.name !== name || parseNginx(before)[0]!.block))
    throw new NginxParseError(`not a single "${name}" statement: ${JSON.stringify(before)}`);
  if (!current) {
    if (before === null) return { content: conf, changed: false };
    return setMainDirective(conf, name, parseNginx(before)[0]!.args);
  }
  if (before !== null) {
    const text = conf.slice(current.start, current.end);
    if (text === before) return { content: conf, changed: false };
    return { content: conf.slice(0, current.start) + before + conf.slice(current.end), changed: true };
  }
  const lineStart = conf.lastIndexOf('\n', current.start - 1) + 1;
  const nl = conf.indexOf('\n', current.end);
  const lineEnd = nl < 0 ? conf.length : nl + 1;
  const alone = conf.slice(lineStart, current.start).trim() === '' && conf.slice(current.end, lineEnd).trim() === '';
  return alone
    ? { content: conf.slice(0, lineStart) + conf.slice(lineEnd), changed: true }
    : { content: conf.slice(0, current.start) + conf.slice(current.end), changed: true };
}
