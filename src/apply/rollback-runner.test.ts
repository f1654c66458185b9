/**
 * The rollback runner for real (sh), on journals laid out as apply writes them, in a private mount
 * namespace whose /var/lib/dsrctl is a tmpfs (needs root, like the lab).
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROLLBACK_RUNNER_SCRIPT } from './rollback-runner.js';

interface FakeChange {
  id: string;
  action: 'create' | 'update' | 'delete';
  /** what its undo appends to the log */
  undo: string;
  /** what its boot undo (the file part) appends to the log */
  boot?: string;
}

/** Lay out runs (oldest first) as apply leaves them, run `rollback.sh --all`, return the undo log. */
function rollbackAll(runs: { id: string; status: string; changes: FakeChange[]; boot?: string }[], extra: string[] = []): { log: string[]; out: string; code: number } {
  const dir = mkdtempSync(join(tmpdir(), 'dsrctl-runner-'));
  const log = join(dir, 'log');
  writeFileSync(log, '');
  const setup: string[] = ['set -e', 'mount -t tmpfs t /var/lib/dsrctl', `cp ${dir}/rollback.sh /var/lib/dsrctl/rollback.sh`];
  writeFileSync(join(dir, 'rollback.sh'), ROLLBACK_RUNNER_SCRIPT);
  for (const r of runs) {
    const rd = join(dir, 'runs', r.id, 'changes');
    mkdirSync(rd, { recursive: true });
    writeFileSync(join(dir, 'runs', r.id, 'status'), `${r.status}\n`);
    if (r.boot) writeFileSync(join(dir, 'runs', r.id, 'boot'), `${r.boot}\n`);
    r.changes.forEach((c, i) => {
      const n = join(rd, String(i + 1).padStart(3, '0'));
      writeFileSync(`${n}.undo`, `echo ${JSON.stringify(c.undo)} >> ${log}\n`);
      if (c.boot) writeFileSync(`${n}.boot`, `echo ${JSON.stringify(c.boot)} >> ${log}\n`);
      writeFileSync(`${n}.id`, `${c.id}\n`);
      writeFileSync(`${n}.action`, `${c.action}\n`);
      writeFileSync(`${n}.state`, 'done\n');
      writeFileSync(`${n}.summary`, `${c.undo}\n`);
      writeFileSync(`${n}.notify`, '\n');
    });
  }
  setup.push(`cp -r ${dir}/runs /var/lib/dsrctl/runs`, ...extra, 'sh /var/lib/dsrctl/rollback.sh --all test');
  mkdirSync('/var/lib/dsrctl', { recursive: true });
  const res = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', setup.join('\n')], { encoding: 'utf8' });
  return { log: readFileSync(log, 'utf8').split('\n').filter(Boolean), out: res.stdout + res.stderr, code: res.status ?? -1 };
}

const X = 'iptables -t mangle -A PREROUTING -s 172.16.0.11/32 ... MARK';

describe('rollback.sh --all: every active run, newest first, back to before the first', () => {
  it('a later run that repaired drift of what an older run created is superseded: only the older undo runs', () => {
    const r = rollbackAll([
      { id: '20260101T000000Z-aaaaaa', status: 'committed', changes: [{ id: X, action: 'create', undo: 'A removes X' }, { id: 'sysctl', action: 'update', undo: 'A resets sysctl' }] },
      { id: '20260102T000000Z-bbbbbb', status: 'committed', changes: [{ id: X, action: 'create', undo: 'B removes X' }] },
    ]);
    expect(r.code, r.out).toBe(0);
    expect(r.log).toEqual(['A resets sysctl', 'A removes X']);
  });

  it('a delete in between (a mode switch pruned it) stops the supersede: each undo runs, newest first', () => {
    const r = rollbackAll([
      { id: '20260101T000000Z-aaaaaa', status: 'committed', changes: [{ id: X, action: 'create', undo: 'A removes X' }] },
      { id: '20260102T000000Z-bbbbbb', status: 'committed', changes: [{ id: X, action: 'delete', undo: 'B re-inserts X' }] },
      { id: '20260103T000000Z-cccccc', status: 'committed', changes: [{ id: X, action: 'create', undo: 'C removes X' }] },
    ]);
    expect(r.code, r.out).toBe(0);
    expect(r.log).toEqual(['C removes X', 'B re-inserts X', 'A removes X']);
  });

  it('runs already rolled back are left alone; nothing active says so', () => {
    const r = rollbackAll([{ id: '20260101T000000Z-aaaaaa', status: 'rolled-back', changes: [{ id: X, action: 'create', undo: 'A removes X' }] }]);
    expect(r.log).toEqual([]);
    expect(r.out).toMatch(/@@dsrctl-nothing/);
  });
});

describe('rollback.sh after a reboot', () => {
  const THIS_BOOT = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const run = (boot: string) => ({
    id: '20260101T000000Z-aaaaaa',
    status: 'committed',
    boot,
    changes: [
      { id: 'file /etc/nginx/nginx.conf', action: 'update' as const, undo: 'restore nginx.conf and reload', boot: 'restore nginx.conf' },
      { id: X, action: 'create' as const, undo: 'iptables -D' },
    ],
  });
  it('a run of an earlier boot on a host that restored nothing at boot: only its files are put back, its runtime changes went with the reboot', () => {
    const r = rollbackAll([run('00000000-0000-0000-0000-000000000000')]);
    expect(r.code, r.out).toBe(0);
    expect(r.log).toEqual(['restore nginx.conf']);
    expect(r.out).toContain('@@dsrctl-undone (gone with the reboot) iptables -D');
  });
  it('a run of this boot: every undo as usual', () => {
    expect(rollbackAll([run(THIS_BOOT)]).log).toEqual(['iptables -D', 'restore nginx.conf and reload']);
  });
  it('a host whose persist.sh restored the state at boot: every undo as usual', () => {
    expect(rollbackAll([run('00000000-0000-0000-0000-000000000000')], ['echo "#!/bin/sh" > /var/lib/dsrctl/persist.sh']).log).toEqual(['iptables -D', 'restore nginx.conf and reload']);
  });
});
