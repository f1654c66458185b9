/**
 * nginx's effective configuration as `nginx -T` prints it: every file nginx read, each after a
 * `# configuration file PATH:` line, in the order nginx first opened them. Pure: the dump in, every
 * server's `listen` with file and line out, in the order nginx sees them (includes expanded where
 * they stand, as nginx does), so "the first server for an address:port" is nginx's own answer.
 */

export interface NginxDirective {
  name: string;
  args: string[];
  file: string;
  /** 1-based line of the directive's name in its file */
  line: number;
  /** the directives inside `{ }`, when it is a block */
  block?: NginxDirective[];
}

export interface NginxListen {
  context: 'http' | 'stream';
  /** file and line of the `listen` (of the `server {` when the server has none: nginx's default *:80) */
  file: string;
  line: number;
  /** where the server block starts */
  serverFile: string;
  serverLine: number;
  /** "*", an IPv4 address, "[v6]", a host name, or "unix:..." */
  address: string;
  port: number | null;
  ipv6: boolean;
  udp: boolean;
  defaultServer: boolean;
  /** the server had no listen: nginx listens on *:80 */
  implicit: boolean;
  serverNames: string[];
  /** the listen directive as written (without `;`) */
  text: string;
  /** the listen's parameters after the address, e.g. ["default_server", "reuseport"] */
  params: string[];
  /** the `include` that brought in the server's file (null: the main file) */
  serverInclude: { file: string; line: number; pattern: string; glob: boolean } | null;
}

export interface NginxDump {
  /** path -> content, in dump order */
  files: Map<string, string>;
  /** the main configuration file (the first one dumped) */
  main: string;
}

const HEADER = /^# configuration file (.+):$/;

/** Splits `nginx -T` stdout into its files. Lines before the first header (none from stdout) are ignored. */
export function splitNginxDump(text: string): NginxDump {
  const files = new Map<string, string>();
  let current: string | null = null;
  let lines: string[] = [];
  const flush = () => {
    // nginx prints a newline after each file's content
    if (current !== null && !files.has(current)) files.set(current, lines.join('\n').replace(/\n$/, ''));
  };
  for (const line of text.split('\n')) {
    const m = HEADER.exec(line);
    if (m) {
      flush();
      current = m[1]!;
      lines = [];
    } else if (current !== null) lines.push(line);
  }
  flush();
  const main = files.keys().next().value;
  if (main === undefined) throw new Error('no "# configuration file PATH:" line: not the output of nginx -T');
  return { files, main };
}

/** nginx's tokenizer: words, quoted strings, `;`, `{`, `}`, and `#` comments, with line numbers. */
function tokenize(text: string): { t: string; line: number; quoted: boolean }[] {
  const out: { t: string; line: number; quoted: boolean }[] = [];
  let line = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') i++;
    else if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === ';' || c === '{' || c === '}') {
      out.push({ t: c, line, quoted: false });
      i++;
    } else if (c === '"' || c === "'") {
      const start = line;
      let s = '';
      i++;
      while (i < text.length && text[i] !== c) {
        if (text[i] === '\\' && i + 1 < text.length) {
          const n = text[i + 1]!;
          s += n === c || n === '\\' ? n : `\\${n}`;
          i += 2;
          continue;
        }
        if (text[i] === '\n') line++;
        s += text[i++];
      }
      i++;
      out.push({ t: s, line: start, quoted: true });
    } else {
      let s = '';
      while (i < text.length) {
        const d = text[i]!;
        if (d === ' ' || d === '\t' || d === '\r' || d === '\n' || d === ';' || d === '"' || d === "'") break;
        // `${var}` keeps its braces; a bare `{` or `}` ends the word
        if (d === '{' && s.endsWith('$')) {
          const close = text.indexOf('}', i);
          if (close < 0) break;
          s += text.slice(i, close + 1);
          i = close + 1;
          continue;
        }
        if (d === '{' || d === '}') break;
        if (d === '\\' && i + 1 < text.length) {
          s += text.slice(i, i + 2);
          i += 2;
          continue;
        }
        s += d;
        i++;
      }
      out.push({ t: s, line, quoted: false });
    }
  }
  return out;
}

/** One file's directives as a tree. Throws on unbalanced braces or a directive without `;`. */
export function parseNginxFile(file: string, text: string): NginxDirective[] {
  const tokens = tokenize(text);
  let i = 0;
  const level = (depth: number): NginxDirective[] => {
    const list: NginxDirective[] = [];
    while (i < tokens.length) {
      const tok = tokens[i]!;
      if (tok.t === '}' && !tok.quoted) {
        if (depth === 0) throw new Error(`${file}:${tok.line}: unexpected "}"`);
        i++;
        return list;
      }
      if (!tok.quoted && (tok.t === ';' || tok.t === '{')) throw new Error(`${file}:${tok.line}: unexpected "${tok.t}"`);
      const d: NginxDirective = { name: tok.t, args: [], file, line: tok.line };
      i++;
      for (;;) {
        const a = tokens[i];
        if (!a) throw new Error(`${file}:${d.line}: "${d.name}" has no ";" or "{"`);
        i++;
        if (!a.quoted && a.t === ';') break;
        if (!a.quoted && a.t === '{') {
          d.block = level(depth + 1);
          break;
        }
        if (!a.quoted && a.t === '}') throw new Error(`${file}:${a.line}: unexpected "}"`);
        d.args.push(a.t);
      }
      list.push(d);
    }
    if (depth > 0) throw new Error(`${file}: unexpected end of file (a "{" is not closed)`);
    return list;
  };
  return level(0);
}

