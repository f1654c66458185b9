import type { GlobalOptions } from '../progress.js';
import { listrRunner } from '../progress.js';
import { rollback, type RollbackResult } from '../../engine/rollback.js';
import { Interrupted } from '../../engine/interruption.js';
import type { PendingUndo } from '../../apply/journal-list.js';
import { bold, green, red, yellow } from '../output.js';
import { EXIT, UserError } from '../../util/errors.js';
import { watchInterruptions, isPromptInterrupt } from '../interrupt.js';
import { summarizeHostErrors } from '../host-errors.js';
import { undoneText } from '../undo-text.js';
import { print, printErr } from '../terminal.js';
import { writeReport } from '../report.js';
import { rollbackReport } from '../../report/documents.js';

/** The preview: per host, each change to undo (newest first), grouped by run. */
function formatPending(pending: Map<string, PendingUndo[]>): string {
  const out: string[] = [];
  for (const [host, list] of pending) {
    if (!list.length) {
      out.push(`${bold(host)}: nothing to undo`);
      continue;
    }
    out.push(bold(`${host}: ${list.length} change${list.length === 1 ? '' : 's'} to undo`));
    let run = '';
    for (const p of list) {
      if (p.run !== run) out.push(`  run ${(run = p.run)}:`);
      out.push(`    - ${p.summary}${p.state === 'pending' ? yellow(' (may be half-applied: undone best-effort)') : ''}`);
    }
  }
  return out.join('\n');
}

/** One line of a host's rollback output ("undone X" / "undo-failed X"), readable. */
function rollbackLine(line: string): string {
  if (line.startsWith('undo-failed ')) return red(`could not undo: ${line.slice(12)}`);
  return undoneText(line.replace(/^undone /, ''));
}

/** `dsrctl rollback`: the engine's rollback, with its preview and question on a terminal. */
export async function rollbackCommand(file: string, opts: GlobalOptions): Promise<number> {
  if (!opts.yes && !process.stdin.isTTY) throw new UserError('rollback changes hosts: confirm on a terminal, or pass --yes when running unattended');
  const intr = watchInterruptions();
  const say = (s: string) => {
    if (!opts.json && !opts.quiet) print(s);
  };
  let r: RollbackResult;
  try {
    r = await rollback(file, {
      ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
      runner: listrRunner(opts),
      breakLock: !!opts.breakLock,
      interruption: intr,
      onPending: (pending, errors) => {
        const total = [...pending.values()].reduce((n, l) => n + l.length, 0);
        if (total > 0 || errors.size) say(formatPending(pending));
        if (!opts.json) for (const line of summarizeHostErrors(errors, [...pending.keys()])) printErr(red(line));
      },
      confirm: opts.yes
        ? undefined
        : async (pending, total) => {
            try {
              const hosts = [...pending].filter(([, l]) => l.length).length;
              return await (await import('@inquirer/prompts')).confirm({ message: `Undo these ${total} change(s) on ${hosts} host(s), back to before dsrctl's first apply?`, default: false }, { signal: intr.abort });
            } catch (e) {
              if (isPromptInterrupt(e)) throw new Interrupted(intr.signal ?? 'SIGINT');
              throw e;
            }
          },
    });
  } finally {
    intr.dispose();
  }
  for (const n of r.notices) say(n);
  if (opts.json) {
    writeReport(rollbackReport(r));
    return r.exitCode;
  }
  if (!opts.quiet)
    for (const h of r.hosts) {
      if (!h.ok) print(red(`ROLLBACK FAILED ${h.host}: ${h.error}`));
      else if (h.nothing) print(`${h.host}: nothing to undo`);
      else print(green(`${h.host}: rolled back`) + (h.lines.length ? '\n    ' + h.lines.map(rollbackLine).join('\n    ') : ''));
    }
  if (r.ok) {
    if (!opts.quiet) print(r.result === 'cancelled' ? r.message : `\n${r.message}`);
  } else printErr(r.exitCode === EXIT.rollbackIncomplete ? red(bold(r.message)) : r.message);
  return r.exitCode;
}
