/**
 * Upstreams typed as a range: "172.16.0.11-14", "172.16.0.11-172.16.0.14", a single address, or
 * several of those separated by commas. Pure; the wizard's range question uses it.
 */
import ipaddr from 'ipaddr.js';

/** More than this in one answer is almost certainly a typo ("172.16.0.1-172.16.9.1"). */
export const MAX_RANGE = 256;

export type RangeResult = { ok: true; addresses: string[] } | { ok: false; error: string };

function toInt(s: string): number | undefined {
  if (!ipaddr.IPv4.isValidFourPartDecimal(s)) return undefined;
  return ipaddr.IPv4.parse(s).toByteArray().reduce((n, b) => n * 256 + b, 0);
}

function toAddr(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/** One item: "a.b.c.d", "a.b.c.d-e" (last octet) or "a.b.c.d-e.f.g.h". */
function parseItem(item: string): RangeResult {
  const [from, to, ...rest] = item.split('-').map((s) => s.trim());
  if (rest.length || !from) return { ok: false, error: `"${item}" is not an address or a range like 172.16.0.11-14` };
  const start = toInt(from);
  if (start === undefined) return { ok: false, error: `${from} is not an IPv4 address like 172.16.0.11` };
  if (to === undefined) return { ok: true, addresses: [from] };
  let end: number | undefined;
  if (/^\d{1,3}$/.test(to)) {
    if (Number(to) > 255) return { ok: false, error: `${to} is not an octet (0-255)` };
    end = start - (start % 256) + Number(to);
  } else end = toInt(to);
  if (end === undefined) return { ok: false, error: `${to} is neither a last octet (like 14) nor an IPv4 address` };
  if (end < start) return { ok: false, error: `${item}: the range ends before it starts` };
  if (end - start + 1 > MAX_RANGE) return { ok: false, error: `${item}: ${end - start + 1} addresses; at most ${MAX_RANGE} at once` };
  const out: string[] = [];
  for (let n = start; n <= end; n++) out.push(toAddr(n));
  return { ok: true, addresses: out };
}

/** "172.16.0.11-14, 172.16.0.20" -> the addresses in order; duplicates are an error. */
export function parseRange(text: string): RangeResult {
  const items = text.split(',').map((s) => s.trim());
  if (items.every((s) => s === '')) return { ok: false, error: 'type an address range like 172.16.0.11-14 or 172.16.0.11-172.16.0.14' };
  const all: string[] = [];
  for (const item of items) {
    if (item === '') continue;
    const r = parseItem(item);
    if (!r.ok) return r;
    all.push(...r.addresses);
  }
  const seen = new Set<string>();
  for (const a of all) {
    if (seen.has(a)) return { ok: false, error: `${a} appears twice` };
    seen.add(a);
  }
  if (all.length > MAX_RANGE) return { ok: false, error: `${all.length} addresses; at most ${MAX_RANGE} at once` };
  return { ok: true, addresses: all };
}

/** dev1, dev2, ... (`start` is the first number). */
export function rangeNames(prefix: string, count: number, start = 1): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${start + i}`);
}
