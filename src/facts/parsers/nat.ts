import type { Section } from '../format.js';
import { parseKeyValues } from '../format.js';
import type { NatBackendFacts, NftFacts, TcFacts } from '../types.js';

/** `nft list ruleset`: tables split at their column-0 "table FAMILY NAME {" ... "}" lines. */
export function parseNft(s: Section): NftFacts {
  if (s.rc === 127) return { available: false, ruleset: '', tables: {} };
  const ruleset = s.rc === 0 && s.body !== '' ? `${s.body}\n` : '';
  const tables: Record<string, string> = {};
  let open: { key: string; lines: string[] } | null = null;
  for (const line of ruleset.split('\n')) {
    const m = /^table (\S+) (\S+) \{$/.exec(line);
    if (m && !open) open = { key: `${m[1]} ${m[2]}`, lines: [line] };
    else if (open) {
      open.lines.push(line);
      if (line === '}') {
        tables[open.key] = `${open.lines.join('\n')}\n`;
        open = null;
      }
    }
  }
  return { available: true, ruleset, tables };
}

export function parseNatProbe(body: string): NatBackendFacts {
  const kv = parseKeyValues('nat-probe', body);
  const n = (k: string) => Number(kv.get(k) ?? '0') > 0;
  const actNat = n('act_nat_loaded') ? 'loaded' : n('act_nat_builtin') ? 'builtin' : kv.get('act_nat_module') ? 'module' : 'absent';
  return { actNat, tc: !!kv.get('tc'), nft: !!kv.get('nft') };
}

/** One `tc` section: `dev=IF`, `tc qdisc show` lines, `--filters--`, `tc filter show` lines. */
export function parseTc(body: string): [string, TcFacts] {
  const lines = body.split('\n');
  const dev = /^dev=(.*)$/.exec(lines[0] ?? '')?.[1] ?? '';
  const sep = lines.indexOf('--filters--');
  const qdiscLines = lines.slice(1, sep < 0 ? undefined : sep).filter((l) => l.trim());
  const filters = sep < 0 ? '' : lines.slice(sep + 1).filter((l) => l.trim() !== '').join('\n');
  let rootQdisc: TcFacts['rootQdisc'] = null;
  for (const l of qdiscLines) {
    const m = /^qdisc (\S+) (\S+) root\b/.exec(l);
    // a root qdisc with handle 0: is the kernel's default (noqueue, pfifo_fast, mq, fq_codel, or
    // whatever net.core.default_qdisc names): nobody's
    if (m && m[2] !== '0:') rootQdisc = { kind: m[1]!, handle: m[2]! };
  }
  return [dev, { rootQdisc, qdiscs: qdiscLines.join('\n'), filters }];
}
