import { Listr } from 'listr2';
import type { GlobalOptions, Prepared } from '../prepare.js';
import { connectAndPlan, listrOptions, hostMessage, preflightExit } from '../prepare.js';
import { closeAll, withSession, isConnectionLoss, type HostState } from '../../engine/hosts.js';
import { applyHost, rollbackHost, finishHost, releaseLock, type HostApplyResult, type HostRollbackResult } from '../../engine/apply-host.js';
import { newRunId } from '../../apply/paths.js';
import { lockInfo, releaseLockScript } from '../../apply/lock.js';
import { formatPlan, formatChecks, planJson, red, green, yellow, bold } from '../output.js';
import { EXIT, UserError } from '../../util/errors.js';
import { verifyHosts } from './verify.js';
import type { CheckResult } from '../../verify/checks.js';
import { revertNotes } from '../reverted.js';
import { print, printErr, safeError } from '../terminal.js';
import { writeReport, hostErrors } from '../report.js';
import { watchInterruptions, isPromptInterrupt } from '../interrupt.js';
import { summarizeHostErrors } from '../host-errors.js';

type Result = 'no-changes' | 'applied' | 'cancelled' | 'interrupted' | 'failed' | 'rolled-back' | 'rollback-failed';

/** A host's rollback in the report vocabulary. */
export function rollbackJson(r: HostRollbackResult) {
  return { host: r.host, ok: r.ok, nothingToUndo: r.nothing, undone: r.lines, ...(r.status ? { status: r.status } : {}), ...(r.error ? { error: r.error } : {}) };
}

/** Roll one host back, reconnecting once if its connection was lost. */
export async function rollbackVia(h: HostState, runId: string | undefined, lockRun: string, seconds: number): Promise<HostRollbackResult> {
  try {
    return await withSession(h, (s) => rollbackHost(s, runId, lockRun));
  } catch (e) {
    return {
      host: h.target.name,
      ok: false,
      nothing: false,
      lines: [],
      error: `unreachable, so it cannot be rolled back from here (${(e as Error).message}); if it changed, its dead-man's switch reverts it by itself within ${seconds} s of its apply, and releases its lock`,
    };
  }
}

/** Release this run's locks; a host that cannot be reached is named (its lock needs --break-lock once checked). */
export async function releaseLocks(hosts: HostState[], runId: string): Promise<string[]> {
  const left: string[] = [];
  await Promise.all(
    hosts.map((h) =>
      withSession(h, (s) => releaseLock(s, runId)).catch(() => {
        left.push(h.target.name);
      }),
    ),
  );
  return left;
}

/** Roll back the hosts that changed in this run: upstreams first (in parallel), then the proxy. */
export async function rollbackRun(hosts: HostState[], runId: string, opts: GlobalOptions, seconds: number): Promise<HostRollbackResult[]> {
  const results: HostRollbackResult[] = [];
  const groups = [hosts.filter((h) => h.target.role === 'upstream'), hosts.filter((h) => h.target.role === 'proxy')].filter((g) => g.length);
  await new Listr(
    groups.map((group) => ({
      title: `roll back ${group.map((h) => h.target.name).join(', ')}`,
      task: async () => {
        results.push(...(await Promise.all(group.map((h) => rollbackVia(h, runId, runId, seconds)))));
      },
    })),
    { concurrent: false, exitOnError: false, ...listrOptions(opts) },
  ).run();
  return results;
}

