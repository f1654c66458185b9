import type { Inventory } from '../inventory/schema.js';
import type { HostPlan } from '../plan/types.js';
import type { CheckResult } from '../verify/checks.js';
import { newRunId } from '../apply/paths.js';
import { lockInfo, releaseLockScript } from '../apply/lock.js';
import { EXIT } from '../util/errors.js';
import { closeAll, endFactsExecs, withSession, isConnectionLoss, type HostState } from './hosts.js';
import { applyHost, finishHost, type HostApplyResult, type HostRollbackResult } from './apply-host.js';
import { connectAndPlan, hostMessage, preflightExit, type Prepared } from './prepare.js';
import { releaseLocks, rollbackInOrder } from './host-rollback.js';
import { verifyHosts } from './verify.js';
import { checksTimeoutMs } from '../verify/run.js';
import { revertNotes } from './reverted.js';
import { eventRunner, type StepRunner } from './steps.js';
import type { Connector } from './connector.js';
import { Interrupted, type Interruption } from './interruption.js';

export { Interrupted } from './interruption.js';

/**
 * One apply run, the guide's whole procedure on every host: connect, read, lock and plan at once;
 * ask (when a person is there); apply the proxy, then the upstreams; verify; confirm every host
 * (disarming its dead-man's switch) — or, on any failure, roll back what changed, upstreams first.
 */

export type ApplyOutcome = 'no-changes' | 'applied' | 'cancelled' | 'interrupted' | 'failed' | 'rolled-back' | 'rollback-failed';

/** What happens during the run, in order, for whoever shows it (the CLI prints each as text). */
export type ApplyEvent =
  | { type: 'warning'; text: string }
  | { type: 'plan'; plans: HostPlan[]; runId: string }
  | { type: 'host-output'; host: string; lines: string[] }
  | { type: 'checks'; checks: CheckResult[] }
  | { type: 'failure'; text: string }
  | { type: 'lock-left'; host: string }
  | { type: 'rolled-back'; result: HostRollbackResult }
  | { type: 'rolled-itself-back'; outcome: HostApplyResult };

export interface ApplyOptions {
  runner?: StepRunner;
  /** hosts at work at once, connecting or running a command (default 64) */
  concurrency?: number;
  /** how hosts are reached (default SSH) */
  connect?: Connector;
  /** remove a lock left by a dead run before taking it (never one whose switch is armed) */
  breakLock?: boolean;
  /** asked before any change when there are changes; absent: apply without asking (the CLI's --yes, the library) */
  confirm?: (plans: HostPlan[], changedHosts: number) => Promise<boolean>;
  /** an interruption the caller watches (signals): checked at every safe point */
  interruption?: Interruption;
  onEvent?: (e: ApplyEvent) => void;
}

export interface ApplyHostResult {
  host: string;
  role: 'proxy' | 'upstream';
  plan?: HostPlan;
  error?: string;
  outcome?: HostApplyResult;
  rollback?: HostRollbackResult;
  /** SSH exec requests this run made on the host */
  execs: number;
}

export interface ApplyResult {
  inventory: Inventory;
  runId: string;
  result: ApplyOutcome;
  exitCode: number;
  /** why the run did not succeed */
  failure?: string;
  /** the last line for a person: what happened to the hosts */
  message: string;
  warnings: string[];
  errors: Map<string, Error>;
  hosts: ApplyHostResult[];
  checks: CheckResult[];
}

