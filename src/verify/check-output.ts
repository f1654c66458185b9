import { Buffer } from 'node:buffer';

/**
 * What a check script prints (check-script.ts), read back. Pure. The script's lines:
 *   @@check ID ok|fail DETAIL     a check the shell decided (pings)
 *   @@val ID TEXT                 a check's whole output when it is one line of plain tokens
 *   @@raw ID BASE64               a check's output (arbitrary text) on one line
 *   @@http EXIT CODE ID ERROR     one request of a curl batch: curl's exit code, the HTTP status
 *                                 (000: no response), the request's id, curl's error message
 *   @@raw64 ID / @@heads64        a base64 block up to `@@end`: one check's output, or
 *                                 `head -v -c N FILE...` of files named by check id
 *   @@probe TEXT                  one probe request's answer (the per-request fallback)
 *   @@nonce NONCE                 the path check's unique path
 * Blocks are printed last, when nothing else writes, so no other line can land inside one.
 */
export interface ScriptOutput {
  checks: Map<string, { ok: boolean; detail: string }>;
  /** @@val, @@raw, @@raw64 by id */
  raw: Map<string, string>;
  /** the files of @@heads64 blocks by name (a check id): their first bytes */
  files: Map<string, Buffer>;
  http: Map<string, HttpLine>;
  probes: string[];
  nonce: string;
}

export interface HttpLine {
  exit: number;
  /** as curl's %{http_code} prints it: 000 when no response came */
  code: string;
  error: string;
}

export function parseScriptOutput(stdout: string): ScriptOutput {
  const out: ScriptOutput = { checks: new Map(), raw: new Map(), files: new Map(), http: new Map(), probes: [], nonce: '' };
  let block: { id: string | null; lines: string[] } | undefined;
  for (const line of stdout.split('\n')) {
    if (block) {
      if (line !== '@@end') {
        block.lines.push(line.trim());
        continue;
      }
      const bytes = Buffer.from(block.lines.join(''), 'base64');
      if (block.id === null) for (const [id, content] of splitHeads(bytes)) out.files.set(id, content);
      else out.raw.set(block.id, bytes.toString('utf8'));
      block = undefined;
      continue;
    }
    let m: RegExpExecArray | null;
    if ((m = /^@@check (\S+) (ok|fail) ?(.*)$/.exec(line))) out.checks.set(m[1]!, { ok: m[2] === 'ok', detail: (m[3] ?? '').trim() });
    else if ((m = /^@@http (\d+) (\d+) (\S+) ?(.*)$/.exec(line))) out.http.set(m[3]!, { exit: Number(m[1]), code: m[2]!, error: (m[4] ?? '').trim() });
    else if ((m = /^@@val (\S+) ?(.*)$/.exec(line))) out.raw.set(m[1]!, m[2] ?? '');
    else if ((m = /^@@raw (\S+) ?(\S*)$/.exec(line))) out.raw.set(m[1]!, Buffer.from(m[2] ?? '', 'base64').toString('utf8'));
    else if ((m = /^@@raw64 (\S+)$/.exec(line))) block = { id: m[1]!, lines: [] };
    else if (line === '@@heads64') block = { id: null, lines: [] };
    else if (line.startsWith('@@probe')) out.probes.push(line.slice(7).trim());
    else if ((m = /^@@nonce (\S+)$/.exec(line))) out.nonce = m[1]!;
  }
  return out;
}

/**
 * `head -v -c N DIR/ID...` -> the content of each file by ID. head writes `==> DIR/ID <==` before
 * each file it could open (and a newline before every header but the first); the first header
 * names the directory, a fresh mktemp -d that no content can know, so no content can fake a header.
 */
export function splitHeads(bytes: Buffer): Map<string, Buffer> {
  // latin1: one character per byte, so the files keep their exact bytes
  const text = bytes.toString('latin1');
  const files = new Map<string, Buffer>();
  const first = /^==> (.*)\/([^/\n]+) <==\n/.exec(text);
  if (!first) return files;
  const dir = first[1]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const header = new RegExp(`\\n==> ${dir}/([^/\\n]+) <==\\n`, 'g');
  let id = first[2]!;
  let start = first[0].length;
  for (const m of text.matchAll(header)) {
    files.set(id, Buffer.from(text.slice(start, m.index), 'latin1'));
    id = m[1]!;
    start = m.index! + m[0].length;
  }
  files.set(id, Buffer.from(text.slice(start), 'latin1'));
  return files;
}

const curlError = (h: HttpLine) => (h.exit ? `curl: (${h.exit}) ${h.error}` : '');

/**
 * An HTTP check's answer in the format of its one-request command (serviceProbeCommand): the
 * status, curl's error line (what `curl -sS` prints on stderr: `curl: (EXIT) MESSAGE`), the body's start.
 */
export function httpCheckRaw(h: HttpLine, body?: Buffer): string {
  return `${h.code}\n${curlError(h)}\n${body?.toString('utf8') ?? ''}`;
}

/**
 * A probe request's answer as the one-request probe printed it: `curl -sS -f ... 2>&1 | head -c 300
 * | tr '\n' ' '`. curl's error comes before the body: curl writes its error unbuffered and the
 * body's start, still in its buffer, when it exits.
 */
export function probeHttpText(h: HttpLine, body?: Buffer): string {
  const err = curlError(h);
  const bytes = Buffer.concat([Buffer.from(err ? `${err}\n` : ''), body ?? Buffer.alloc(0)]).subarray(0, 300);
  return bytes.toString('utf8').replace(/\n/g, ' ').trim();
}
