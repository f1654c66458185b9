import { quote } from 'shell-quote';
import { parseFileSection } from '../parsers/files.js';
import type { FileFact } from '../types.js';
import type { FactSection } from './section.js';

/** Its part of HostFacts. */
export interface FilesFacts {
  files: Record<string, FileFact>;
}

export function checkFactsPath(path: string): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw new Error(`invalid file path ${JSON.stringify(path)}: not absolute`);
  if (/[\0\n]/.test(path)) throw new Error(`invalid file path ${JSON.stringify(path)}: contains NUL or newline`);
  return path;
}

/** The files the plan edits or compares: type, mode, owner, sha256, content, resolved path (fileinfo in script.ts). */
export const files: FactSection<FilesFacts> = {
  id: 'files',
  repeated: ['file'],
  shell: (req) => [...new Set(req.files)].map(checkFactsPath).map((p) => `  fileinfo file ${quote([p])}`),
  parse(ctx) {
    const out: Record<string, FileFact> = {};
    for (const s of ctx.all('file')) {
      const f = parseFileSection(s.body);
      out[f.path] = f;
      if (f.exists && f.type === 'file' && f.readable === false) ctx.incomplete.push({ section: 'file', reason: `${f.path}: unreadable` });
    }
    return { files: out };
  },
};
