/**
 * SSH access as real networks need it, end to end against the lab (the real CLI, dist/cli.js:
 * run `npm run build` first):
 *
 *   DSR_E2E_PREFIX=acc DSR_E2E_OCTET=4 npx vitest run --project e2e test/e2e/access.test.ts
 *
 * - DSR_LAB_JUMP=1: the upstreams have no management address; their sshd listens on the private
 *   network only, reached through the proxy's SSH connection (ssh.jump: proxy).
 * - DSR_LAB_SUDO=1: every host is managed as the non-root user ops with sudo; a host whose sudo
 *   wants a password fails before any change; sudo_password and SSH password login from .env.
 * Secrets never appear in any output, JSON, or file on the hosts.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LAB_DIR, LAB_ENV, LAB_INVENTORY, HOSTS, UPSTREAMS, labUp, labDown, onHost, run, settledSnapshotAll, inventoryVariant, curlSources, type CliResult } from './harness.js';
import { show, expectCode, expectSnapshots, expectNoLocks, hostJson } from './expect.js';
import { CLIENT_IP } from './net.js';

/** ops's password on the sudo lab: for sudo and for SSH password login */
const SECRET = 'Lab-s3cret pass';

function sshdLog(host: string): string {
  try {
    return readFileSync(join(LAB_DIR, 'hosts', host, 'ssh', 'sshd.log'), 'utf8');
  } catch {
    return '';
  }
}
const accepted = (host: string) => sshdLog(host).split('\n').filter((l) => l.startsWith('Accepted ')).length;

/** No output of any run, and no file dsrctl left on a host, holds the secret. */
function expectNoSecret(runs: CliResult[], what: string): void {
  // the search itself finds a planted copy
  onHost('dev1', ['sh', '-c', 'printf "%s\\n" "$1" >/tmp/planted', 'sh', SECRET]);
  expect(onHost('dev1', ['grep', '-rlF', '--', SECRET, '/tmp']).stdout.trim()).toBe('/tmp/planted');
  onHost('dev1', 'rm -f /tmp/planted');
  for (const r of runs) expect(r.stdout + r.stderr, show(r, `${what}: the secret in the output`)).not.toContain(SECRET);
  for (const h of HOSTS) {
    const g = onHost(h, ['grep', '-rlF', '--', SECRET, '/var/lib/dsrctl', '/tmp', '/etc/nginx', '/run']);
    expect(g.stdout.trim(), `${what}: files on ${h} holding the secret`).toBe('');
  }
}

afterAll(() => {
  labDown();
});

