import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../util/package-root.js';

/** Package root, from src/, dist/ or the CLI bundle alike. */
export const ROOT = PACKAGE_ROOT;
export const LAB_SCRIPT = join(ROOT, 'test/lab/lab.sh');
export const LAB_INVENTORY = join(ROOT, 'inventory/lab.yaml');

export function labScript(args: string[], opts: { inherit?: boolean; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync('bash', [LAB_SCRIPT, ...args], {
    encoding: 'utf8',
    stdio: opts.inherit ? 'inherit' : 'pipe',
    env: { ...process.env, ...opts.env },
    maxBuffer: 64 * 1024 * 1024,
  });
}

/** Run a command inside a lab host (its net, mount and UTS namespaces). */
export function labExec(host: string, cmd: string[]): SpawnSyncReturns<string> {
  return labScript(['exec', host, '--', ...cmd]);
}

/** The guide's test: curl the proxy from the client, once per upstream. */
export function curlFromClient(times = 4, url = 'http://192.168.99.10/'): string[] {
  const out: string[] = [];
  for (let i = 0; i < times; i++) {
    const r = labExec('client', ['curl', '-sS', '--max-time', '3', url]);
    out.push((r.stdout || r.stderr).trim());
  }
  return out;
}
