import type { ExecResult, HostSession } from '../ssh/types.js';
import type { HostPlan } from '../plan/types.js';
import { renderApplyScript, parseApplyOutput, type ApplyOutcome } from '../apply/apply-script.js';
import { ROLLBACK_RUNNER, LAST_RUN, runDir } from '../apply/paths.js';
import { disarmSwitchScript, claimRunScript, REVERTED_FILE } from '../apply/switch.js';
import { releaseLockScript } from '../apply/lock.js';
import { quote } from 'shell-quote';
import { timed } from '../util/debug.js';
import { isConnectionLoss } from './hosts.js';
import { converse, inSubshell } from './conversation.js';

export interface HostApplyResult extends ApplyOutcome {
  host: string;
  stderr: string;
  /** the script's own output (progress markers and what the commands printed), for --verbose */
  stdout?: string;
  /** the connection broke during the apply: the script may have run on (it ignores hang-ups) */
  lost?: boolean;
  /**
   * The apply exec waits at CHECKS_MARKER (applied, switch armed): send it the run's checks as
   * more script (resolves to what they printed), or nothing (`undefined`: the exec just ends).
   * Calling it again after the first answer only awaits the exec.
   */
  continueWith?: (checks: string | undefined) => Promise<ExecResult>;
}

/** The line an apply exec prints after `@@dsrctl-applied` when it waits for the run's checks. */
export const CHECKS_MARKER = '@@dsrctl-await-checks';

/**
 * All changes of one host in one exec. On failure the host has already rolled itself back.
 *
 * `checksTimeoutMs` (apply): the exec does not end after its changes and handlers; it prints
 * CHECKS_MARKER and `sh -s` waits on stdin, and this resolves then, with `continueWith`. The
 * checks cannot follow the changes at once: they are cross-host (the proxy's need the upstreams'
 * routes), so the run sends them only once every host has applied. A controller that dies while
 * a host waits closes its stdin: sh ends (status "applied", never confirmed) and the switch,
 * armed in its own session, reverts the host as it would after a lost confirm.
 */
export async function applyHost(session: HostSession, plan: HostPlan, runId: string, switchSeconds: number, checksTimeoutMs?: number): Promise<HostApplyResult> {
  const script = renderApplyScript(plan, runId, { switchSeconds }) + (checksTimeoutMs ? `echo "${CHECKS_MARKER}"\n` : '');
  const wait = checksTimeoutMs ? { marker: CHECKS_MARKER, timeoutMs: checksTimeoutMs } : undefined;
  const conv = converse(session, script, { timeoutMs: 120_000, ...(wait ? { wait } : {}) });
  void timed(`${session.name} apply${wait ? ' (and checks)' : ''}`, async () => {
    const c = await conv;
    return 'ended' in c ? c.ended : c.done;
  }).catch(() => undefined);
  const first = await conv;
  if ('head' in first) {
    const stdout = first.head.replace(`${CHECKS_MARKER}\n`, '');
    const outcome = parseApplyOutput(stdout);
    const continueWith = async (checks: string | undefined) => {
      const r = await first.answer(checks ? `${inSubshell(checks)}exit 0\n` : 'exit 0\n');
      return { ...r, stdout: r.stdout.slice(r.stdout.indexOf(`${CHECKS_MARKER}\n`) + CHECKS_MARKER.length + 1) };
    };
    return { host: plan.host, ...outcome, stderr: '', stdout, continueWith };
  }
  const res = first.ended;
  const outcome = parseApplyOutput(res.stdout);
  if (res.code === 0 && !outcome.ok) outcome.failure = 'apply script ended without reporting success';
  if (res.code !== 0 && !outcome.failure) outcome.failure = `apply script exited ${res.code}: ${res.stderr.trim()}`;
  return { host: plan.host, ...outcome, ok: res.code === 0 && outcome.ok, stderr: res.stderr, stdout: res.stdout };
}

/**
 * The last exec of a run on a host: confirm it (disarm the switch, mark the run committed) when
 * it changed, and release the lock. Returns false when the switch had already reverted the host.
 */