export async function apply(inventoryFile: string, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const runner = opts.runner ?? eventRunner();
  const emit = opts.onEvent ?? (() => undefined);
  const intr = opts.interruption;
  const busy = (what: string) => intr?.busy(what);
  const runId = newRunId();
  busy('reading the hosts; nothing is changed yet');
  const prep = await connectAndPlan(inventoryFile, runner, {
    plan: true,
    lock: { info: lockInfo(runId, 'apply'), breakLock: !!opts.breakLock, converse: { runId } },
    probe: true,
    checks: true,
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
    ...(opts.connect ? { connect: opts.connect } : {}),
  });
  const applied: HostApplyResult[] = [];
  let checks: CheckResult[] = [];
  let rollbacks: HostRollbackResult[] = [];
  let result: ApplyOutcome = 'no-changes';
  let failure: string | undefined;
  const locked = () => prep.hosts.filter((h) => h.lock?.state === 'acquired' && h.session);
  const warnings = [...prep.notices, ...revertNotes(prep.hosts)];
  const finish = (exitCode: number, message: string): ApplyResult => ({
    inventory: prep.inv,
    runId,
    result,
    exitCode,
    failure,
    message,
    warnings,
    errors: prep.errors,
    hosts: prep.hosts.map((h) => ({
      host: h.target.name,
      role: h.target.role,
      plan: h.plan,
      error: prep.errors.get(h.target.name)?.message,
      outcome: applied.find((a) => a.host === h.target.name),
      rollback: rollbacks.find((r) => r.host === h.target.name),
      execs: h.session?.execCount ?? 0,
    })),
    checks,
  });
  // before any change, an interruption releases every lock this run took (exit 130)
  const stopUnchanged = async (signal: string) => {
    result = 'interrupted';
    failure = `interrupted (${signal}) before any change`;
    await releaseLocks(locked(), runId);
    return finish(EXIT.interrupted, 'Interrupted; nothing was changed and every lock this run took was released.');
  };
  try {
    if (intr?.signal) return await stopUnchanged(intr.signal);
    for (const w of warnings) emit({ type: 'warning', text: w });
    // the probe host is only read from: its failure shows in the probe check, not as a host error
    const hostErrors = [...prep.errors].filter(([h]) => h !== 'probe');
    if (hostErrors.length) {
      failure = hostErrors.map(([h, e]) => hostMessage(h, e)).join('\n');
      result = 'failed';
      await releaseLocks(locked(), runId);
      return finish(preflightExit(hostErrors.map(([, e]) => e)), 'Nothing was changed on any host.');
    }
    const plans = prep.hosts.map((h) => h.plan!);
    const changed = prep.hosts.filter((h) => h.plan!.changes.length > 0);
    // Every host's facts exec is still open, holding its lock (hosts.ts, factsExecScript): a run
    // with changes keeps the locks; a run without any releases them right there, and its checks
    // already ran in the same execs: a no-op is one exec per host.
    const unended = await endFactsExecs(prep.hosts, changed.length > 0);
    if (changed.length && unended.size) {
      failure = [...unended].map(([h, e]) => hostMessage(h, e)).join('\n');
      result = 'failed';
      await releaseLocks(locked(), runId);
      return finish(EXIT.failedRolledBack, 'Nothing was changed on any host.');
    }
    emit({ type: 'plan', plans, runId });
    if (changed.length && opts.confirm) {
      busy('at the question; nothing is changed yet');
      let ok: boolean;
      try {
        ok = await opts.confirm(plans, changed.length);
      } catch (e) {
        if (e instanceof Interrupted) return await stopUnchanged(intr?.signal ?? e.signal);
        throw e;
      }
      if (!ok) {
        result = 'cancelled';
        await releaseLocks(locked(), runId);
        return finish(EXIT.ok, 'Cancelled; nothing was changed.');
      }
    }
    if (intr?.signal) return await stopUnchanged(intr.signal);
    // from here an interruption rolls back, as a failed verification does
    busy('applying; what changed will be rolled back');
    const interrupted = () => (intr?.signal ? `interrupted (${intr.signal}): rolling back` : undefined);
    if (changed.length) failure = (await applyInOrder(prep, changed, runId, applied, runner)) ?? interrupted();
    for (const a of applied) emit({ type: 'host-output', host: a.host, lines: [...(a.stdout ?? '').split('\n'), ...a.stderr.split('\n')].filter((l) => l.trim()) });
    if (!failure) {
      busy('verifying; what changed will be rolled back');
      // a host without changes has nothing to confirm: its lock goes in the same exec as its checks
      const unchanged = locked().filter((h) => !h.plan!.changes.length);
      // a changed host's checks continue its apply exec, waiting since its changes (applyHost):
      // sent only now, once every host has applied, since the checks are cross-host
      const via = new Map(applied.filter((a) => a.continueWith).map((a) => [a.host, (script: string) => a.continueWith!(script)]));
      checks = await verifyHosts(prep, new Map(unchanged.map((h) => [h.target.name, `\n${releaseLockScript(runId)}\n`])), !changed.length, via);
      for (const h of unchanged) h.lock = { state: 'released' };
      emit({ type: 'checks', checks });
      const bad = checks.filter((c) => !c.ok);
      if (bad.length) failure = `verification failed: ${bad.map((c) => `${c.description}: ${c.detail}`).join('; ')}`;
      failure ??= changed.length ? interrupted() : undefined;
    }
    // an apply exec still waiting (a failure elsewhere, or a host without checks) ends doing nothing:
    // a confirm or rollback exec on its connection runs after it
    await Promise.all(applied.map((a) => a.continueWith?.(undefined).catch(() => undefined)));
    if (!failure) {
      // confirm every host (disarm its switch) and release the locks
      const fin = await Promise.all(
        locked().map(async (h) => ({
          h,
          r: await withSession(h, (s) => finishHost(s, runId, !!h.plan?.changes.length)).catch((e: Error) => ({ ok: false, detail: `cannot confirm: ${e.message}` })),
        })),
      );
      const late = fin.filter((f) => !f.r.ok);
      if (!late.length) {
        result = changed.length ? 'applied' : 'no-changes';
        return finish(EXIT.ok, changed.length ? `Applied run ${runId} and verified it.` : 'No changes; verification passed.');
      }
      failure = late.map((f) => `${f.h.target.name}: ${f.r.detail}`).join('; ');
    }
    busy('rolling back');
    emit({ type: 'failure', text: failure });
    const undone = await undoRun(prep, runId, applied, changed, runner, emit);
    rollbacks = undone.rollbacks;
    result = undone.result;
    return finish(undone.exitCode, undone.message);
  } finally {
    await closeAll([...prep.hosts, { session: prep.probe }]);
  }
}

