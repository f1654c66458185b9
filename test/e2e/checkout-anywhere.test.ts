/**
 * The README's first command from checkouts where users put them: root's home directory and /tmp.
 * Each lab host mounts its own /root and /tmp, which once hid a checkout's lab state there
 * ("host-init.sh: /root/<checkout>/.lab/pids/client.sshd: No such file or directory").
 *
 * The checkout is a copy of this working tree (tracked and untracked files, as git lists them),
 * so the test proves what is here, committed or not; then `npm ci && npm run demo` as the README
 * says, with a lab prefix and management net of its own.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './harness.js';

const TAG = process.env.DSR_E2E_TAG ?? '';
const made: string[] = [];

function copyCheckout(dest: string): void {
  mkdirSync(dest, { recursive: true });
  const files = spawnSync('git', ['ls-files', '-coz', '--exclude-standard'], { cwd: ROOT, encoding: 'buffer' });
  if (files.status !== 0) throw new Error(`git ls-files failed: ${files.stderr}`);
  // tar keeps paths and modes; a tracked file deleted in the work tree is not copied
  const list = files.stdout.toString('utf8').split('\0').filter((f) => f && existsSync(join(ROOT, f)));
  const cp = spawnSync('sh', ['-c', 'tar -c --null -T - | tar -x -C "$1"', 'copy', dest], { cwd: ROOT, input: list.join('\0') + '\0' });
  if (cp.status !== 0) throw new Error(`copying the checkout failed: ${cp.stderr}`);
}

function demoFrom(parent: string, prefix: string, octet: number) {
  const dir = mkdtempSync(join(parent, 'dsrctl-checkout-'));
  made.push(dir);
  const checkout = join(dir, 'dsrctl');
  copyCheckout(checkout);
  const env = { ...process.env, NO_COLOR: '1', DSR_LAB_PREFIX: prefix, DSR_LAB_MGMT_OCTET: String(octet) };
  delete env.DSR_LAB_DIR;
  delete env.DSR_LAB_INVENTORY;
  const ci = spawnSync('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: checkout, env, encoding: 'utf8', timeout: 240_000 });
  expect(ci.status, `npm ci in ${checkout}:\n${ci.stderr}`).toBe(0);
  const demo = spawnSync('npm', ['run', 'demo'], { cwd: checkout, env, encoding: 'utf8', timeout: 240_000, maxBuffer: 64 << 20 });
  // whatever happened, no lab of this prefix may be left
  const left = spawnSync('sh', ['-c', `ls /run/netns 2>/dev/null | grep -c '^${prefix}-' || true`], { encoding: 'utf8' }).stdout.trim();
  if (left !== '0') spawnSync('bash', [join(checkout, 'test/lab/lab.sh'), 'down'], { env });
  return { checkout, code: demo.status, out: demo.stdout, err: demo.stderr, left };
}

afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

describe('the README demo from a checkout anywhere', () => {
  for (const [where, parent, n] of [
    ['root\'s home directory', '/root', 1],
    ['/tmp', '/tmp', 2],
  ] as const) {
    it(`runs from a checkout under ${where}`, () => {
      const octet = (Number(process.env.DSR_E2E_OCTET_BASE ?? '100') + 130 + n) % 250;
      const r = demoFrom(parent, `e2e${TAG}ca${n}`, octet);
      const all = `${r.out}\n${r.err}`;
      expect(r.code, `npm run demo in ${r.checkout}:\n${all.slice(-4000)}`).toBe(0);
      const start = r.out.indexOf('After:');
      const after = r.out.slice(start, r.out.indexOf('# again', start));
      // the guide's check: the upstreams see the client's own address, and each one answered
      for (const dev of ['dev1', 'dev2', 'dev3', 'dev4']) expect(after).toMatch(new RegExp(`${dev}.*192\\.168\\.99\\.1\\b|192\\.168\\.99\\.1\\b.*${dev}`));
      expect(after).not.toMatch(/172\.16\.0\.1\b/);
      expect(r.out).toMatch(/No changes|Nothing to change|nothing to do/i);
      expect(r.out).toContain('Demo complete.');
      expect(r.left, 'namespaces left behind').toBe('0');
    });
  }
});
