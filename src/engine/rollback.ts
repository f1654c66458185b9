import type { Inventory } from '../inventory/schema.js';
import { newRunId } from '../apply/paths.js';
import { lockInfo } from '../apply/lock.js';
import { pendingUndoScript, parsePendingUndo, type PendingUndo } from '../apply/journal-list.js';
import { EXIT } from '../util/errors.js';
import { closeAll, withSession, type HostState } from './hosts.js';
import type { HostRollbackResult } from './apply-host.js';
import { connectAndPlan } from './prepare.js';
import { releaseLocks, rollbackInOrder } from './host-rollback.js';
import { Interrupted, type Interruption } from './interruption.js';
import { eventRunner, type StepRunner } from './steps.js';
import type { Connector } from './connector.js';

/**
 * `rollback`: undo everything dsrctl applied on every host, from each host's own journal, back to
 * before its first apply. It locks every host, reads what is to undo (so a person sees it before
 * saying yes), then undoes upstreams first, then the proxy. Twice is harmless.
 */

export type RollbackOutcome = 'rolled-back' | 'nothing-to-undo' | 'rollback-failed' | 'cancelled' | 'interrupted';

export interface RollbackOptions {
  runner?: StepRunner;
  /** hosts at work at once, connecting or running a command (default 64) */
  concurrency?: number;
  /** how hosts are reached (default SSH) */
  connect?: Connector;
  /** take the lock of a dead run, even one whose switch is armed (its run is undone anyway) */
  breakLock?: boolean;
  /** asked with what will be undone, when there is something; absent: undo without asking */
  confirm?: (pending: Map<string, PendingUndo[]>, changes: number) => Promise<boolean>;
  interruption?: Interruption;
  /** told what is to undo (and which hosts could not be read) before anything is undone */
  onPending?: (pending: Map<string, PendingUndo[]>, errors: Map<string, Error>) => void;
}

export interface RollbackResult {
  inventory: Inventory;
  result: RollbackOutcome;
  ok: boolean;
  exitCode: number;
  nothingToUndo: boolean;
  /** per host, read before anything was undone: each change of each run not yet undone, newest first */
  pending: Map<string, PendingUndo[]>;
  /** per host: what happened (hosts that could not be read or undone are failed ones) */
  hosts: HostRollbackResult[];
  errors: Map<string, Error>;
  notices: string[];
  /** changes undone */
  changes: number;
  message: string;
}

async function pendingOn(h: HostState): Promise<PendingUndo[]> {
  return withSession(h, async (s) => parsePendingUndo((await s.exec(pendingUndoScript(), { timeoutMs: 20_000 })).stdout));
}

export async function rollback(inventoryFile: string, opts: RollbackOptions = {}): Promise<RollbackResult> {
  const runner = opts.runner ?? eventRunner();
  const intr = opts.interruption;
  const lockRun = newRunId();
  intr?.busy('reading the hosts; nothing is changed yet');
  const prep = await connectAndPlan(inventoryFile, runner, {
    lock: { info: lockInfo(lockRun, 'rollback'), breakLock: !!opts.breakLock, breakArmed: true },
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
    ...(opts.connect ? { connect: opts.connect } : {}),
  });
  const locked = () => prep.hosts.filter((h) => h.session && h.lock?.state === 'acquired');
  const errors = new Map(prep.errors);
  const read = new Map<string, PendingUndo[]>();
  // in the order rollback undoes them: upstreams first, then the proxy
  const pending = new Map<string, PendingUndo[]>();
  const base = { inventory: prep.inv, pending, errors, notices: prep.notices };
  const stop = async (exitCode: number, result: RollbackOutcome, message: string): Promise<RollbackResult> => {
    await releaseLocks(locked(), lockRun);
    return { ...base, result, ok: exitCode === EXIT.ok, exitCode, nothingToUndo: false, hosts: [], changes: 0, message };
  };
  try {
    // upstreams first: their default route must leave before the proxy stops handling their replies
    const order = [...locked().filter((h) => h.target.role === 'upstream'), ...locked().filter((h) => h.target.role === 'proxy')];
    await Promise.all(
      order.map((h) =>
        pendingOn(h).then(
          (p) => void read.set(h.target.name, p),
          (e: Error) => void errors.set(h.target.name, e),
        ),
      ),
    );
    for (const h of order) if (read.has(h.target.name)) pending.set(h.target.name, read.get(h.target.name)!);
    opts.onPending?.(pending, errors);
    const interrupted = 'Interrupted; nothing was undone and every lock was released.';
    if (intr?.signal) return await stop(EXIT.interrupted, 'interrupted', interrupted);
    const total = [...pending.values()].reduce((n, l) => n + l.length, 0);
    if (total > 0 && opts.confirm) {
      intr?.busy('at the question; nothing is undone yet');
      let ok: boolean;
      try {
        ok = await opts.confirm(pending, total);
      } catch (e) {
        if (e instanceof Interrupted) return await stop(EXIT.interrupted, 'interrupted', interrupted);
        throw e;
      }
      if (!ok) return await stop(EXIT.ok, 'cancelled', 'Cancelled; nothing was undone.');
    }
    intr?.busy('rolling back');
    const results = await rollbackInOrder(order.filter((h) => pending.has(h.target.name)), undefined, lockRun, prep.inv.rollback.timeout_seconds, runner);
    await releaseLocks(locked().filter((h) => !pending.has(h.target.name)), lockRun);
    const failed = [...errors].map(([host, e]) => ({ host, ok: false, nothing: false, lines: [], error: e.message }) as HostRollbackResult);
    // inventory order: upstreams' results came first only because they were undone first
    const all = [...results, ...failed];
    const ok = all.every((r) => r.ok);
    const undone = results.filter((r) => r.ok && !r.nothing);
    const changes = undone.reduce((n, r) => n + r.lines.length, 0);
    const message = !ok
      ? `Rollback did not complete on ${all.filter((r) => !r.ok).map((r) => r.host).join(', ')}: a person must look (dsrctl doctor, then dsrctl rollback again).`
      : changes === 0
        ? 'Nothing to undo on any host.'
        : `Rolled back ${changes} change${changes === 1 ? '' : 's'} on ${undone.map((r) => r.host).join(', ')}; every host is as it was before dsrctl's first apply.`;
    return {
      ...base,
      result: ok ? (changes ? 'rolled-back' : 'nothing-to-undo') : 'rollback-failed',
      ok,
      exitCode: ok ? EXIT.ok : EXIT.rollbackIncomplete,
      nothingToUndo: all.every((r) => r.nothing),
      hosts: all,
      changes,
      message,
    };
  } finally {
    await closeAll(prep.hosts);
  }
}