export async function applyCommand(file: string, opts: GlobalOptions): Promise<number> {
  if (!opts.yes && !process.stdin.isTTY) throw new UserError('apply changes hosts: confirm on a terminal, or pass --yes when running unattended');
  const runId = newRunId();
  const intr = watchInterruptions();
  intr.busy('reading the hosts; nothing is changed yet');
  let prep: Prepared;
  try {
    prep = await connectAndPlan(file, opts, true, { info: lockInfo(runId, 'apply'), breakLock: !!opts.breakLock }, true);
  } catch (e) {
    intr.dispose();
    throw e;
  }
  const applied: HostApplyResult[] = [];
  let checks: CheckResult[] = [];
  let rollbacks: HostRollbackResult[] = [];
  let result: Result = 'no-changes';
  let failure: string | undefined;
  let failureShown = false;
  const log = (s: string) => {
    if (!opts.json && !opts.quiet) print(s);
  };
  const locked = () => prep.hosts.filter((h) => h.lock?.state === 'acquired' && h.session);
  const warnings = [...prep.notices, ...revertNotes(prep.hosts)];
  // before any change, an interruption releases every lock this run took and exits 130
  const stopUnchanged = async () => {
    result = 'interrupted';
    failure = `interrupted (${intr.signal ?? 'Ctrl-C'}) before any change`;
    await releaseLocks(locked(), runId);
    return finish(EXIT.interrupted, 'Interrupted; nothing was changed and every lock this run took was released.');
  };
  try {
    if (intr.signal) return await stopUnchanged();
    for (const w of warnings) log(yellow(w));
    // the probe host is only read from: its failure shows in the probe check, not as a host error
    const hostErrors = [...prep.errors].filter(([h]) => h !== 'probe');
    if (hostErrors.length) {
      failure = summarizeHostErrors(new Map(hostErrors), prep.hosts.map((h) => h.target.name)).join('\n');
      result = 'failed';
      await releaseLocks(locked(), runId);
      return finish(preflightExit(hostErrors.map(([, e]) => e)), 'Nothing was changed on any host.');
    }
    const plans = prep.hosts.map((h) => h.plan!);
    const changed = prep.hosts.filter((h) => h.plan!.changes.length > 0);
    log('\n' + formatPlan(plans, { commands: !!opts.verbose, runId }));
    if (changed.length && !opts.yes) {
      let ok: boolean;
      try {
        intr.busy('at the question; nothing is changed yet');
        ok = await (await import('@inquirer/prompts')).confirm({ message: `Apply these changes to ${changed.length} host(s)?`, default: false }, { signal: intr.abort });
      } catch (e) {
        if (isPromptInterrupt(e)) return await stopUnchanged();
        throw e;
      }
      if (!ok) {
        result = 'cancelled';
        await releaseLocks(locked(), runId);
        return finish(EXIT.ok, 'Cancelled; nothing was changed.');
      }
    }
    if (intr.signal) return await stopUnchanged();
    // from here an interruption rolls back, as a failed verification does
    intr.busy('applying; what changed will be rolled back');
    const interrupted = () => (intr.signal ? `interrupted (${intr.signal}): rolling back` : undefined);
    if (changed.length) failure = (await applyAll(prep, changed, runId, applied, opts)) ?? interrupted();
    if (opts.verbose)
      for (const a of applied) {
        const lines = [...(a.stdout ?? '').split('\n'), ...a.stderr.split('\n')].filter((l) => l.trim());
        log(`${a.host}: apply output\n${lines.map((l) => `    ${l}`).join('\n')}`);
      }
    if (!failure) {
      intr.busy('verifying; what changed will be rolled back');
      // a host without changes has nothing to confirm: its lock goes in the same exec as its checks
      const unchanged = locked().filter((h) => !h.plan!.changes.length);
      checks = await verifyHosts(prep, opts, new Map(unchanged.map((h) => [h.target.name, `\n${releaseLockScript(runId)}\n`])));
      for (const h of unchanged) h.lock = { state: 'released' };
      log(formatChecks(checks));
      const bad = checks.filter((c) => !c.ok);
      if (bad.length) failure = `verification failed: ${bad.map((c) => `${c.description}: ${c.detail}`).join('; ')}`;
      failure ??= changed.length ? interrupted() : undefined;
    }
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
        return finish(EXIT.ok, green(changed.length ? `Applied run ${runId} and verified it.` : 'No changes; verification passed.'));
      }
      failure = late.map((f) => `${f.h.target.name}: ${f.r.detail}`).join('; ');
    }
    intr.busy('rolling back');
    log(red(`\n${failure}`));
    failureShown = !opts.json && !opts.quiet;
    // every host that completed its changes is rolled back, and so is one whose connection broke
    // during its apply (its script ran on); a host whose script failed already rolled itself back
    const seconds = prep.inv.rollback.timeout_seconds;
    const toUndo = prep.hosts.filter((h) => applied.some((a) => a.host === h.target.name && (a.ok || a.lost)));
    if (toUndo.length) rollbacks = await rollbackRun(toUndo, runId, opts, seconds);
    const locksLeft = await releaseLocks(locked().filter((h) => !toUndo.includes(h)), runId);
    for (const host of locksLeft) log(red(`${host}: could not release its lock (unreachable); once it is checked, run again with --break-lock`));
    const selfRolled = applied.filter((a) => !a.ok && !a.lost && (a.done > 0 || a.rollback.length > 0 || (a.rollbackStatus !== undefined && a.rollbackStatus !== 'rolled-back')));
    // a host whose own rollback did not finish as rolled-back (a full disk, an undo that failed) is left for a person
    const incomplete = [
      ...rollbacks.filter((r) => !r.ok).map((r) => r.host),
      ...applied.filter((a) => !a.ok && !a.lost && a.rollbackStatus !== undefined && a.rollbackStatus !== 'rolled-back').map((a) => a.host),
      ...selfRolled.filter((a) => a.rollbackStatus === undefined).map((a) => a.host),
    ];
    for (const r of rollbacks)
      log(`${r.ok ? green('rolled back') : red('ROLLBACK FAILED')} ${r.host}${r.error ? `: ${r.error}` : ''}${r.lines.length ? '\n    ' + r.lines.join('\n    ') : ''}`);
    for (const a of selfRolled) log(`${a.rollbackStatus === 'rolled-back' ? yellow('rolled itself back') : red('ROLLBACK FAILED')} ${a.host}:\n    ${a.rollback.join('\n    ')}`);
    const timeout = seconds;
    incomplete.push(...locksLeft.filter((h) => !incomplete.includes(h)));
    if (incomplete.length) {
      result = 'rollback-failed';
      return finish(
        EXIT.rollbackIncomplete,
        red(bold(`Rollback did not complete on ${incomplete.join(', ')}: a person must look. A host that could not be reached still has its dead-man's switch armed and reverts by itself within ${timeout} s of its apply; one whose rollback ran and failed does not. Check with dsrctl verify, then dsrctl rollback.`)),
      );
    }
    // a host refused before its first change (its files drifted since the plan) changed nothing
    const touched = applied.some((a) => a.ok || a.lost || a.done > 0 || a.rollback.length > 0);
    result = touched ? 'rolled-back' : 'failed';
    return finish(EXIT.failedRolledBack, bold(`Run ${runId} failed; ${touched ? 'every changed host was rolled back' : 'nothing was changed'}.`));
  } finally {
    intr.dispose();
    await closeAll([...prep.hosts, { session: prep.probe }]);
  }

  function finish(code: number, message: string): number {
    if (opts.json) {
      writeReport({
        command: 'apply',
        result,
        ok: code === EXIT.ok,
        exitCode: code,
        runId,
        mode: prep.inv.mode,
        failure,
        warnings,
        errors: hostErrors(prep.errors),
        hosts: prep.hosts.map((h) => ({
          ...(h.plan ? planJson(h.plan, runId) : { host: h.target.name, role: h.target.role, notes: [], changes: [] }),
          error: prep.errors.get(h.target.name)?.message,
          outcome: ((a) => (a ? { ...a, stdout: undefined } : null))(applied.find((a) => a.host === h.target.name)),
          rollback: ((r) => (r ? rollbackJson(r) : null))(rollbacks.find((r) => r.host === h.target.name)),
          execs: h.session?.execCount ?? 0,
        })),
        checks,
      });
    } else if (code === EXIT.ok) log(`\n${message}`);
    else {
      if (failure && !failureShown && (opts.quiet || result === 'failed')) printErr(red(failure));
      printErr(message);
    }
    return code;
  }
}

