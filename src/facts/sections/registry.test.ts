import { describe, it, expect } from 'vitest';
import { FACT_SECTIONS } from './index.js';

const req = { sysctls: ['net.ipv4.ip_forward'], files: ['/etc/nginx/nginx.conf'], interfaces: ['pub0'], journalFiles: ['/etc/nginx/nginx.conf'], journalChanges: ['sysctl net.ipv4.ip_forward'], reads: ['/var/lib/dsrctl/health/state'] };

describe('the facts registry: each fact prints the sections it reads', () => {
  for (const s of FACT_SECTIONS) {
    const names = [...(s.single ?? []), ...(s.repeated ?? [])];
    it(`${names.join(', ') || 'its optional sections'}`, () => {
      const text = [s.helpers ?? '', ...s.shell(req), ...(s.files?.(req) ?? []).map(([n]) => `fileinfo ${n} `)].join('\n');
      // a section name reaches the output through `b NAME`, `run NAME`, `fileinfo NAME` (its files, or a fileinfo argument
      // list "$@" NAME PATH of its helpers), `stateinfo NAME` or `procline NAME` (in its lines or its helpers)
      for (const n of names) expect(text, n).toMatch(new RegExp(`(\\b(b|run|fileinfo|stateinfo|procline)|"\\$@") ${n}(\\s|;|$)`, 'm'));
    });
  }
  it('no two facts claim the same section', () => {
    const all = FACT_SECTIONS.flatMap((s) => [...(s.single ?? []), ...(s.repeated ?? [])]);
    expect(new Set(all).size).toBe(all.length);
  });
});
