import { describe, expect, it } from 'vitest';
import { notAppliedLines } from './not-applied.js';

describe('notAppliedLines', () => {
  it('a lab never applied: says the mode is not applied, where, and that dsrctl never applied anything there', () => {
    const hosts = [
      { host: 'proxy', pending: 9, lastRun: null },
      { host: 'dev1', pending: 1, lastRun: null },
    ];
    expect(notAppliedLines('ip-transparency', 'lab.yaml', hosts)).toEqual([
      'The ip-transparency mode is not applied on proxy (9 changes pending), dev1 (1 change pending): checks of a mode that is not in place fail.',
      'dsrctl has never applied anything on any of these hosts (no /var/lib/dsrctl/last-run).',
      'See the changes with dsrctl plan -i lab.yaml, make them with dsrctl apply -i lab.yaml.',
    ]);
  });
  it('rolled back on one host: only that host is named, without "never"', () => {
    const hosts = [
      { host: 'proxy', pending: 0, lastRun: 'r1' },
      { host: 'dev1', pending: 1, lastRun: 'r1' },
    ];
    expect(notAppliedLines('dsr-router-nat', 'x.yaml', hosts)[0]).toBe(
      'The dsr-router-nat mode is not applied on dev1 (1 change pending): checks of a mode that is not in place fail.',
    );
    expect(notAppliedLines('dsr-router-nat', 'x.yaml', hosts)).toHaveLength(2);
  });
  it('everything applied: nothing to add', () => {
    expect(notAppliedLines('ip-transparency', 'x.yaml', [{ host: 'proxy', pending: 0, lastRun: 'r' }, { host: 'dev1', lastRun: null }])).toEqual([]);
  });
});
