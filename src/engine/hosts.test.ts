import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { factsExecScript } from './hosts.js';
import { STATE_DIR } from '../apply/paths.js';

describe("the facts exec with the proxy's checks alongside", () => {
  const tmp = mkdtempSync(join(tmpdir(), 'dsrctl-alongside-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  // read-only facts of this machine (the smallest request), and checks that take a while and print
  // more than one line, one of them long and one without its newline
  const req = { sysctls: [], files: [], sections: [] };
  const checks = `sleep 0.3; echo '@@check a ok fine'; printf '@@raw b %s\\n' "$(printf 'x%.0s' $(seq 1 3000))"; printf '@@check c fail  spaced  out'`;
  const run = (alongside: boolean) => spawnSync('sh', ['-s'], { input: factsExecScript(req, undefined, checks, alongside), encoding: 'utf8', env: { ...process.env, TMPDIR: tmp } });

  it('prints the same checks after the facts, line for line, whether they ran alongside or after', () => {
    const after = run(false);
    const along = run(true);
    expect(along.status).toBe(0);
    const tail = (out: string) => out.slice(out.indexOf('@@check a'));
    expect(along.stdout.indexOf('@@check a')).toBeGreaterThan(along.stdout.lastIndexOf('done'));
    expect(tail(along.stdout)).toBe(`${tail(after.stdout)}\n`);
    expect(tail(along.stdout)).toMatch(/^@@check a ok fine\n@@raw b x{3000}\n@@check c fail {2}spaced {2}out\n$/);
  });

  it('leaves no temporary file behind', () => {
    run(true);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('a run cut off while the checks still run (TERM) releases its lock and leaves no temporary file', async () => {
    const state = join(tmp, 'state');
    const tmpFiles = join(tmp, 'tmpfiles');
    mkdirSync(tmpFiles);
    // apply's conversation exec, with /var/lib/dsrctl moved to a private directory
    const script = factsExecScript(req, { info: 'run=r-cut command=apply', breakLock: false, converse: { runId: 'r-cut' } }, 'sleep 3; echo late', true).replaceAll(STATE_DIR, state);
    const sh = spawn('sh', ['-s'], { env: { ...process.env, TMPDIR: tmpFiles } });
    let out = '';
    sh.stdout.on('data', (d) => (out += d));
    sh.stdin.write(script); // stdin stays open: the script would wait for the run's answer
    await new Promise((r) => setTimeout(r, 500));
    expect(existsSync(join(state, 'lock'))).toBe(true);
    expect(readdirSync(tmpFiles)).toHaveLength(1); // the checks' output file
    sh.kill('SIGTERM');
    await new Promise((r) => sh.on('close', r));
    expect(out).toContain('@@dsrctl-lock released');
    expect(existsSync(join(state, 'lock'))).toBe(false);
    expect(readdirSync(tmpFiles)).toEqual([]);
  });
});
