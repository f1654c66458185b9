import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package's own directory (where package.json, playbooks/ and test/lab/ are): the nearest
 * directory above this module whose package.json is dsrctl's. Found by walking up rather than by a
 * fixed `../..`, because the same code runs from src/ (tests), from dist/ (tsc's output, the
 * library) and from the one-file CLI bundle dist/cli.js, each at a different depth.
 */
export function findPackageRoot(from: string = fileURLToPath(import.meta.url)): string {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'dsrctl') return dir;
    if (dirname(dir) === dir) throw new Error(`dsrctl: no package.json of dsrctl above ${from}`);
  }
}

export const PACKAGE_ROOT = findPackageRoot();
