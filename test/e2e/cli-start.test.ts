/**
 * The built CLI (`npm run build`: tsc, then the one-file bundle dist/cli.js) starts without the
 * libraries only some commands need: a no-op run in automation is mostly start-up, and a static
 * import anywhere in the bundle loads its package for every command.
 */
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { CLI } from './harness.js';

describe('the built CLI', () => {
  it('imports only ssh2 from node_modules at start-up (listr2 and @inquirer/prompts load when a terminal needs them)', () => {
    const src = readFileSync(CLI, 'utf8');
    const bare = [...src.matchAll(/^import\s[^;]*?\sfrom\s+"([^".][^"]*)";?$/gm)].map((m) => m[1]).filter((m) => !m!.startsWith('node:'));
    expect([...new Set(bare)]).toEqual(['ssh2']);
  });

  it('runs from its one file: --version, and a bad inventory is a usage error naming the file', () => {
    expect(spawnSync('node', [CLI, '--version'], { encoding: 'utf8' }).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const r = spawnSync('node', [CLI, 'plan', '-i', '/nonexistent/inventory.yaml'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('/nonexistent/inventory.yaml');
    expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
  });
});
