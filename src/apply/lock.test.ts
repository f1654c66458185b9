import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLockScript, holderIsDeadHere, lockInfo, parseLockOutput, releaseLockScript } from './lock.js';
import { STATE_DIR } from './paths.js';

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

describe('the lock scripts under sh (dash on Debian)', () => {
  // the scripts name /var/lib/dsrctl: run them against a private copy of the path
  const runSh = (dir: string, script: string) =>
    spawnSync('sh', ['-c', script.replaceAll(STATE_DIR, dir)], { encoding: 'utf8' });
  const fresh = () => join(mkdtempSync(join(tmpdir(), 'dsrctl-lock-')), 'state');
  const holder = (run: string) => lockInfo(run, 'apply');

  it('takes a free lock (creating the state directory), and refuses a held one naming its holder', () => {
    const dir = fresh();
    const first = runSh(dir, acquireLockScript(holder('r-one'), false));
    expect(parseLockOutput(first.stdout)).toEqual({ state: 'acquired', broke: undefined });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const second = runSh(dir, acquireLockScript(holder('r-two'), false));
    const st = parseLockOutput(second.stdout);
    expect(st?.state).toBe('held');
    expect(st && 'holder' in st && st.holder).toMatch(/^run=r-one command=apply /);
  });

  it('releases only its own run: another run id, or one that merely starts the same, leaves the lock', () => {
    const dir = fresh();
    runSh(dir, acquireLockScript(holder('r-one'), false));
    runSh(dir, releaseLockScript('r-on'));
    runSh(dir, releaseLockScript('r-two'));
    expect(readFileSync(join(dir, 'lock'), 'utf8')).toMatch(/^run=r-one /);
    expect(runSh(dir, releaseLockScript('r-one')).status).toBe(0);
    expect(existsSync(join(dir, 'lock'))).toBe(false);
    // no lock at all: nothing to do, and no error (not even a message: it runs in every exit trap)
    const none = runSh(dir, releaseLockScript('r-one'));
    expect([none.status, none.stderr]).toEqual([0, '']);
  });
});
