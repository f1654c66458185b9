import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { factsExecScript } from './hosts.js';

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
});
