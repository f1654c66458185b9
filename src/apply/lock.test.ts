import { describe, it, expect } from 'vitest';
import { holderIsDeadHere, lockInfo } from './lock.js';

describe('a lock whose holder is provably dead', () => {
  const holder = 'run=20261207T210000Z-abcd command=apply agent=ops-box pid=4242 time=2026-12-07T21:00:00.000Z';
  it('is dead when its agent is this machine and its pid is gone', () => {
    expect(holderIsDeadHere(holder, 'ops-box', () => false)).toBe(true);
  });
  it('is not dead when the pid is alive, or the holder ran on another machine', () => {
    expect(holderIsDeadHere(holder, 'ops-box', () => true)).toBe(false);
    expect(holderIsDeadHere(holder, 'other-box', () => false)).toBe(false);
    expect(holderIsDeadHere('garbage', 'ops-box', () => false)).toBe(false);
  });
  it('is not dead while this very process holds it', () => {
    expect(holderIsDeadHere(lockInfo('r1', 'apply'))).toBe(false);
  });
});
