import { describe, it, expect } from 'vitest';
import { parseRange, rangeNames, MAX_RANGE } from './range.js';

describe('upstream ranges', () => {
  it.each([
    ['172.16.0.11-14', ['172.16.0.11', '172.16.0.12', '172.16.0.13', '172.16.0.14']],
    ['172.16.0.11-172.16.0.14', ['172.16.0.11', '172.16.0.12', '172.16.0.13', '172.16.0.14']],
    ['172.16.0.11', ['172.16.0.11']],
    [' 172.16.0.11 - 12 , 172.16.0.20 ', ['172.16.0.11', '172.16.0.12', '172.16.0.20']],
    ['10.0.0.254-10.0.1.1', ['10.0.0.254', '10.0.0.255', '10.0.1.0', '10.0.1.1']],
  ])('%s', (text, expected) => {
    expect(parseRange(text)).toEqual({ ok: true, addresses: expected });
  });

  it.each([
    ['', /type an address range/],
    ['172.16.0.14-11', /ends before it starts/],
    ['172.16.0.11-300', /not an octet/],
    ['172.16.0.0/24', /not an IPv4 address/],
    ['dev1', /not an IPv4 address/],
    ['172.16.0.11-12, 172.16.0.12', /172\.16\.0\.12 appears twice/],
    ['10.0.0.0-10.0.9.0', new RegExp(`at most ${MAX_RANGE}`)],
    ['1.2.3.4-5-6', /not an address or a range/],
  ])('rejects %j', (text, pattern) => {
    const r = parseRange(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(pattern);
  });

  it('names them dev1.. in order', () => {
    expect(rangeNames('dev', 3)).toEqual(['dev1', 'dev2', 'dev3']);
    expect(rangeNames('web-', 2, 5)).toEqual(['web-5', 'web-6']);
  });
});
