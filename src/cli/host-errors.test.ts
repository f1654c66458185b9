import { describe, it, expect } from 'vitest';
import { summarizeHostErrors } from './host-errors.js';

describe('host errors, as the operator reads them', () => {
  it('puts the cause (the proxy) first and names hosts that failed alike once, in inventory order', () => {
    const errors = new Map<string, Error>([
      ['dev4', new Error('not read: the proxy is locked by another run')],
      ['dev1', new Error('not read: the proxy is locked by another run')],
      ['proxy', new Error('locked by run r1 (dsrctl apply on ops, pid 7, since t); if that run is dead, run again with --break-lock')],
      ['dev2', new Error('dev2: connection refused')],
    ]);
    expect(summarizeHostErrors(errors, ['proxy', 'dev1', 'dev2', 'dev3', 'dev4'])).toEqual([
      'proxy: locked by run r1 (dsrctl apply on ops, pid 7, since t); if that run is dead, run again with --break-lock',
      'dev1, dev4: not read: the proxy is locked by another run',
      'dev2: connection refused',
    ]);
  });
});
