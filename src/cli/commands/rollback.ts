import type { GlobalOptions } from '../prepare.js';
import { connectAndPlan } from '../prepare.js';
import { closeAll, withSession, type HostState } from '../../engine/hosts.js';
import type { HostRollbackResult } from '../../engine/apply-host.js';
import { rollbackVia, releaseLocks, rollbackJson } from './apply.js';
import { bold, green, red, yellow } from '../output.js';
import { EXIT, UserError } from '../../util/errors.js';
import { newRunId } from '../../apply/paths.js';
import { lockInfo } from '../../apply/lock.js';
import { pendingUndoScript, parsePendingUndo, type PendingUndo } from '../../apply/journal-list.js';
import { watchInterruptions, isPromptInterrupt } from '../interrupt.js';
import { summarizeHostErrors } from '../host-errors.js';
import { undoneText } from '../undo-text.js';
import { print, printErr } from '../terminal.js';
import { writeReport, hostErrors, type Report } from '../report.js';

/** What rollback will undo on one host, read from its journal while this run holds its lock. */
async function pendingOn(h: HostState): Promise<PendingUndo[]> {
  return withSession(h, async (s) => parsePendingUndo((await s.exec(pendingUndoScript(), { timeoutMs: 20_000 })).stdout));
}

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

/** Undo everything dsrctl applied on every host, from each host's own journal. Twice is harmless. */
export async function rollbackCommand(file: string, opts: GlobalOptions): Promise<number> {
  if (!opts.yes && !process.stdin.isTTY) throw new UserError('rollback changes hosts: confirm on a terminal, or pass --yes when running unattended');
  const lockRun = newRunId();
  const intr = watchInterruptions();
  intr.busy('reading the hosts; nothing is changed yet');
  let prep;
  try {
    prep = await connectAndPlan(file, opts, false, { info: lockInfo(lockRun, 'rollback'), breakLock: !!opts.breakLock, breakArmed: true });
  } catch (e) {
    intr.dispose();
    throw e;
  }
  const say = (s: string) => {
    if (!opts.json && !opts.quiet) print(s);
  };
  const locked = () => prep.hosts.filter((h) => h.session && h.lock?.state === 'acquired');
  const json = (doc: Omit<Report, 'command'>) => {
    if (opts.json) writeReport({ ...doc, command: 'rollback' } as Report);
  };
  try {
    for (const n of prep.notices) say(n);
    // upstreams first: their default route must leave before the proxy stops handling their replies
    const order = [...locked().filter((h) => h.target.role === 'upstream'), ...locked().filter((h) => h.target.role === 'proxy')];
    const pending = new Map<string, PendingUndo[]>();
    const errors = new Map(prep.errors);
    await Promise.all(
      order.map((h) =>
        pendingOn(h).then(
          (p) => void pending.set(h.target.name, p),
          (e: Error) => void errors.set(h.target.name, e),
        ),
      ),
    );
    const stop = async (code: number, message: string, result: string) => {
      await releaseLocks(locked(), lockRun);
      json({ result, ok: code === EXIT.ok, exitCode: code, nothingToUndo: false, errors: hostErrors(errors), hosts: [] });
      if (!opts.json) (code === EXIT.ok ? print : printErr)(message);
      return code;
    };
    if (intr.signal) return await stop(EXIT.interrupted, 'Interrupted; nothing was undone and every lock was released.', 'interrupted');
    const total = [...pending.values()].reduce((n, l) => n + l.length, 0);
    if (total > 0 || errors.size) say(formatPending(new Map([...order].filter((h) => pending.has(h.target.name)).map((h) => [h.target.name, pending.get(h.target.name)!]))));
    for (const line of summarizeHostErrors(errors, prep.hosts.map((h) => h.target.name))) if (!opts.json) printErr(red(line));
    if (total > 0 && !opts.yes) {
      let ok: boolean;
      try {
        intr.busy('at the question; nothing is undone yet');
        const hosts = [...pending].filter(([, l]) => l.length).length;
        ok = await (await import('@inquirer/prompts')).confirm({ message: `Undo these ${total} change(s) on ${hosts} host(s), back to before dsrctl's first apply?`, default: false }, { signal: intr.abort });
      } catch (e) {
        if (isPromptInterrupt(e)) return await stop(EXIT.interrupted, 'Interrupted; nothing was undone and every lock was released.', 'interrupted');
        throw e;
      }
      if (!ok) return await stop(EXIT.ok, 'Cancelled; nothing was undone.', 'cancelled');
    }
    intr.busy('rolling back');
    const results: HostRollbackResult[] = [];
    for (const role of ['upstream', 'proxy'] as const) {
      const group = order.filter((h) => h.target.role === role && pending.has(h.target.name));
      results.push(...(await Promise.all(group.map((h) => rollbackVia(h, undefined, lockRun, prep.inv.rollback.timeout_seconds)))));
    }
    await releaseLocks(locked().filter((h) => !pending.has(h.target.name)), lockRun);
    const failed = [...errors].map(([host, e]) => ({ host, ok: false, nothing: false, lines: [], error: e.message }) as HostRollbackResult);
    const all = [...results, ...failed];
    const ok = all.every((r) => r.ok);
    const code = ok ? EXIT.ok : EXIT.rollbackIncomplete;
    const undone = results.filter((r) => r.ok && !r.nothing);
    const changes = undone.reduce((n, r) => n + r.lines.length, 0);
    const summary = !ok
      ? `Rollback did not complete on ${all.filter((r) => !r.ok).map((r) => r.host).join(', ')}: a person must look (dsrctl doctor, then dsrctl rollback again).`
      : changes === 0
        ? 'Nothing to undo on any host.'
        : `Rolled back ${changes} change${changes === 1 ? '' : 's'} on ${undone.map((r) => r.host).join(', ')}; every host is as it was before dsrctl's first apply.`;
    json({
      result: ok ? (changes ? 'rolled-back' : 'nothing-to-undo') : 'rollback-failed',
      ok,
      exitCode: code,
      nothingToUndo: all.every((r) => r.nothing),
      warnings: prep.notices,
      errors: hostErrors(errors),
      hosts: all.map(rollbackJson),
    });
    if (!opts.json && !opts.quiet) {
      for (const r of all) {
        if (!r.ok) print(red(`ROLLBACK FAILED ${r.host}: ${r.error}`));
        else if (r.nothing) print(`${r.host}: nothing to undo`);
        else print(green(`${r.host}: rolled back`) + (r.lines.length ? '\n    ' + r.lines.map(rollbackLine).join('\n    ') : ''));
      }
    }
    if (!opts.json) (ok ? (opts.quiet ? () => undefined : print) : printErr)(ok ? `\n${summary}` : red(bold(summary)));
    return code;
  } finally {
    intr.dispose();
    await closeAll(prep.hosts);
  }
}
