import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { labScript, curlFromClient, LAB_INVENTORY } from '../../lab/lab.js';
import { EXIT, UserError } from '../../util/errors.js';
import { bold, green } from '../output.js';
import { print } from '../terminal.js';
import { PACKAGE_ROOT } from '../../util/package-root.js';

const CLI = join(PACKAGE_ROOT, 'dist/cli.js');

/** `dsrctl lab up|down|status|demo`: the guide's topology on this machine. */
export async function labCommand(action: string, opts: { keep?: boolean }): Promise<number> {
  if (process.getuid?.() !== 0) throw new UserError('the lab needs root (network namespaces)');
  switch (action) {
    case 'up':
    case 'down':
    case 'status':
      return labScript([action], { inherit: true }).status ?? 1;
    case 'demo':
      return demo(opts.keep ?? false);
    default:
      throw new UserError(`lab: unknown action "${action}" (use up, down, status or demo)`);
  }
}

async function demo(keep: boolean): Promise<number> {
  print(bold('Building the lab: client 192.168.99.1, proxy 192.168.99.10 / 172.16.0.1, upstreams dev1-dev4 172.16.0.11-14'));
  // the demo is the guide's four upstreams, whatever DSR_LAB_UPSTREAMS says
  const up = labScript(['up'], { inherit: true, env: { DSR_LAB_UPSTREAMS: '4' } });
  if (up.status !== 0) return up.status ?? 1;
  try {
    print(bold('\nBefore: the upstreams see the proxy\'s address'));
    print('$ for i in {1..4}; do curl http://192.168.99.10 ; done');
    for (const line of curlFromClient()) print(line);
    print(bold(`\n$ dsrctl apply -i ${LAB_INVENTORY} --yes`));
    const apply = spawnSync(process.execPath, [CLI, 'apply', '-i', LAB_INVENTORY, '--yes'], { stdio: 'inherit' });
    if (apply.status !== 0) return apply.status ?? 1;
    print(bold('\nAfter: the upstreams see the client\'s own address'));
    print('$ for i in {1..4}; do curl http://192.168.99.10 ; done');
    for (const line of curlFromClient()) print(line);
    print(bold(`\n$ dsrctl apply -i ${LAB_INVENTORY} --yes   # again: nothing to do`));
    const again = spawnSync(process.execPath, [CLI, 'apply', '-i', LAB_INVENTORY, '--yes'], { stdio: 'inherit' });
    if (again.status !== 0) return again.status ?? 1;
    print(green('\nDemo complete.'));
    return EXIT.ok;
  } finally {
    if (keep) print(`The lab is still up (inventory: ${LAB_INVENTORY}); remove it with: dsrctl lab down`);
    else labScript(['down'], { inherit: true });
  }
}
