import type { GlobalOptions } from '../prepare.js';
import { connectAndPlan } from '../prepare.js';
import { closeAll } from '../../engine/hosts.js';
import type { HostRollbackResult } from '../../engine/apply-host.js';
import { rollbackVia } from './apply.js';
import { green, red } from '../output.js';
import { EXIT, UserError } from '../../util/errors.js';
import { newRunId } from '../../apply/paths.js';
import { lockInfo } from '../../apply/lock.js';
import { print, toJson } from '../terminal.js';

/** Undo the last applied run on every host, from each host's own journal. Twice is harmless. */
export async function rollbackCommand(file: string, opts: GlobalOptions): Promise<number> {
  if (!opts.yes && !process.stdin.isTTY) throw new UserError('rollback changes hosts: confirm on a terminal, or pass --yes when running unattended');
  if (!opts.yes && !(await (await import('@inquirer/prompts')).confirm({ message: 'Undo everything dsrctl applied on every host of this inventory (back to before its first apply)?', default: false }))) return EXIT.ok;
  const lockRun = newRunId();
  const prep = await connectAndPlan(file, opts, false, { info: lockInfo(lockRun, 'rollback'), breakLock: !!opts.breakLock, breakArmed: true });
  try {
    const results: HostRollbackResult[] = [];
    // upstreams first: their default route must leave before the proxy stops handling their replies
    for (const role of ['upstream', 'proxy'] as const) {
      const group = prep.hosts.filter((h) => h.target.role === role && h.session && h.lock?.state === 'acquired');
      results.push(...(await Promise.all(group.map((h) => rollbackVia(h, undefined, lockRun, prep.inv.rollback.timeout_seconds)))));
    }
    const errors = [...prep.errors].map(([host, e]) => ({ host, ok: false, nothing: false, lines: [], error: e.message }) as HostRollbackResult);
    const all = [...results, ...errors];
    const ok = all.every((r) => r.ok);
    const code = ok ? EXIT.ok : EXIT.rollbackIncomplete;
    if (opts.json) process.stdout.write(toJson({ command: 'rollback', ok, nothingToUndo: all.every((r) => r.nothing), hosts: all, exitCode: code }) + '\n');
    else if (!opts.quiet) {
      for (const n of prep.notices) print(n);
      for (const r of all) {
        if (!r.ok) print(red(`ROLLBACK FAILED ${r.host}: ${r.error}`));
        else if (r.nothing) print(`${r.host}: nothing to undo`);
        else print(green(`${r.host}: rolled back`) + (r.lines.length ? '\n    ' + r.lines.join('\n    ') : ''));
      }
      if (all.every((r) => r.nothing && r.ok)) print('Nothing to undo on any host.');
    }
    return code;
  } finally {
    await closeAll(prep.hosts);
  }
}