describe('jump host: the upstreams are reachable only through the proxy (DSR_LAB_JUMP=1)', () => {
  let before: Record<string, string>;

  beforeAll(async () => {
    labUp({ DSR_LAB_JUMP: '1' });
    before = await settledSnapshotAll();
  });
  afterAll(() => labDown());

  it('the lab inventory reaches the upstreams at their private address through the proxy', () => {
    const inv = readFileSync(LAB_INVENTORY, 'utf8');
    expect(inv).toMatch(/^ {2}jump: proxy$/m);
    for (const [i, h] of UPSTREAMS.entries()) expect(inv).toContain(`{ name: ${h}, ssh_host: 172.16.0.1${i + 1},`);
    // the upstreams have no management interface at all
    for (const h of UPSTREAMS) expect(onHost(h, 'ip -br link show mgmt0').code, `${h} has no mgmt0`).not.toBe(0);
  });

  it('without the jump the agent cannot reach them: no lab route to 172.16.0.0/24 here', () => {
    // Only the routing decision is checked: a connection attempt would leave this machine by its
    // own default route towards an address that is not the lab's, which lab traffic must never do.
    const get = spawnSync('ip', ['route', 'get', '172.16.0.11'], { encoding: 'utf8' });
    const prefix = String(LAB_ENV.DSR_LAB_PREFIX);
    expect(get.stdout, `root namespace route to 172.16.0.11: ${get.stdout}${get.stderr}`).not.toMatch(new RegExp(`dev ${prefix}-`));
    expect(readFileSync(LAB_INVENTORY, 'utf8')).not.toMatch(/ssh_host: 10\.211\.\d+\.1[1-4]\b/);
  });

  it('apply, verify and rollback work through the proxy, over one SSH connection to it', async () => {
    const proxyBefore = accepted('proxy');
    const a = await run(['apply', '--yes', '--json']);
    expectCode(a, 0, 'apply through the proxy');
    expect(a.json?.result, show(a)).toBe('applied');
    // the proxy's sshd accepted one connection for the whole run: its own execs, the four tunnels, the probe
    expect(accepted('proxy') - proxyBefore, `proxy sshd.log:\n${sshdLog('proxy')}`).toBe(1);
    // and each upstream saw its SSH connection come from the proxy's private address
    for (const h of UPSTREAMS) expect(sshdLog(h), `${h} sshd.log`).toMatch(/Accepted publickey for root from 172\.16\.0\.1 port/);
    expect(curlSources()).toEqual([CLIENT_IP, CLIENT_IP, CLIENT_IP, CLIENT_IP]);

    const v = await run(['verify']);
    expectCode(v, 0, 'verify through the proxy');
    expect(v.stdout).toMatch(/Verification passed/);

    const rb = await run(['rollback', '--yes']);
    expectCode(rb, 0, 'rollback through the proxy');
    for (const h of HOSTS) expect(rb.stdout, show(rb)).toContain(`${h}: rolled back`);
    expectSnapshots(before, 'after rollback');
    expectNoLocks('after rollback');
  });

  it('an upstream the proxy cannot reach: the error names both hops; nothing changes', async () => {
    const bad = inventoryVariant((y) => y.replace('{ name: dev4, ssh_host: 172.16.0.14,', '{ name: dev4, ssh_host: 172.16.0.99, ssh: { connect_timeout: 3 },'));
    const r = await run(['apply', '--yes', '--json'], bad);
    expectCode(r, 1, 'apply with an unreachable upstream');
    const dev4 = hostJson(r.json, 'dev4');
    expect(dev4?.error, show(r)).toMatch(/cannot connect to dev4 \(root@172\.16\.0\.99:22 via proxy root@10\.211\.\d+\.10:22\): proxy \(root@10\.211\.\d+\.10:22\) could not open a/);
    expectSnapshots(before, 'a failed connect changes nothing');
    expectNoLocks('after the failed connect');
  });
});

