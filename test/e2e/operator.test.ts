/**
 * The operator's surface (issue: locks after Ctrl-C, claims about hosts never read, rollback's
 * question, streams): the built CLI on the lab, in a real terminal where a person would be.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { hostname } from 'node:os';
import { spawnSync } from 'node:child_process';
import { CLI, LAB_INVENTORY, HOSTS, UPSTREAMS, labUp, labDown, onHost, run, locks, settledSnapshotAll, snapshotAll, inventoryReplacing, curlSources, waitUntil } from './harness.js';
import { Term, HAVE_TMUX, shq } from './term.js';
import { reportSchemaErrors } from '../support/report-schema.js';

const noLocks = () => Object.fromEntries(HOSTS.map((h) => [h, '']));

describe.skipIf(!HAVE_TMUX)('the operator\'s surface', () => {
  let before: Record<string, string>;
  // what the lab's inventory changes: every host's default route, the proxy's Method 1 setup
  let total = 0;
  let onProxy = 0;
  beforeAll(async () => {
    labUp();
    before = await settledSnapshotAll();
    const p = await run(['plan', '--json']);
    total = p.json.changes;
    onProxy = p.json.hosts.find((h: { host: string }) => h.host === 'proxy').changes.length;
  });
  afterAll(() => labDown());

  const term = (args: string) => new Term(process.cwd(), `node ${shq(CLI)} ${args}`, { NO_COLOR: '1' });

  it('Ctrl-C at apply\'s question releases every lock, exits 130 and changes nothing', async () => {
    const t = term(`apply -i ${shq(LAB_INVENTORY)}`);
    try {
      await t.question(/Apply these changes to 5 host\(s\)\?/, 60_000);
      expect(Object.values(locks()).every((l) => l.includes('command=apply'))).toBe(true);
      t.keys('C-c');
      await t.waitFor(/\[exited 130\]/, 30_000);
      expect(t.screen()).toContain('Interrupted; nothing was changed and every lock this run took was released.');
    } finally {
      t.close();
    }
    expect(locks()).toEqual(noLocks());
    expect(snapshotAll()).toEqual(before);
  });

  it('SIGTERM at the question does the same (a service manager, a closed session)', async () => {
    const t = term(`apply -i ${shq(LAB_INVENTORY)}`);
    try {
      await t.question(/Apply these changes/, 60_000);
      const pids = t.commandPids().slice(1);
      expect(pids.length).toBeGreaterThan(0);
      process.kill(pids[0]!, 'SIGTERM');
      await t.waitFor(/\[exited 130\]/, 30_000);
    } finally {
      t.close();
    }
    expect(locks()).toEqual(noLocks());
    expect(snapshotAll()).toEqual(before);
  });

  it('a lock left by a dsrctl of this machine that is gone is taken over without --break-lock', async () => {
    // a pid that cannot be alive: beyond pid_max
    const dead = `run=20261207T000000Z-dead01 command=apply agent=${hostname()} pid=4194304999 time=2026-12-07T00:00:00.000Z`;
    for (const h of HOSTS) onHost(h, `mkdir -p /var/lib/dsrctl && echo ${shq(dead)} > /var/lib/dsrctl/lock`);
    const r = await run(['plan']);
    expect(r.code).toBe(0);
    const p = await run(['apply', '--yes']);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toContain('proxy: took over the lock of run 20261207T000000Z-dead01');
    expect(curlSources()).toEqual(['192.168.99.1', '192.168.99.1', '192.168.99.1', '192.168.99.1']);
    expect(locks()).toEqual(noLocks());
  });

  it('a lock held by a live run elsewhere: the cause first, each host once', async () => {
    const live = 'run=20261207T000000Z-live01 command=apply agent=another-machine pid=1 time=2026-12-07T00:00:00.000Z';
    onHost('proxy', `echo ${shq(live)} > /var/lib/dsrctl/lock`);
    try {
      const r = await run(['apply', '--yes', '-q']);
      expect(r.code).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines[0]).toMatch(/^proxy: locked by run 20261207T000000Z-live01 \(dsrctl apply on another-machine, pid 1,/);
      expect(lines.filter((l) => l.includes('not read: the proxy is locked by another run'))).toEqual([`${UPSTREAMS.join(', ')}: not read: the proxy is locked by another run`]);
    } finally {
      onHost('proxy', 'rm -f /var/lib/dsrctl/lock');
    }
  });

  it('rollback shows what it will undo before it asks; "n" undoes nothing', async () => {
    const applied = snapshotAll();
    const t = term(`rollback -i ${shq(LAB_INVENTORY)}`);
    try {
      await t.question(new RegExp(`Undo these ${total} change\\(s\\) on 5 host\\(s\\)`), 60_000);
      const screen = t.screen();
      const q = screen.indexOf('? Undo these');
      // the preview comes before the question: hosts, runs, each change
      expect(screen.slice(0, q)).toMatch(new RegExp(`proxy: ${onProxy} changes to undo\\n {2}run \\S+:\\n {4}- `));
      expect(screen.slice(0, q)).toMatch(/dev1: 1 change to undo\n {2}run \S+:\n {4}- default route via 172\.16\.0\.254 .* -> via 172\.16\.0\.1/);
      t.keys('n', 'Enter');
      await t.waitFor(/\[exited 0\]/, 30_000);
      expect(t.screen()).toContain('Cancelled; nothing was undone.');
    } finally {
      t.close();
    }
    expect(locks()).toEqual(noLocks());
    expect(snapshotAll()).toEqual(applied);
  });

  it('rollback --yes says what each host has now, ends with a summary, and restores every byte', async () => {
    const r = await run(['rollback', '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/dev1: rolled back\n {4}default route via 172\.16\.0\.254 .* again \(dsrctl had set via 172\.16\.0\.1\)/);
    expect(r.stdout).toContain('removed: ip rule fwmark 0x1 lookup 100');
    expect(r.stdout).toContain('/etc/nginx/conf.d/app.conf: its earlier content is back');
    expect(r.stdout.trim().split('\n').at(-1)).toBe(`Rolled back ${total} changes on dev1, dev2, dev3, dev4, proxy; every host is as it was before dsrctl's first apply.`);
    expect(await waitUntil(() => JSON.stringify(snapshotAll()) === JSON.stringify(before), 10_000)).toBe(true);
    const again = await run(['rollback', '--yes']);
    expect(again.stdout.trim().split('\n').at(-1)).toBe('Nothing to undo on any host.');
  });

  it('a missing key: exit 2, one line naming the field and path, and no claim about any host', async () => {
    const inv = inventoryReplacing(/private_key: .*/, 'private_key: /nonexistent/id_ed25519');
    const r = await run(['plan'], inv);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual(['dsrctl: ssh.private_key: private key file /nonexistent/id_ed25519 does not exist']);
  });

  it('plan > file holds the plan alone: progress goes to stderr', async () => {
    const r = spawnSync(process.execPath, [CLI, 'plan', '-i', LAB_INVENTORY], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    expect(r.status).toBe(0);
    expect(r.stdout).not.toMatch(/connect to|read facts|changes? planned/);
    expect(r.stdout).toContain(`Plan: ${total} changes on 5 host(s).`);
    expect(r.stderr).toContain(`proxy: ${onProxy} changes planned`);
  });

  it('a host that cannot be read is never called "in the desired state"', async () => {
    // an address on the lab's own management net where no host answers
    const inv = inventoryReplacing(/(name: dev4, ssh_host: 10\.211\.\d+\.)14/, '$199');
    const r = await run(['plan'], inv, {});
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain('every host is in the desired state');
    expect(r.stdout).toMatch(/dev4 not read: nothing is known about it/);
  }, 60_000);

  it('every --json document, errors included, is one document that validates against the schema', async () => {
    const runs: [string, string[], number, string][] = [
      ['plan', ['plan', '--json', '-i', LAB_INVENTORY], 0, 'changes-pending'],
      ['apply without --yes on a non-terminal', ['apply', '--json', '-i', LAB_INVENTORY], 2, 'error'],
      ['plan of a missing inventory', ['plan', '--json', '-i', '/nonexistent/inventory.yaml'], 2, 'error'],
      ['verify without -i', ['verify', '--json'], 2, 'error'],
      ['apply', ['apply', '--yes', '--json', '-i', LAB_INVENTORY], 0, 'applied'],
      ['verify', ['verify', '--json', '-i', LAB_INVENTORY], 0, 'passed'],
      ['doctor', ['doctor', '--json', '-i', LAB_INVENTORY], 0, 'healthy'],
      ['rollback', ['rollback', '--yes', '--json', '-i', LAB_INVENTORY], 0, 'rolled-back'],
      ['a second rollback', ['rollback', '--yes', '--json', '-i', LAB_INVENTORY], 0, 'nothing-to-undo'],
    ];
    for (const [what, args, code, result] of runs) {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000 });
      let doc: any; // eslint-disable-line @typescript-eslint/no-explicit-any
      expect(() => (doc = JSON.parse(r.stdout)), `${what}: stdout is one JSON document:\n${r.stdout}\n${r.stderr}`).not.toThrow();
      expect(reportSchemaErrors(doc), `${what}: schema`).toBe('');
      expect([r.status, doc.exitCode, doc.result], `${what}:\n${r.stderr}`).toEqual([code, code, result]);
      expect(doc.schemaVersion).toBe(1);
    }
    expect(snapshotAll()).toEqual(before);
  });
});
