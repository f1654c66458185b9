import { createHash } from 'node:crypto';
import { FactsParseError, parseKeyValues } from '../format.js';
import type { DirStat, FileFact } from '../types.js';

function dirStat(section: string, path: string, text: string | undefined, raw: string): DirStat | undefined {
  if (text === undefined) return undefined;
  const m = /^(\d+) (\d+) ([0-7]{1,4}) (\/.*)$/.exec(text);
  if (!m) throw new FactsParseError(section, `${path}: bad directory owner/mode`, raw);
  return { uid: Number(m[1]), gid: Number(m[2]), mode: m[3]!, path: m[4]! };
}

/** realpath=, link=1, dir= and link_dir= (present whether or not the file exists). */
function locationOf(section: string, path: string, kv: Map<string, string>, line: (k: string) => string): Partial<FileFact> {
  const out: Partial<FileFact> = {};
  const rp = kv.get('realpath');
  if (rp !== undefined) out.realpath = rp;
  if (kv.get('link') === '1') out.link = true;
  const dir = dirStat(section, path, kv.get('dir'), line('dir'));
  if (dir) out.dir = dir;
  const linkDir = dirStat(section, path, kv.get('link_dir'), line('link_dir'));
  if (linkDir) out.linkDir = linkDir;
  return out;
}

const B64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * One `file` section (also used for the dsrctl state files): path=, exists=0|1, type=, mode=,
 * sha256=, and the exact bytes: blob=OFFSET SIZE into the `file-blob` section after it (`blob`
 * gives it, decoded; fileinfo in sections/files.ts) or content= (base64), or readable=0. The sha256
 * is checked against the bytes, so a file that changed between the two reads (or a cut-off line) is
 * an error.
 */
export function parseFileSection(body: string, section = 'file', blob?: () => Buffer | undefined): FileFact {
  const kv = parseKeyValues(section, body);
  const lines = body.split('\n');
  const line = (key: string) => lines.find((l) => l.startsWith(`${key}=`)) ?? '';
  const path = kv.get('path');
  if (!path) throw new FactsParseError(section, 'no path= line', lines[0] ?? '');
  const exists = kv.get('exists');
  if (exists === '0') return { path, exists: false, ...locationOf(section, path, kv, line) };
  if (exists !== '1') throw new FactsParseError(section, `${path}: bad exists=`, line('exists') || lines[1] || '');

  const fact: FileFact = { path, exists: true };
  Object.assign(fact, locationOf(section, path, kv, line));
  const type = kv.get('type');
  if (type === 'file' || type === 'dir' || type === 'other' || type === 'dangling') fact.type = type;
  else if (type !== undefined) throw new FactsParseError(section, `${path}: bad type=`, line('type'));
  const mode = kv.get('mode');
  if (mode !== undefined) {
    if (!/^[0-7]{1,4}$/.test(mode)) throw new FactsParseError(section, `${path}: bad mode=`, line('mode'));
    fact.mode = mode;
  }
  const owner = kv.get('owner');
  if (owner !== undefined) {
    const m = /^(\d+) (\d+)$/.exec(owner);
    if (!m) throw new FactsParseError(section, `${path}: bad owner=`, line('owner'));
    fact.owner = { uid: Number(m[1]), gid: Number(m[2]) };
  }
  if (fact.type !== 'file') return fact;

  if (kv.get('readable') === '0') {
    fact.readable = false;
    return fact;
  }
  const at = kv.get('blob');
  if (at !== undefined) return withBytes(section, fact, kv, line, blobBytes(section, path, at, blob?.()));
  const b64 = kv.get('content');
  if (b64 === undefined) {
    // readable but no base64 tool: content unknown
    fact.readable = false;
    return fact;
  }
  if (b64.length % 4 !== 0 || !B64_RE.test(b64)) throw new FactsParseError(section, `${path}: content= is not base64`, line('content'));
  return withBytes(section, fact, kv, line, Buffer.from(b64, 'base64'));
}

/** blob=OFFSET SIZE: those bytes of the file-blob section after the file's (fileinfo in sections/files.ts). */
function blobBytes(section: string, path: string, at: string, blob: Buffer | undefined): Buffer {
  const m = /^(\d+) (\d+)$/.exec(at);
  if (!m) throw new FactsParseError(section, `${path}: bad blob=`, `blob=${at}`);
  const [off, size] = [Number(m[1]), Number(m[2])];
  if (!blob) throw new FactsParseError(section, `${path}: blob= without a file-blob section after it`, `blob=${at}`);
  if (off + size > blob.length) throw new FactsParseError(section, `${path}: blob= beyond the file-blob section (${blob.length} bytes)`, `blob=${at}`);
  return blob.subarray(off, off + size);
}

/** The file's bytes, checked against its sha256= when the host printed one. */
function withBytes(section: string, fact: FileFact, kv: Map<string, string>, line: (k: string) => string, bytes: Buffer): FileFact {
  const path = fact.path;
  const b64 = bytes.toString('base64');
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const reported = kv.get('sha256');
  if (reported !== undefined && reported !== sha256) {
    throw new FactsParseError(section, `${path}: sha256 of the content does not match (file changed while being read?)`, line('sha256'));
  }
  fact.readable = true;
  // latin1: one char per byte, so bytes that are not UTF-8 survive an edit and the write back
  fact.content = bytes.toString('latin1');
  fact.contentBase64 = b64;
  fact.sha256 = sha256;
  return fact;
}