export async function finishHost(session: HostSession, runId: string, changed: boolean): Promise<{ ok: boolean; detail?: string }> {
  const run = quote([runDir(runId)]);
  const script = [
    ...(changed
      ? [
          claimRunScript(run, 'confirm'),
          'st=$(cat "$cl_run/status" 2>/dev/null)',
          // claimed: the switch is still asleep and can be stopped. Lost to our own earlier confirm
          // (its reply was lost and this is the retry): committed already. Lost to the switch: it fired.
          'if [ $claim = ok ]; then',
          disarmSwitchScript(run),
          '  if [ "$st" = applied ]; then echo committed > "$cl_run/status"; echo "@@dsrctl-committed"; else echo "@@dsrctl-not-committed $st"; fi',
          'elif [ "$claim_by" = confirm ] && [ "$st" = committed ]; then echo "@@dsrctl-committed"',
          'else echo "@@dsrctl-not-committed $st"; fi',
        ]
      : []),
    releaseLockScript(runId),
    'echo "@@dsrctl-finished"',
  ].join('\n');
  try {
    const res = await timed(`${session.name} finish`, () => session.exec(script, { timeoutMs: 20_000 }));
    const bad = /@@dsrctl-not-committed (.*)/.exec(res.stdout);
    if (bad) return { ok: false, detail: `run was not confirmed in time: the host's status is "${bad[1]}" (its dead-man's switch fired)` };
    return res.stdout.includes('@@dsrctl-finished') ? { ok: true } : { ok: false, detail: res.stderr.trim() };
  } catch (e) {
    if (isConnectionLoss(e)) throw e;
    return { ok: false, detail: (e as Error).message };
  }
}

/** Release this run's lock (a run that stops before changing anything). Throws when the host cannot be reached. */
export async function releaseLock(session: HostSession, runId: string): Promise<void> {
  await session.exec(releaseLockScript(runId), { timeoutMs: 10_000 });
}

export interface HostRollbackResult {
  host: string;
  ok: boolean;
  /** "nothing to undo" when the host had no journal, or its last run was rolled back already */
  nothing: boolean;
  lines: string[];
  status?: string;
  error?: string;
}

/**
 * Undo a run from the host's own journal (without a run id: the host's last run), disarming its
 * switch first and releasing `lockRun`'s lock after. Running it again is harmless.
 */
export async function rollbackHost(session: HostSession, runId: string | undefined, lockRun: string): Promise<HostRollbackResult> {
  const script = [
    runId ? `id=${quote([runId])}` : `id=$(cat ${LAST_RUN} 2>/dev/null)`,
    'run=/var/lib/dsrctl/runs/$id',
    `if [ -z "$id" ] || [ ! -f ${ROLLBACK_RUNNER} ] || [ ! -d "$run" ]; then echo "@@dsrctl-nothing no run recorded on this host"; rc=0`,
    `else`,
    // an apply whose connection broke runs on (it ignores hang-ups): let it finish first (30 s at
    // most; a script that died, say with the machine, leaves its pid behind and is not waited for)
    `  i=0; while [ -f "$run/pid" ] && kill -0 "$(cat "$run/pid")" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done`,
    // claim the last run first: a switch that is already rolling it back is waited for, never killed
    claimRunScript('"$run"', 'rollback'),
    '  if [ $claim = ok ]; then',
    disarmSwitchScript('"$run"'),
    '  fi',
    runId ? `  sh ${ROLLBACK_RUNNER} "$run" "dsrctl apply: rolled back"; rc=$?` : `  sh ${ROLLBACK_RUNNER} --all "dsrctl rollback"; rc=$?`,
    'fi',
    // a revert reported earlier is history once the host is rolled back on purpose
    `[ $rc = 0 ] && rm -f ${REVERTED_FILE}`,
    releaseLockScript(lockRun),
    'exit $rc',
  ].join('\n');
  try {
    const res = await session.exec(script, { timeoutMs: 150_000 });
    const lines = res.stdout.split('\n').filter((l) => l.startsWith('@@dsrctl-'));
    const nothing = lines.some((l) => l.startsWith('@@dsrctl-nothing')) || (res.code === 0 && !lines.some((l) => l.startsWith('@@dsrctl-undone')));
    const status = lines.find((l) => l.startsWith('@@dsrctl-rollback-status '))?.slice(25);
    return {
      host: session.name,
      ok: res.code === 0,
      nothing,
      status,
      lines: lines.filter((l) => l.startsWith('@@dsrctl-undo')).map((l) => l.slice(9)),
      error: res.code === 0 ? undefined : `rollback exited ${res.code}: ${(lines.filter((l) => l.includes('failed')).join('; ') || res.stderr).trim()}`,
    };
  } catch (e) {
    // a lost connection is the caller's to retry (withSession reconnects once)
    if (isConnectionLoss(e)) throw e;
    return { host: session.name, ok: false, nothing: false, lines: [], error: (e as Error).message };
  }
}