/** Proxy first, then the upstreams in parallel: their new default route is useless until the proxy handles their replies. */
async function applyAll(prep: Prepared, changed: HostState[], runId: string, applied: HostApplyResult[], opts: GlobalOptions): Promise<string | undefined> {
  const seconds = prep.inv.rollback.timeout_seconds;
  const applyGroup = async (group: HostState[]) => {
    const res = await Promise.all(
      group.map((h) =>
        applyHost(h.session!, h.plan!, runId, seconds).catch(
          (e: Error) => ({ host: h.target.name, ok: false, done: 0, rollback: [], failure: e.message, stderr: '', lost: isConnectionLoss(e) }) as HostApplyResult,
        ),
      ),
    );
    applied.push(...res);
    const bad = res.filter((r) => !r.ok);
    if (bad.length) throw safeError(new Error(bad.map((r) => `${r.host}: ${r.failure}`).join('; ')));
  };
  const proxy = changed.filter((h) => h.target.role === 'proxy');
  const ups = changed.filter((h) => h.target.role === 'upstream');
  let failure: string | undefined;
  await new Listr(
    [
      ...(proxy.length ? [{ title: `apply ${proxy[0]!.plan!.changes.length} change(s) on proxy`, task: () => applyGroup(proxy) }] : []),
      ...(ups.length ? [{ title: `apply changes on ${ups.map((h) => h.target.name).join(', ')}`, task: () => applyGroup(ups) }] : []),
    ],
    { concurrent: false, exitOnError: true, ...listrOptions(opts) },
  )
    .run()
    .catch((e: Error) => {
      failure = `apply failed: ${e.message}`;
    });
  return failure;
}

