/**
 * A small nginx configuration parser that keeps byte offsets, so callers can edit one statement
 * and leave every other byte of the file alone. It follows nginx's own tokenizer
 * (ngx_conf_read_token in src/core/ngx_conf_file.c) closely enough for the files dsrctl touches:
 *
 * - `#` starts a comment only at the start of a word and runs to the end of the line;
 * - `"..."` and `'...'` are quoted words (only at the start of a word) with backslash escapes;
 *   a closing quote must be followed by whitespace, `;`, `{` or `)`;
 * - an unquoted word ends at whitespace, `;` or `{` (but `${` stays in the word, as in `${var}`);
 *   a `}` inside a word belongs to the word, as in nginx;
 * - `;` ends a simple statement, `{ ... }` is a block;
 * - word values are unescaped as nginx does: `\"`, `\'`, `\\` become the character, `\t`, `\r`,
 *   `\n` become tab, CR, LF; any other backslash is kept.
 *
 * Anything nginx would reject (unbalanced braces, a `;` without a directive, an unterminated
 * quote) throws NginxParseError: dsrctl refuses to edit a file it does not understand.
 */

export class NginxParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NginxParseError';
  }
}

export interface Word {
  /** unescaped value, as nginx sees it */
  value: string;
  /** offset of the first byte (the opening quote for quoted words) */
  start: number;
  /** offset just past the last byte (past the closing quote for quoted words) */
  end: number;
}

export interface Statement {
  name: string;
  args: string[];
  words: Word[];
  /** offset of the directive name's first byte */
  start: number;
  /** offset just past the terminating `;` (simple) or the closing `}` (block) */
  end: number;
  /** children of a block statement; null for a simple statement */
  block: Statement[] | null;
}

type Token =
  | { kind: 'word'; word: Word }
  | { kind: ';' | '{' | '}'; start: number };

const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text[i] === '\n') line++;
  return line;
}

function fail(text: string, offset: number, message: string): never {
  throw new NginxParseError(`${message} in line ${lineOf(text, offset)}`);
}

/** nginx's unescaping of a word's raw bytes (without the surrounding quotes). */
export function unescapeWord(raw: string): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '\\') {
      const n = raw[i + 1];
      if (n === '"' || n === "'" || n === '\\') {
        out += n;
        i++;
        continue;
      }
      if (n === 't' || n === 'r' || n === 'n') {
        out += n === 't' ? '\t' : n === 'r' ? '\r' : '\n';
        i++;
        continue;
      }
    }
    out += c;
  }
  return out;
}

export function* tokenize(text: string): Generator<Token> {
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text[i]!;
    if (isSpace(c)) {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < n && text[i] !== '\n') i++;
      continue;
    }
    if (c === ';' || c === '{' || c === '}') {
      yield { kind: c, start: i };
      i++;
      continue;
    }
    const start = i;
    if (c === '"' || c === "'") {
      i++;
      while (i < n && text[i] !== c) i += text[i] === '\\' ? 2 : 1;
      if (i >= n) fail(text, start, `unterminated ${c === '"' ? 'double' : 'single'}-quoted string`);
      const end = i + 1;
      yield { kind: 'word', word: { value: unescapeWord(text.slice(start + 1, i)), start, end } };
      i = end;
      const next = text[i];
      if (next !== undefined && !isSpace(next) && next !== ';' && next !== '{' && next !== ')')
        fail(text, i, `unexpected "${next}" after a quoted string`);
      continue;
    }
    // unquoted word
    let variable = false;
    while (i < n) {
      const ch = text[i]!;
      if (ch === '{' && variable) {
        i++;
        variable = false;
        continue;
      }
      variable = false;
      if (ch === '\\') {
        i += 2;
        continue;
      }
      if (ch === '$') {
        variable = true;
        i++;
        continue;
      }
      if (isSpace(ch) || ch === ';' || ch === '{') break;
      i++;
    }
    if (i > n) i = n; // a trailing backslash at EOF
    yield { kind: 'word', word: { value: unescapeWord(text.slice(start, i)), start, end: i } };
  }
}

/** Parse a whole file into a tree of statements with byte offsets. */
export function parseNginx(text: string): Statement[] {
  if (text.includes('\0')) throw new NginxParseError('file contains a NUL byte');
  const root: Statement[] = [];
  const stack: { list: Statement[]; owner: Statement | null }[] = [{ list: root, owner: null }];
  let words: Word[] = [];
  for (const tok of tokenize(text)) {
    const top = stack[stack.length - 1]!;
    if (tok.kind === 'word') {
      words.push(tok.word);
      continue;
    }
    if (tok.kind === ';' || tok.kind === '{') {
      if (words.length === 0) fail(text, tok.start, `unexpected "${tok.kind}"`);
      const [first, ...rest] = words;
      const st: Statement = {
        name: first!.value,
        args: rest.map((w) => w.value),
        words,
        start: first!.start,
        end: tok.start + 1,
        block: tok.kind === '{' ? [] : null,
      };
      top.list.push(st);
      if (st.block) stack.push({ list: st.block, owner: st });
      words = [];
      continue;
    }
    // '}'
    if (words.length !== 0) fail(text, tok.start, 'unexpected "}"');
    if (stack.length === 1 || !top.owner) fail(text, tok.start, 'unexpected "}"');
    top.owner.end = tok.start + 1;
    stack.pop();
  }
  if (words.length !== 0) fail(text, text.length, 'unexpected end of file, expecting ";" or "}"');
  if (stack.length !== 1) fail(text, text.length, 'unexpected end of file, expecting "}"');
  return root;
}

const SAFE_WORD = /^[A-Za-z0-9_\-.\/:@%+=,*?[\]~^$!()<>|&]+$/;

/** Render one argument so that nginx reads back exactly `value`. */
export function formatArg(value: string): string {
  if (value.includes('\0')) throw new NginxParseError('an nginx argument cannot contain a NUL byte');
  if (SAFE_WORD.test(value)) return value;
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