/**
 * After a failure: every host that completed its changes is rolled back, and so is one whose
 * connection broke during its apply (its script ran on); a host whose script failed already
 * rolled itself back.
 */
async function undoRun(
  prep: Prepared,
  runId: string,
  applied: HostApplyResult[],
  changed: HostState[],
  runner: StepRunner,
  emit: (e: ApplyEvent) => void,
): Promise<{ rollbacks: HostRollbackResult[]; result: ApplyOutcome; exitCode: number; message: string }> {
  const seconds = prep.inv.rollback.timeout_seconds;
  const locked = () => prep.hosts.filter((h) => h.lock?.state === 'acquired' && h.session);
  const toUndo = prep.hosts.filter((h) => applied.some((a) => a.host === h.target.name && (a.ok || a.lost)));
  const rollbacks = toUndo.length ? await rollbackInOrder(toUndo, runId, runId, seconds, runner) : [];
  const locksLeft = await releaseLocks(locked().filter((h) => !toUndo.includes(h)), runId);
  for (const host of locksLeft) emit({ type: 'lock-left', host });
  const selfRolled = applied.filter((a) => !a.ok && !a.lost && (a.done > 0 || a.rollback.length > 0 || (a.rollbackStatus !== undefined && a.rollbackStatus !== 'rolled-back')));
  // a host whose own rollback did not finish as rolled-back (a full disk, an undo that failed) is left for a person
  const incomplete = [
    ...rollbacks.filter((r) => !r.ok).map((r) => r.host),
    ...selfRolled.filter((a) => a.rollbackStatus !== undefined && a.rollbackStatus !== 'rolled-back').map((a) => a.host),
    ...selfRolled.filter((a) => a.rollbackStatus === undefined).map((a) => a.host),
  ];
  for (const r of rollbacks) emit({ type: 'rolled-back', result: r });
  for (const a of selfRolled) emit({ type: 'rolled-itself-back', outcome: a });
  incomplete.push(...locksLeft.filter((h) => !incomplete.includes(h)));
  if (incomplete.length)
    return {
      rollbacks,
      result: 'rollback-failed',
      exitCode: EXIT.rollbackIncomplete,
      message: `Rollback did not complete on ${incomplete.join(', ')}: a person must look. A host that could not be reached still has its dead-man's switch armed and reverts by itself within ${seconds} s of its apply; one whose rollback ran and failed does not. Check with dsrctl verify, then dsrctl rollback.`,
    };
  // a host refused before its first change (its files drifted since the plan) changed nothing
  const touched = changed.length > 0 && applied.some((a) => a.ok || a.lost || a.done > 0 || a.rollback.length > 0);
  return {
    rollbacks,
    result: touched ? 'rolled-back' : 'failed',
    exitCode: EXIT.failedRolledBack,
    message: `Run ${runId} failed; ${touched ? 'every changed host was rolled back' : 'nothing was changed'}.`,
  };
}

/** Proxy first, then the upstreams in parallel: their new default route is useless until the proxy handles their replies. */
async function applyInOrder(prep: Prepared, changed: HostState[], runId: string, applied: HostApplyResult[], runner: StepRunner): Promise<string | undefined> {
  const seconds = prep.inv.rollback.timeout_seconds;
  let failure: string | undefined;
  const applyGroup = async (group: HostState[]) => {
    const res = await Promise.all(
      group.map((h) =>
        applyHost(h.session!, h.plan!, runId, seconds, checksTimeoutMs(prep.inv)).catch(
          (e: Error) => ({ host: h.target.name, ok: false, done: 0, rollback: [], failure: e.message, stderr: '', lost: isConnectionLoss(e) }) as HostApplyResult,
        ),
      ),
    );
    applied.push(...res);
    const bad = res.filter((r) => !r.ok);
    if (bad.length) {
      failure = `apply failed: ${bad.map((r) => `${r.host}: ${r.failure}`).join('; ')}`;
      throw new Error(failure.slice(14));
    }
  };
  const proxy = changed.filter((h) => h.target.role === 'proxy');
  const ups = changed.filter((h) => h.target.role === 'upstream');
  await runner(
    [
      ...(proxy.length ? [{ title: `apply ${proxy[0]!.plan!.changes.length} change(s) on proxy`, run: () => applyGroup(proxy) }] : []),
      ...(ups.length ? [{ title: `apply changes on ${ups.map((h) => h.target.name).join(', ')}`, run: () => applyGroup(ups) }] : []),
    ],
    { concurrent: false, stopOnError: true },
  );
  return failure;
}
