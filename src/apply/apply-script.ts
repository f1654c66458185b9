import { quote } from 'shell-quote';
import type { HostPlan, Change } from '../plan/types.js';
import { renderStep, HANDLER_FUNCTIONS, HANDLER_CALL, SYSTEMD_UNITS_HANDLER, bootSteps, isFileStep } from './render-step.js';
import type { Step } from '../plan/types.js';
import { ROLLBACK_RUNNER_SCRIPT } from './rollback-runner.js';
import { STATE_DIR, ROLLBACK_RUNNER, LAST_RUN, runDir } from './paths.js';
import { armSwitchScript, REVERTED_FILE } from './switch.js';
import { REMOTE_PATH } from '../util/remote-env.js';

const b64 = (s: string) => quote([Buffer.from(s, 'utf8').toString('base64')]);
const writeB64 = (content: string, path: string) => `printf '%s' ${b64(content)} | base64 -d > ${quote([path])}`;

/** An undo script for one change: every step runs, the first failure sets the exit status. */
export function renderUndo(change: Change, run: string): string {
  // the highest status wins: 3 (a backup that could not be put back) over 1
  return ['rc=0', ...change.undo.map((s) => `${renderStep(s, run)} || { r=$?; [ $r -gt $rc ] && rc=$r; }`), 'exit $rc', ''].join('\n');
}

/**
 * Before anything happens: every file is still what the plan read (same bytes, same resolved
 * path, still absent), or the host is refused with nothing changed. The plan may be minutes old
 * (a confirmation prompt), and someone may have edited nginx.conf meanwhile.
 */
function preconditionLines(plan: HostPlan): string[] {
  const q = (s: string) => quote([s]);
  return (plan.preconditions ?? []).map((p) => {
    const drift = (what: string) => `{ echo ${q(`@@dsrctl-drift ${p.path} ${what} since the plan read it; nothing was changed on ${plan.host}: run dsrctl plan again`)}; exit 1; }`;
    const checks = [
      p.sha256
        ? `[ "$(sha256sum < ${q(p.path)} 2>/dev/null | cut -c1-64)" = ${q(p.sha256)} ] || ${drift('changed')}`
        : `{ [ ! -e ${q(p.path)} ] && [ ! -L ${q(p.path)} ]; } || ${drift('was created')}`,
    ];
    if (p.realpath) checks.push(`[ "$(realpath -m -- ${q(p.path)} 2>/dev/null || readlink -f -- ${q(p.path)})" = ${q(p.realpath)} ] || ${drift('now resolves elsewhere')}`);
    return checks.join('\n');
  });
}

/**
 * All changes of one host as one script (one SSH exec). For each change, its undo is journaled on
 * the host before the change starts; the first failure rolls the host back from that journal and
 * exits non-zero. Output lines starting with @@dsrctl- report progress to the agent.
 */
