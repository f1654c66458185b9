import { describe, it, expect } from 'vitest';
import { formatPlan } from './output.js';
import type { HostPlan } from '../plan/types.js';

const none = (host: string, role: 'proxy' | 'upstream' = 'upstream'): HostPlan => ({ host, role, changes: [], notes: [] }) as unknown as HostPlan;

describe("the plan's last line never claims what it does not know", () => {
  it('every host read and in the desired state', () => {
    expect(formatPlan([none('proxy', 'proxy'), none('dev1')], { commands: false }).split('\n').at(-1)).toBe('Nothing to change: every host is in the desired state.');
  });
  it('a host not read is named as unknown, not as in the desired state', () => {
    expect(formatPlan([none('proxy', 'proxy')], { commands: false, unread: ['dev1'] }).split('\n').at(-1)).toBe('Nothing to change on proxy (dev1 not read: nothing is known about it).');
  });
  it('a host read but refused (a port conflict) is called refused, not unread', () => {
    expect(formatPlan([none('dev1')], { commands: false, refused: ['proxy'] }).split('\n').at(-1)).toBe('Nothing to change on dev1 (proxy refused: see below).');
    expect(formatPlan([], { commands: false, refused: ['proxy'], unread: ['dev2'] }).split('\n').at(-1)).toBe('No host was planned (dev2 not read: nothing is known about it) (proxy refused: see below).');
  });
});