/** glob(3) as nginx's include uses it: `*`, `?`, `[...]`, no match across "/". */
function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close < 0) re += '\\[';
      else {
        const body = pattern.slice(i + 1, close).replace(/^!/, '^').replace(/\\/g, '\\\\');
        re += `[${body}]`;
        i = close;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Byte order, as glob(3) sorts in the C locale nginx runs with. */
const byteOrder = (a: string, b: string) => (Buffer.compare(Buffer.from(a), Buffer.from(b)));

/**
 * Every server's listens, in nginx's order. Relative includes resolve from the main file's
 * directory (nginx's conf prefix); a wildcard matches the dumped files in byte order, as glob(3).
 */
export function nginxListens(dump: NginxDump): NginxListen[] {
  const trees = new Map<string, NginxDirective[]>();
  const tree = (path: string) => {
    let t = trees.get(path);
    if (!t) trees.set(path, (t = parseNginxFile(path, dump.files.get(path)!)));
    return t;
  };
  const prefix = dump.main.slice(0, dump.main.lastIndexOf('/') + 1);
  const paths = [...dump.files.keys()];
  const includes = (pattern: string): string[] => {
    const abs = pattern.startsWith('/') ? pattern : prefix + pattern;
    if (!/[*?[]/.test(abs)) return dump.files.has(abs) ? [abs] : [];
    const re = globToRegExp(abs);
    return paths.filter((p) => re.test(p) && !p.slice(p.lastIndexOf('/') + 1).startsWith('.')).sort(byteOrder);
  };

  const out: NginxListen[] = [];
  const seen: string[] = [];
  const includedBy = new Map<string, NonNullable<NginxListen['serverInclude']>>();
  /** the directives of a list with includes expanded in place */
  const expand = (list: NginxDirective[]): NginxDirective[] =>
    list.flatMap((d) => {
      if (d.name !== 'include' || d.block || d.args.length !== 1) return [d];
      return includes(d.args[0]!).flatMap((p) => {
        if (seen.includes(p)) throw new Error(`${d.file}:${d.line}: include loop through ${p}`);
        seen.push(p);
        if (!includedBy.has(p)) includedBy.set(p, { file: d.file, line: d.line, pattern: d.args[0]!, glob: /[*?[]/.test(d.args[0]!) });
        try {
          return expand(tree(p));
        } finally {
          seen.pop();
        }
      });
    });

  const server = (context: 'http' | 'stream', s: NginxDirective) => {
    const body = expand(s.block!);
    const names = body.filter((d) => d.name === 'server_name').flatMap((d) => d.args);
    const listens = body.filter((d) => d.name === 'listen' && !d.block);
    const serverInclude = includedBy.get(s.file) ?? null;
    if (listens.length === 0 && context === 'http') {
      out.push({
        context, file: s.file, line: s.line, serverFile: s.file, serverLine: s.line, address: '*', port: 80, ipv6: false, udp: false,
        defaultServer: false, implicit: true, serverNames: names, text: '(no listen: nginx listens on *:80)', params: [], serverInclude,
      });
    }
    for (const l of listens) {
      const [addr = '', ...params] = l.args;
      out.push({
        context, file: l.file, line: l.line, serverFile: s.file, serverLine: s.line, ...parseListenAddress(addr, context),
        udp: params.includes('udp') || params.includes('quic'), defaultServer: params.includes('default_server') || params.includes('default'),
        implicit: false, serverNames: names, text: ['listen', ...l.args].join(' '), params, serverInclude,
      });
    }
  };
  const walk = (list: NginxDirective[], context: 'main' | 'http' | 'stream' | 'other') => {
    for (const d of expand(list)) {
      if (!d.block) continue;
      if (context === 'main' && (d.name === 'http' || d.name === 'stream')) walk(d.block, d.name);
      else if ((context === 'http' || context === 'stream') && d.name === 'server') server(context, d);
    }
  };
  seen.push(dump.main);
  walk(tree(dump.main), 'main');
  return out;
}

/** `80`, `1.2.3.4`, `1.2.3.4:80`, `*:80`, `[::]:80`, `unix:/path`, `localhost:8080`. */
export function parseListenAddress(arg: string, context: 'http' | 'stream'): { address: string; port: number | null; ipv6: boolean } {
  if (arg.startsWith('unix:')) return { address: arg, port: null, ipv6: false };
  const v6 = /^(\[[^\]]*\])(?::(\d+))?$/.exec(arg);
  if (v6) return { address: v6[1]!, port: v6[2] ? Number(v6[2]) : context === 'http' ? 80 : null, ipv6: true };
  if (/^\d+$/.test(arg)) return { address: '*', port: Number(arg), ipv6: false };
  const m = /^(.*):(\d+)$/.exec(arg);
  const host = m ? m[1]! : arg;
  return { address: host === '0.0.0.0' ? '*' : host, port: m ? Number(m[2]) : context === 'http' ? 80 : null, ipv6: false };
}
