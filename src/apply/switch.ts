import { quote } from 'shell-quote';
import { ROLLBACK_RUNNER, STATE_DIR } from './paths.js';
import { LOCK_FILE } from './lock.js';
import { REMOTE_PATH } from '../util/remote-env.js';

export const REVERTED_FILE = `${STATE_DIR}/reverted`;

/**
 * The dead-man's switch (netplan try, Junos commit confirmed): armed on the host before its first
 * change, it replays the journal's undo after `seconds` unless the run confirms. It lives on the
 * host, so a dropped SSH session or a dead agent still reverts. systemd-run where systemd runs;
 * otherwise a detached setsid sleeper (its own session, so sshd's hang-up does not reach it).
 */
export function armSwitchScript(run: string, runId: string, seconds: number): string {
  const body = [
    '#!/bin/sh',
    `# dsrctl dead-man's switch for run ${runId}`,
    `PATH=${REMOTE_PATH}; export PATH`,
    // what it writes (the revert log, the marker) is the journal's: root's alone
    'umask 077',
    `sleep ${seconds}`,
    // the switch and the confirm (or an agent's rollback) claim the run atomically: only one acts
    `mkdir ${quote([`${run}/claimed`])} 2>/dev/null || exit 0`,
    `echo switch > ${quote([`${run}/claimed/by`])}`,
    `case "$(cat ${quote([`${run}/status`])} 2>/dev/null)" in`,
    '  applying|applied)',
    `    sh ${ROLLBACK_RUNNER} ${quote([run, `dead-man's switch: run not confirmed within ${seconds} s`])} > ${quote([`${run}/switch.log`])} 2>&1`,
    `    printf 'run=%s time=%s status=%s\\n' ${quote([runId])} "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(cat ${quote([`${run}/status`])})" > ${REVERTED_FILE}`,
    `    if grep -q ${quote([`^run=${runId} `])} ${LOCK_FILE} 2>/dev/null; then rm -f ${LOCK_FILE}; fi ;;`,
    'esac',
    '',
  ].join('\n');
  const b64 = Buffer.from(body).toString('base64');
  const sw = quote([`${run}/switch.sh`]);
  return [
    `printf '%s' ${quote([b64])} | base64 -d > ${sw}`,
    'if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then',
    // the timer fires the remaining time after now; the sleep inside then returns at once
    `  sed -i 's/^sleep .*/sleep 0/' ${sw}`,
    `  systemd-run --quiet --unit=${quote([`dsrctl-revert-${runId}`])} --on-active=${seconds}s --timer-property=AccuracySec=1s /bin/sh ${sw} || dsrctl_fail "cannot arm the dead-man's switch (systemd-run)"`,
    `  echo ${quote([`systemd dsrctl-revert-${runId}`])} > ${quote([`${run}/switch`])}`,
    'else',
    `  setsid sh ${sw} </dev/null >/dev/null 2>&1 &`,
    `  echo "pid $!" > ${quote([`${run}/switch`])}`,
    'fi',
    `echo "@@dsrctl-armed ${seconds}"`,
  ].join('\n');
}

/**
 * Claim a run for `who` (confirm, rollback): sets `claim=ok`, or `claim=lost` and `claim_by` when
 * the switch (or an earlier claim) got it first, after waiting up to 60 s for a switch that is still
 * rolling back. `runWord` is a shell word for the run directory.
 */
export function claimRunScript(runWord: string, who: string): string {
  return [
    // the claim and its owner are journal files: root's alone, whichever exec writes them
    'umask 077',
    `cl_run=${runWord}; claim=lost; claim_by=`,
    'if mkdir "$cl_run/claimed" 2>/dev/null; then',
    `  echo ${who} > "$cl_run/claimed/by"; claim=ok`,
    'else',
    '  i=0; while [ "$(cat "$cl_run/claimed/by" 2>/dev/null)" = switch ] && case "$(cat "$cl_run/status" 2>/dev/null)" in applying|applied) true ;; *) false ;; esac && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done',
    '  claim_by=$(cat "$cl_run/claimed/by" 2>/dev/null)',
    'fi',
  ].join('\n');
}

/**
 * Stop the switch of a run, if it is still waiting: only after claiming the run, so a switch that
 * is already rolling back is never killed half-way. Safe to run twice.
 * `runWord` is a shell word for the run directory: a quoted path or "$run".
 */
export function disarmSwitchScript(runWord: string): string {
  return [
    `sw_run=${runWord}`,
    'if [ -f "$sw_run/switch" ]; then',
    '  set -- $(cat "$sw_run/switch")',
    '  case "$1" in',
    '    systemd) systemctl stop "$2.timer" "$2.service" 2>/dev/null ;;',
    // the sleeper leads its own process group: kill the group (sh and its sleep), after checking it is ours
    '    pid) if grep -q "$sw_run/switch.sh" "/proc/$2/cmdline" 2>/dev/null; then kill -- "-$2" 2>/dev/null || kill "$2" 2>/dev/null; fi ;;',
    '  esac',
    '  rm -f "$sw_run/switch"',
    'fi',
  ].join('\n');
}