export function renderApplyScript(plan: HostPlan, runId: string, opts: { switchSeconds: number }): string {
  const run = runDir(runId);
  const q = (s: string) => quote([s]);
  const lines: string[] = [
    '#!/bin/sh',
    `# dsrctl apply: run ${runId} on ${plan.host}`,
    'set -u',
    `PATH=${REMOTE_PATH}; export PATH`,
    // the journal holds backups of root's files: root's alone (files 0600, directories 0700)
    'umask 077',
    // a dropped SSH session must not stop the script half-way: it finishes or rolls back by itself
    "trap '' HUP PIPE",
    HANDLER_FUNCTIONS,
    SYSTEMD_UNITS_HANDLER,
    `run=${q(run)}`,
    ...preconditionLines(plan),
    `mkdir -p ${q(STATE_DIR)} "$run/files" "$run/changes" || { echo "@@dsrctl-failed cannot create $run"; exit 1; }`,
    // a journal from before umask 077 (or made by hand) becomes private too; backups keep their own mode (restored with them)
    `chmod 700 ${q(STATE_DIR)} ${q(`${STATE_DIR}/runs`)} "$run" "$run/files" "$run/changes" && for d in ${q(`${STATE_DIR}/runs`)}/*/; do chmod 700 "$d" "$d"changes "$d"files 2>/dev/null; done; for f in ${q(STATE_DIR)}/*; do [ -f "$f" ] && chmod 600 "$f"; done; true`,
    `${writeB64(ROLLBACK_RUNNER_SCRIPT, ROLLBACK_RUNNER)} || { echo "@@dsrctl-failed cannot write ${ROLLBACK_RUNNER} (disk full?)"; exit 1; }`,
    `echo applying > "$run/status" || { echo "@@dsrctl-failed cannot write the journal (disk full?)"; exit 1; }`,
    // a rollback from another connection waits for this script while it runs
    `echo $$ > "$run/pid"`,
    // the boot this run's runtime changes live in (rollback.sh: after a reboot that restored nothing, only files are undone)
    `cat /proc/sys/kernel/random/boot_id > "$run/boot" 2>/dev/null`,
    `printf '%s\\n' ${q(`run=${runId} host=${plan.host}`)} > "$run/meta"`,
    `echo ${q(runId)} > ${q(LAST_RUN)}`,
    // a revert by an earlier switch was reported by the facts of this run
    `rm -f ${REVERTED_FILE}`,
    // the boot-time revert finds this run unconfirmed (last-run, status applying) from here on
    ...(plan.bootRevert ? ['sync'] : []),
    // armed before the first change: from here on the host reverts by itself unless the run confirms
    // on failure the script rolls the host back itself, unless the switch already claimed the run
    'dsrctl_fail() {',
    '  echo "@@dsrctl-failed $1"',
    `  if mkdir "$run/claimed" 2>/dev/null; then echo apply > "$run/claimed/by"; sh ${q(ROLLBACK_RUNNER)} "$run" "apply failed: $1"`,
    '  else i=0; while [ "$(cat "$run/status")" = applying ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; echo "@@dsrctl-rollback-status $(cat "$run/status")"; fi',
    '  rm -f "$run/pid"; exit 1',
    '}',
    armSwitchScript(run, runId, opts.switchSeconds),
  ];
  plan.changes.forEach((change, i) => {
    const n = `$run/changes/${String(i + 1).padStart(3, '0')}`;
    const boot = bootSteps(change);
    const bootFile = boot.length ? ` && ${writeB64(renderUndo({ ...change, undo: boot }, run), `${run}/changes/${String(i + 1).padStart(3, '0')}.boot`)}` : '';
    lines.push(
      `# ${change.summary.replace(/\n/g, ' ')}`,
      // write-ahead: the undo is on disk before the change starts, or the change does not start
      `{ ${writeB64(renderUndo(change, run), `${run}/changes/${String(i + 1).padStart(3, '0')}.undo`)}${bootFile} && printf '%s\\n' ${q(change.summary)} > "${n}.summary" && printf '%s\\n' ${q(change.id)} > "${n}.id" && echo ${change.action} > "${n}.action" && printf '%s\\n' ${q((change.notify ?? []).join(' '))} > "${n}.notify" && echo pending > "${n}.state"; } || dsrctl_fail "cannot write the journal for change ${i + 1} (disk full?)"`,
      `{ ${durableSteps(change.do, !!plan.bootRevert).map((s) => renderStep(s, run)).join(' && ')}; } 2>"${n}.err" || dsrctl_fail "change ${i + 1}: ${change.summary.replace(/["$`\\]/g, '')}: $(tr '\\n' ' ' < "${n}.err")"`,
      `echo done > "${n}.state"`,
      `echo "@@dsrctl-done ${i + 1}"`,
    );
  });
  const handlers = [...new Set(plan.changes.flatMap((c) => c.notify ?? []))];
  for (const h of handlers) {
    lines.push(`${HANDLER_CALL[h]} 2>"$run/handler.err" || dsrctl_fail "handler ${h}: $(tr '\\n' ' ' < "$run/handler.err")"`, `echo "@@dsrctl-handler ${h}"`);
  }
  lines.push('echo applied > "$run/status"', 'rm -f "$run/pid"', 'echo "@@dsrctl-applied"', '');
  return lines.join('\n');
}

/**
 * With a boot-time revert, a file may change on disk only after its backup and the change's
 * journal (undo, boot undo, state) are: `sync` before each step that writes, removes or links a
 * file. Runtime changes need none: a reboot takes them away by itself.
 */
function durableSteps(steps: Step[], bootRevert: boolean): Step[] {
  if (!bootRevert) return steps;
  return steps.flatMap((s) => (isFileStep(s) && !('backup' in s) ? [{ run: ['sync'] }, s] : [s]));
}

export interface ApplyOutcome {
  ok: boolean;
  /** number of changes that completed */
  done: number;
  failure?: string;
  /** lines of the host-side rollback, when it ran */
  rollback: string[];
  rollbackStatus?: string;
}

export function parseApplyOutput(stdout: string): ApplyOutcome {
  const out: ApplyOutcome = { ok: false, done: 0, rollback: [] };
  for (const line of stdout.split('\n')) {
    if (line.startsWith('@@dsrctl-done ')) out.done = Number(line.slice(14));
    else if (line === '@@dsrctl-applied') out.ok = true;
    else if (line.startsWith('@@dsrctl-failed ')) out.failure = line.slice(16).trim();
    else if (line.startsWith('@@dsrctl-undone') || line.startsWith('@@dsrctl-undo-failed')) out.rollback.push(line.slice(9));
    else if (line.startsWith('@@dsrctl-rollback-status ')) out.rollbackStatus = line.slice(25);
    else if (line.startsWith('@@dsrctl-drift ')) out.failure = line.slice(15).trim();
  }
  return out;
}
