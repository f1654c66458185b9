import { quote } from 'shell-quote';
import { FactsParseError, parseKeyValues, type Section } from '../format.js';
import { checkFactsPath } from './files.js';
import type { FactSection } from './section.js';

/** Its part of HostFacts. */
export interface ReadsFacts {
  /** requested `reads`: the bytes (latin1), null when absent; absent from an older script */
  reads?: Record<string, string | null>;
}

/** Files another program rewrites (the health checker's state): one open, one read, so one version. */
export const reads: FactSection<ReadsFacts> = {
  id: 'reads',
  repeated: ['read'],
  shell: (req) => [
    // one open, one read: a file the checker replaces (mv) meanwhile is read whole, old or new
    ...[...new Set(req.reads ?? [])].map(checkFactsPath).map((p) => `  b read; b64_probe; printf 'path=%s\\n' ${quote([p])}; if { printf 'exists=1\\ncontent=%s\\n' "$(b64 <&3)"; } 2>/dev/null 3<${quote([p])}; then :; else printf 'exists=0\\n'; fi; e read 0`),
  ],
  parse: (ctx) => (ctx.all('read').length ? { reads: parseReads(ctx.all('read')) } : {}),
};

/** `read` sections: path, exists, content (base64 of one read) -> path -> bytes (latin1) or null. */
export function parseReads(sections: Section[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const s of sections) {
    const kv = parseKeyValues('read', s.body);
    const path = kv.get('path');
    if (!path) throw new FactsParseError('read', 'no path= line', s.body.split('\n')[0] ?? '');
    out[path] = kv.get('exists') === '1' ? Buffer.from(kv.get('content') ?? '', 'base64').toString('latin1') : null;
  }
  return out;
}
