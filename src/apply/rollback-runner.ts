import { HANDLER_FUNCTIONS, HANDLER_CALL, SYSTEMD_UNITS_HANDLER } from './render-step.js';
import { LOCK_FILE } from './lock.js';
import { LAST_RUN, STATE_DIR } from './paths.js';
import { REVERTED_FILE } from './switch.js';
import { PERSIST_SCRIPT } from '../persist/paths.js';
import { REMOTE_PATH } from '../util/remote-env.js';

/**
 * The rollback runner, installed on every host at /var/lib/dsrctl/rollback.sh. It needs nothing but
 * sh and the journal, so `dsrctl rollback` from any machine and the dead-man's switch with no agent
 * left both use it. Usage: rollback.sh RUN_DIR [reason] | rollback.sh --all [reason]
 *
 * One run (the agent's automatic rollback, the dead-man's switch) is undone exactly: the host goes
 * back to how that run found it. `--all` (the rollback command) undoes every run not yet undone,
 * newest first, back to before dsrctl's first apply. A later run that repaired drift of something
 * an older active run had created or changed is not undone for it: the older run's undo already
 * returns it to the original, and undoing both would fail or go back to the drifted state.
 *
 * The journal is written ahead: changes/NNN.undo exists before change NNN starts. A change still
 * "pending" may be half-done, so its undo runs best-effort; a "done" change must undo cleanly.
 *
 * `--boot` (dsrctl-boot-revert.service, early at boot): when the last run was never confirmed
 * (status applying or applied, not claimed by a confirmation), its files are put back from the
 * journal (changes/NNN.boot: the file part of each undo; the runtime state went with the reboot),
 * the run is marked rolled back, the revert recorded in `reverted` (by=boot) for the next
 * plan/apply/verify to report, and the run's lock removed.
 */
