import { parseIpAddr, parseIpRoutes, parseIpRules } from '../parsers/ip-json.js';
import type { FactSection } from './section.js';
import type { InterfaceFact, IpRoute, IpRule } from '../types.js';

/** Its part of HostFacts. */
export interface IpFacts {
  interfaces: InterfaceFact[];
  rules: IpRule[];
  routes: IpRoute[];
}

/** Addresses, policy rules and routes (every table), with rt_tables to name tables by number. */
export const ip: FactSection<IpFacts> = {
  id: 'ip',
  single: ['ip-addr', 'ip-rule', 'ip-route'],
  repeated: ['rt-tables'],
  shell: () => [
    '  run ip-addr ip -j addr show',
    '  run ip-rule ip -j -4 rule show',
    '  run ip-route ip -j -4 route show table all',
    // iproute2 prints a table by its name from rt_tables: the parser maps names back to numbers
    // cat, by the shell: each file's lines, a last line without its newline kept so
    `  b rt-tables; for _f in /etc/iproute2/rt_tables /etc/iproute2/rt_tables.d/*.conf /usr/share/iproute2/rt_tables /usr/lib/iproute2/rt_tables; do [ -f "$_f" ] || continue; _l=; while IFS= read -r _l; do printf '%s\\n' "$_l"; _l=; done 2>/dev/null <"$_f"; printf '%s' "$_l"; done; e rt-tables 0`,
  ],
  parse(ctx) {
    const names = parseRtTables(ctx.all('rt-tables').map((t) => t.body).join('\n'));
    return {
      interfaces: parseIpAddr(ctx.must('ip-addr')),
      rules: numericTables(parseIpRules(ctx.must('ip-rule')), names),
      routes: numericTables(parseIpRoutes(ctx.must('ip-route')), names),
    };
  },
};

/** `rt_tables`: "100 transparent" lines -> name -> number (main, local and default keep their names). */
export function parseRtTables(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\S+)/.exec(line);
    if (m && !['main', 'local', 'default', 'unspec'].includes(m[2]!) && !map.has(m[2]!)) map.set(m[2]!, m[1]!);
  }
  return map;
}

/** A table named in rt_tables is the same table as its number: plans compare numbers. */
function numericTables<T extends { table?: string }>(entries: T[], names: Map<string, string>): T[] {
  return entries.map((e) => (e.table && names.has(e.table) ? { ...e, table: names.get(e.table)! } : e));
}
