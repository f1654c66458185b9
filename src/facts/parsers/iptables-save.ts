import { FactsParseError } from '../format.js';
import type { IptablesFacts } from '../types.js';

/** `iptables -V`: "iptables v1.8.9 (nf_tables)" -> "nft"; "(legacy)" or no suffix (before 1.8) -> "legacy". */
export function parseIptablesVariant(body: string, section = 'iptables-version'): 'nft' | 'legacy' {
  const line = body.split('\n').find((l) => /^ip6?tables(-\w+)? v\d/.test(l));
  if (line === undefined) throw new FactsParseError(section, 'no "iptables vX.Y.Z" line', body.split('\n')[0] ?? '');
  return /\(nf_tables\)/.test(line) ? 'nft' : 'legacy';
}

/** `iptables-save` (no counters): tables with their chains and their `-A` lines exactly as printed. */
export function parseIptablesSave(body: string, section = 'iptables-save'): IptablesFacts['tables'] {
  const tables: IptablesFacts['tables'] = {};
  let current: { chains: string[]; rules: string[] } | null = null;
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      const name = line.slice(1);
      if (current) throw new FactsParseError(section, 'table starts before COMMIT of the previous one', line);
      if (!/^[a-z_]+$/.test(name)) throw new FactsParseError(section, 'bad table name', line);
      current = tables[name] ??= { chains: [], rules: [] };
    } else if (line === 'COMMIT') {
      if (!current) throw new FactsParseError(section, 'COMMIT outside a table', line);
      current = null;
    } else if (line.startsWith(':')) {
      if (!current) throw new FactsParseError(section, 'chain outside a table', line);
      const m = /^:(\S+) \S+( \[\d+:\d+\])?$/.exec(line);
      if (!m) throw new FactsParseError(section, 'bad chain line', line);
      current.chains.push(m[1]!);
    } else if (line.startsWith('-A ')) {
      if (!current) throw new FactsParseError(section, 'rule outside a table', line);
      current.rules.push(line);
    } else {
      throw new FactsParseError(section, 'unexpected line', line);
    }
  }
  if (current) throw new FactsParseError(section, 'last table has no COMMIT (truncated?)', body.split('\n').at(-1) ?? '');
  return tables;
}