export const ROLLBACK_RUNNER_SCRIPT = `#!/bin/sh
# dsrctl rollback runner (generated; do not edit). Usage: rollback.sh RUN_DIR [reason] | rollback.sh --all [reason]
PATH=${REMOTE_PATH}; export PATH
umask 077
${HANDLER_FUNCTIONS}
${SYSTEMD_UNITS_HANDLER}
# dsrctl_handler NAME: run one handler; unknown names fail
dsrctl_handler() {
  case "$1" in
${Object.entries(HANDLER_CALL)
  .map(([h, fn]) => `    ${h}) ${fn} ;;`)
  .join('\n')}
    *) echo "unknown handler $1" >&2; return 1 ;;
  esac
}
if [ "$1" = --boot ]; then
  # early in boot: a change's boot undo must never wait for a systemd job
  DSRCTL_AT_BOOT=1; export DSRCTL_AT_BOOT
  id=$(cat ${LAST_RUN} 2>/dev/null); run=${STATE_DIR}/runs/$id
  { [ -n "$id" ] && [ -d "$run/changes" ]; } || exit 0
  st=$(cat "$run/status" 2>/dev/null)
  case "$st" in applying|applied) ;; *) exit 0 ;; esac
  # a confirmation that had claimed the run when the host went down: verification had passed
  [ "$(cat "$run/claimed/by" 2>/dev/null)" = confirm ] && exit 0
  mkdir "$run/claimed" 2>/dev/null; echo boot > "$run/claimed/by"
  fail=0
  for u in $(ls -r "$run"/changes/*.undo 2>/dev/null); do
    n=\${u%.undo}; state=$(cat "$n.state" 2>/dev/null)
    case "$state" in done|pending) ;; *) continue ;; esac
    if [ -f "$n.boot" ]; then
      sh "$n.boot" >"$n.boot.log" 2>&1; r=$?
      # a pending change may not have started (no backup yet): only a backup that cannot be put back fails it
      if [ $r -ge 3 ] || { [ $r != 0 ] && [ "$state" = done ]; }; then fail=1; echo "@@dsrctl-undo-failed $(cat "$n.summary" 2>/dev/null): $(tr '\n' ' ' < "$n.boot.log")"; continue; fi
    fi
    echo undone > "$n.state"; echo "@@dsrctl-undone $(cat "$n.summary" 2>/dev/null)"
  done
  if [ $fail = 0 ]; then echo rolled-back > "$run/status"; else echo rollback-failed > "$run/status"; fi
  echo "boot: the run was never confirmed before the host rebooted; its files were restored from the journal (the runtime state went with the reboot) $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$run/rollback-reason"
  printf 'run=%s time=%s status=%s by=boot\n' "$id" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(cat "$run/status")" > ${REVERTED_FILE}
  if grep -q "^run=$id " ${LOCK_FILE} 2>/dev/null; then rm -f ${LOCK_FILE}; fi
  # units this run added were queued for this boot before their files went: stop them (never wait: systemd is still starting)
  for u in dsrctl-persist.service dsrctl-health.service; do
    [ -e "/etc/systemd/system/$u" ] || systemctl --no-block stop "$u" 2>/dev/null
  done
  sync
  echo "@@dsrctl-rollback-status $(cat "$run/status")"
  exit $fail
fi
if [ "$1" = --all ]; then
  runs=/var/lib/dsrctl/runs; reason=\${2:-rollback}; active=""
  # run ids start with a UTC timestamp: reverse name order is newest first
  for r in $(ls -1 "$runs" 2>/dev/null | sort -r); do
    case "$(cat "$runs/$r/status" 2>/dev/null)" in applying|applied|committed|rollback-failed) active="$active $r" ;; esac
  done
  [ -n "$active" ] || { echo "@@dsrctl-nothing no run to undo on this host"; exit 0; }
  rc=0; deferred="$runs/.handlers"; : > "$deferred"
  # whether the kernel state was restored at boot is decided once, before any run's undo removes persist.sh
  DSRCTL_RESTORED_AT_BOOT=$([ -f ${PERSIST_SCRIPT} ] && echo 1 || echo 0); export DSRCTL_RESTORED_AT_BOOT
  for r in $active; do
    for idf in "$runs/$r"/changes/*.id; do
      [ -f "$idf" ] || continue
      n=\${idf%.id}
      [ "$(cat "$n.state" 2>/dev/null)" = done ] || continue
      [ "$(cat "$n.action" 2>/dev/null)" = delete ] && continue
      # the nearest older active run that changed the same resource decides: when it created or
      # updated it, its undo returns it to the original and this run's undo must not run as well
      found=""
      for o in $active; do
        [ -z "$found" ] || break
        expr "$o" \\< "$r" >/dev/null || continue
        for oid in "$runs/$o"/changes/*.id; do
          if [ -f "$oid" ] && cmp -s "$idf" "$oid" && [ "$(cat "\${oid%.id}.state" 2>/dev/null)" = done ]; then found=$(cat "\${oid%.id}.action"); break; fi
        done
      done
      case "$found" in ''|delete) ;; *) echo superseded > "$n.state" ;; esac
    done
    DSRCTL_DEFER_HANDLERS="$deferred" sh "$0" "$runs/$r" "$reason" || rc=1
  done
  # handlers once, after every run is undone: an intermediate state (say, a stream include whose
  # file an older run's undo removes next) must not be validated on its own
  for h in $(sort -u "$deferred"); do
    dsrctl_handler "$h" || { rc=1; echo "@@dsrctl-undo-failed handler $h"; for r in $active; do echo rollback-failed > "$runs/$r/status"; done; }
  done
  rm -f "$deferred"
  exit $rc
fi
run=$1; reason=\${2:-rollback}
[ -d "$run/changes" ] || { echo "no journal at $run"; exit 0; }
status=$(cat "$run/status" 2>/dev/null)
case "$status" in rolled-back|committed-rolled-back) echo "@@dsrctl-nothing run already rolled back"; exit 0 ;; esac
fail=0; handlers=""
# after a rollback that failed (say, nginx -t), the handlers of what it undid run again
if [ "$status" = rollback-failed ]; then
  for nf in "$run"/changes/*.notify; do
    [ "$(cat "\${nf%.notify}.state" 2>/dev/null)" = undone ] || continue
    for h in $(cat "$nf"); do case " $handlers " in *" $h "*) ;; *) handlers="$handlers $h" ;; esac; done
  done
fi
# a run of an earlier boot, on a host where nothing restored its kernel state at boot (no
# persist.sh: no systemd, or persist: false): its runtime changes went with the reboot, and their
# undo would fail (a rule or route that is not there). Only what is on disk is put back: NNN.boot.
gone=0
if [ -s "$run/boot" ] && [ "$(cat "$run/boot")" != "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)" ] && [ "\${DSRCTL_RESTORED_AT_BOOT:-$([ -f ${PERSIST_SCRIPT} ] && echo 1 || echo 0)}" = 0 ]; then gone=1; fi
for undo in $(ls -r "$run"/changes/*.undo 2>/dev/null); do
  n=\${undo%.undo}; state=$(cat "$n.state" 2>/dev/null)
  summary=$(cat "$n.summary" 2>/dev/null)
  if [ $gone = 1 ]; then
    case "$state" in done|pending) ;; *) continue ;; esac
    if [ -f "$n.boot" ]; then undo=$n.boot
    else echo undone > "$n.state"; echo "@@dsrctl-undone (gone with the reboot) $summary"; continue; fi
  fi
  case "$state" in
    done)
      if sh "$undo" >"$n.undo.log" 2>&1; then echo undone > "$n.state"; echo "@@dsrctl-undone $summary"
      else fail=1; echo "@@dsrctl-undo-failed $summary: $(tr '\\n' ' ' < "$n.undo.log")"; fi ;;
    pending)
      # half-applied: every undo step is tried, failures of steps that never happened are expected;
      # status 3 is a backup that exists and could not be put back: that is a failed rollback
      sh "$undo" >"$n.undo.log" 2>&1
      if [ $? -ge 3 ]; then fail=1; echo "@@dsrctl-undo-failed $summary: $(tr '\\n' ' ' < "$n.undo.log")"
      else echo undone > "$n.state"; echo "@@dsrctl-undone (partial) $summary"; fi ;;
    *) continue ;;
  esac
  for h in $(cat "$n.notify" 2>/dev/null); do case " $handlers " in *" $h "*) ;; *) handlers="$handlers $h" ;; esac; done
done
if [ -n "\${DSRCTL_DEFER_HANDLERS:-}" ]; then
  for h in $handlers; do echo "$h" >> "$DSRCTL_DEFER_HANDLERS"; done; handlers=""
fi
for h in $handlers; do
  dsrctl_handler "$h" || { fail=1; echo "@@dsrctl-undo-failed handler $h"; }
done
if [ $fail = 0 ]; then echo rolled-back > "$run/status"; else echo rollback-failed > "$run/status"; fi
echo "$reason $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$run/rollback-reason"
echo "@@dsrctl-rollback-status $(cat "$run/status")"
exit $fail
`;