describe('sudo: every host managed as the non-root user ops (DSR_LAB_SUDO=1)', () => {
  let before: Record<string, string>;
  const runs: CliResult[] = [];
  /** a copy of the lab inventory plus a .env beside it */
  function variant(edit: (y: string) => string, env: Record<string, string>): string {
    const file = inventoryVariant(edit);
    writeFileSync(join(dirname(file), '.env'), Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''));
    return file;
  }
  const withSudoPassword = (y: string) => y.replace(/^ {2}sudo: true$/m, '  sudo: true\n  sudo_password: ${DSRCTL_SUDO_PASSWORD}');

  beforeAll(async () => {
    labUp({ DSR_LAB_SUDO: '1', DSR_LAB_SUDO_PASSWORD: SECRET });
    before = await settledSnapshotAll();
  });
  afterAll(() => labDown());

  it('the lab user exists on the hosts only, not on this machine', () => {
    const inv = readFileSync(LAB_INVENTORY, 'utf8');
    expect(inv).toMatch(/^ {2}user: ops$/m);
    expect(inv).toMatch(/^ {2}sudo: true$/m);
    expect(onHost('dev1', 'id -u ops').stdout.trim()).toMatch(/^\d+$/);
    expect(readFileSync('/etc/passwd', 'utf8')).not.toMatch(/^ops:/m);
  });

  it('apply as ops through sudo -n, then rollback restores every host byte for byte', async () => {
    const a = await run(['apply', '--yes', '--json']);
    runs.push(a);
    expectCode(a, 0, 'apply as ops');
    expect(a.json?.result, show(a)).toBe('applied');
    for (const h of HOSTS) expect(sshdLog(h), `${h} sshd.log`).toMatch(/Accepted publickey for ops from /);
    // the journal was written by root (through sudo), not by ops
    for (const h of HOSTS) expect(onHost(h, 'stat -c %U /var/lib/dsrctl/runs').stdout.trim(), h).toBe('root');
    expect(curlSources()).toEqual([CLIENT_IP, CLIENT_IP, CLIENT_IP, CLIENT_IP]);
    const rb = await run(['rollback', '--yes']);
    runs.push(rb);
    expectCode(rb, 0, 'rollback as ops');
    expectSnapshots(before, 'after rollback as ops');
    expectNoLocks('after rollback as ops');
  });

  it('a host whose sudo wants a password: apply fails before any change, naming the host and the fix', async () => {
    expect(onHost('dev2', "echo 'ops ALL=(ALL) ALL' >/etc/sudoers.d/dsrctl-lab").code).toBe(0);
    const j = await run(['apply', '--yes', '--json']);
    runs.push(j);
    expectCode(j, 1, 'apply with a password-wanting sudo');
    expect(j.json?.result, show(j)).toBe('failed');
    const dev2 = hostJson(j.json, 'dev2');
    expect(dev2?.error, show(j)).toMatch(/dev2 \(ops@10\.211\.\d+\.12:22\): sudo asks ops for a password \("sudo: a password is required"\); nothing was run\. Fix: .*NOPASSWD.*ssh\.sudo_password/);
    expect(j.json?.hosts.filter((h: { error?: string }) => h.error).map((h: { host: string }) => h.host)).toEqual(['dev2']);
    expectSnapshots(before, 'nothing changed');
    expectNoLocks('after the refused sudo');

    const t = await run(['apply', '--yes']);
    runs.push(t);
    expectCode(t, 1, 'apply (text) with a password-wanting sudo');
    expect(t.stdout + t.stderr, show(t)).toMatch(/dev2 \(ops@[^)]*\): sudo asks ops for a password/);
    expect(t.stdout + t.stderr).toMatch(/Nothing was changed on any host\./);
    expectSnapshots(before, 'nothing changed (text)');
  });

  it('sudo_password from .env: sudo -S gets it where sudo asks; apply and rollback work', async () => {
    const inv = variant(withSudoPassword, { DSRCTL_SUDO_PASSWORD: SECRET });
    const a = await run(['apply', '--yes', '--json'], inv);
    runs.push(a);
    expectCode(a, 0, 'apply with sudo_password');
    expect(a.json?.result, show(a)).toBe('applied');
    const rb = await run(['rollback', '--yes', '--json'], inv);
    runs.push(rb);
    expectCode(rb, 0, 'rollback with sudo_password');
    expectSnapshots(before, 'after rollback with sudo_password');
    expectNoLocks('after rollback with sudo_password');
  });

  it('a wrong sudo_password: fails before any change, without showing it', async () => {
    const wrong = 'Wrong-s3cret pass';
    const inv = variant(withSudoPassword, { DSRCTL_SUDO_PASSWORD: wrong });
    const r = await run(['apply', '--yes', '--json'], inv);
    runs.push(r);
    expectCode(r, 1, 'apply with a wrong sudo_password');
    const dev2 = hostJson(r.json, 'dev2');
    expect(dev2?.error, show(r)).toMatch(/sudo did not accept the sudo_password given for ops/);
    expect(r.stdout + r.stderr).not.toContain(wrong);
    expectSnapshots(before, 'a wrong sudo_password changes nothing');
    expectNoLocks('after the wrong sudo_password');
  });

  it('SSH password authentication from .env (no key at all)', async () => {
    const inv = variant((y) => withSudoPassword(y.replace(/^ {2}private_key: .*\n/m, '  password: ${DSRCTL_SSH_PASSWORD}\n')), {
      DSRCTL_SUDO_PASSWORD: SECRET,
      DSRCTL_SSH_PASSWORD: SECRET,
    });
    expect(readFileSync(inv, 'utf8')).not.toMatch(/private_key/);
    const p = await run(['plan', '--json'], inv, { SSH_AUTH_SOCK: '' });
    runs.push(p);
    expectCode(p, 0, 'plan over password authentication');
    expect(p.json?.errors, show(p)).toEqual([]);
    expect(p.json?.hosts.map((h: { host: string }) => h.host)).toEqual(HOSTS);
    for (const h of HOSTS) expect(sshdLog(h), `${h} sshd.log`).toMatch(/Accepted password for ops from /);
    const v = await run(['verify', '--json'], inv, { SSH_AUTH_SOCK: '' });
    runs.push(v);
    expect(v.json?.errors, show(v)).toEqual([]);
  });

  it('the secret appears in no output, JSON, or file on any host', () => {
    expect(runs.length).toBeGreaterThanOrEqual(8);
    expectNoSecret(runs, 'sudo lab');
  });
});
