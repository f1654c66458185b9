import { describe, expect, it } from 'vitest';
import { judgeHttpProbe, judgeDnsProbe } from './checks.js';
import type { Inventory } from '../inventory/schema.js';

const inv = (expect_source?: string) => ({ proxy: { private_ip: '172.16.0.1', public_ip: '192.168.99.10' }, verify: { probe: { expect_source } } }) as unknown as Inventory;
const hello = (src: string) => `Hello from dev1. You connected from ${src}:40000 to 172.16.0.11:8080`;

describe('the HTTP probe: the guide\'s test', () => {
  it('passes when every upstream saw the client address', () => {
    expect(judgeHttpProbe([hello('192.168.99.1'), hello('192.168.99.1')], inv('192.168.99.1')).ok).toBe(true);
  });
  it('fails when an upstream saw the proxy (transparency not working)', () => {
    expect(judgeHttpProbe([hello('192.168.99.1'), hello('172.16.0.1')], inv('192.168.99.1'))).toMatchObject({ ok: false, detail: expect.stringMatching(/1 of 2 responses did not come from 192\.168\.99\.1/) });
  });
  it('without an expected address: an HTTP error (curl -f, e.g. the 502 of a failed transparent bind) or an echo of the proxy fails', () => {
    expect(judgeHttpProbe(['curl: (22) The requested URL returned error: 502'], inv()).ok).toBe(false);
    expect(judgeHttpProbe([hello('172.16.0.1')], inv()).ok).toBe(false);
    expect(judgeHttpProbe(['<html>welcome</html>'], inv()).ok).toBe(true);
  });
  it('DNS: every query must be answered', () => {
    expect(judgeDnsProbe(['172.16.0.11', '172.16.0.12']).ok).toBe(true);
    expect(judgeDnsProbe(['172.16.0.11', ';; communications error to 192.168.99.10#53: timed out'])).toMatchObject({ ok: false });
  });
});
