import { FactsParseError, clip } from '../format.js';
import type { InterfaceFact, IpRoute, IpRule } from '../types.js';

type Json = Record<string, unknown>;

/** JSON.parse of `ip -j` output; on failure the error names the section and the offending line. */
function parseJsonArray(section: string, body: string): Json[] {
  if (body.trim() === '') return []; // iproute2 prints nothing (not "[]") for some empty dumps
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    const msg = (err instanceof Error ? err.message : String(err)).replace(/, "[\s\S]*$/, '').split('\n')[0];
    throw new FactsParseError(section, `not JSON (${msg})`, offendingJsonLine(body));
  }
  if (!Array.isArray(value)) throw new FactsParseError(section, 'expected a JSON array', body.split('\n')[0]);
  return value.map((v) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      throw new FactsParseError(section, 'expected an array of objects', clip(JSON.stringify(v)));
    }
    return v as Json;
  });
}

/** The first line at which a JSON prefix stops being merely incomplete and becomes invalid. */
function offendingJsonLine(body: string): string {
  const lines = body.split('\n');
  for (let i = 1; i <= lines.length; i++) {
    try {
      JSON.parse(lines.slice(0, i).join('\n'));
    } catch (err) {
      if (!(err instanceof SyntaxError) || !/end of JSON input|Unterminated/i.test(err.message)) return lines[i - 1]!;
    }
  }
  return lines.at(-1) ?? '';
}

function need<T>(section: string, entry: Json, key: string, type: 'string' | 'number'): T {
  const v = entry[key];
  if (typeof v !== type) throw new FactsParseError(section, `entry without ${type} "${key}"`, JSON.stringify(entry));
  return v as T;
}

function opt<T>(section: string, entry: Json, key: string, type: 'string' | 'number'): T | undefined {
  const v = entry[key];
  if (v === undefined) return undefined;
  if (typeof v !== type) throw new FactsParseError(section, `"${key}" is not a ${type}`, JSON.stringify(entry));
  return v as T;
}

function stringArray(section: string, entry: Json, key: string): string[] | undefined {
  const v = entry[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new FactsParseError(section, `"${key}" is not an array of strings`, JSON.stringify(entry));
  }
  return v as string[];
}

/** `ip -j addr show` */
export function parseIpAddr(body: string, section = 'ip-addr'): InterfaceFact[] {
  return parseJsonArray(section, body).map((link) => {
    const name = need<string>(section, link, 'ifname', 'string');
    const info = link['addr_info'] ?? [];
    if (!Array.isArray(info)) throw new FactsParseError(section, '"addr_info" is not an array', JSON.stringify(link));
    const addresses: InterfaceFact['addresses'] = [];
    for (const a of info as Json[]) {
      // entries without "local" exist (e.g. a lone {} for addresses filtered out): skip them
      if (a === null || typeof a !== 'object' || a['local'] === undefined) continue;
      const family = need<string>(section, a, 'family', 'string');
      if (family !== 'inet' && family !== 'inet6') continue;
      addresses.push({
        family,
        address: need<string>(section, a, 'local', 'string'),
        prefixlen: need<number>(section, a, 'prefixlen', 'number'),
      });
    }
    const fact: InterfaceFact = {
      name,
      state: opt<string>(section, link, 'operstate', 'string') ?? 'UNKNOWN',
      addresses,
      flags: stringArray(section, link, 'flags') ?? [],
    };
    const ifindex = opt<number>(section, link, 'ifindex', 'number');
    const mtu = opt<number>(section, link, 'mtu', 'number');
    const linkType = opt<string>(section, link, 'link_type', 'string');
    if (ifindex !== undefined) fact.ifindex = ifindex;
    if (mtu !== undefined) fact.mtu = mtu;
    if (linkType !== undefined) fact.linkType = linkType;
    return fact;
  });
}

/** `ip -j -4 rule show`: entries as printed; `table` is "" for rules without a lookup. */
export function parseIpRules(body: string, section = 'ip-rule'): IpRule[] {
  return parseJsonArray(section, body).map((r) => {
    need<number>(section, r, 'priority', 'number');
    opt<string>(section, r, 'fwmark', 'string');
    opt<string>(section, r, 'fwmask', 'string');
    const table = opt<string>(section, r, 'table', 'string') ?? '';
    return { ...r, table } as IpRule;
  });
}

/**
 * `ip -j -4 route show table all`, normalized: iproute2 leaves out the defaults, the parser puts
 * them back (type "unicast", table "main", protocol "boot", scope "global", metric 0, flags []).
 * A /0 destination prints as "default" (also in table 100 for `local 0.0.0.0/0`); kept as printed.
 */
export function parseIpRoutes(body: string, section = 'ip-route'): IpRoute[] {
  return parseJsonArray(section, body).map((r) => {
    const dst = need<string>(section, r, 'dst', 'string');
    for (const key of ['type', 'gateway', 'dev', 'protocol', 'scope', 'prefsrc', 'table']) opt<string>(section, r, key, 'string');
    opt<number>(section, r, 'metric', 'number');
    const route: IpRoute = {
      ...r,
      type: (r['type'] as string | undefined) ?? 'unicast',
      dst,
      protocol: (r['protocol'] as string | undefined) ?? 'boot',
      scope: (r['scope'] as string | undefined) ?? 'global',
      metric: (r['metric'] as number | undefined) ?? 0,
      table: (r['table'] as string | undefined) ?? 'main',
      flags: stringArray(section, r, 'flags') ?? [],
    };
    return route;
  });
}
