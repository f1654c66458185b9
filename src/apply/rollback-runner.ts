import { HANDLER_FUNCTIONS, HANDLER_CALL } from './render-step.js';

/**
 * The rollback runner, installed on every host at /var/lib/dsrctl/rollback.sh. It needs nothing but
 * sh and the journal, so `dsrctl rollback` from any machine and the dead-man's switch with no agent
 * left both use it. Usage: rollback.sh RUN_DIR [reason]
 *
 * The journal is written ahead: changes/NNN.undo exists before change NNN starts. A change still
 * "pending" may be half-done, so its undo runs best-effort; a "done" change must undo cleanly.
 */
export const ROLLBACK_RUNNER_SCRIPT = `#!/bin/sh
# dsrctl rollback runner (generated; do not edit). Usage: rollback.sh RUN_DIR [reason]
run=$1; reason=\${2:-rollback}
[ -d "$run/changes" ] || { echo "no journal at $run"; exit 0; }
${HANDLER_FUNCTIONS}
status=$(cat "$run/status" 2>/dev/null)
case "$status" in rolled-back|committed-rolled-back) echo "@@dsrctl-nothing run already rolled back"; exit 0 ;; esac
fail=0; handlers=""
for undo in $(ls -r "$run"/changes/*.undo 2>/dev/null); do
  n=\${undo%.undo}; state=$(cat "$n.state" 2>/dev/null)
  summary=$(cat "$n.summary" 2>/dev/null)
  case "$state" in
    done)
      if sh "$undo" >"$n.undo.log" 2>&1; then echo undone > "$n.state"; echo "@@dsrctl-undone $summary"
      else fail=1; echo "@@dsrctl-undo-failed $summary: $(tr '\\n' ' ' < "$n.undo.log")"; fi ;;
    pending)
      # half-applied: every undo step is tried, failures of steps that never happened are expected
      sh "$undo" >"$n.undo.log" 2>&1; echo undone > "$n.state"; echo "@@dsrctl-undone (partial) $summary" ;;
    *) continue ;;
  esac
  for h in $(cat "$n.notify" 2>/dev/null); do case " $handlers " in *" $h "*) ;; *) handlers="$handlers $h" ;; esac; done
done
for h in $handlers; do
  case "$h" in
${Object.entries(HANDLER_CALL)
  .map(([h, fn]) => `    ${h}) ${fn} || { fail=1; echo "@@dsrctl-undo-failed handler ${h}"; } ;;`)
  .join('\n')}
  esac
done
if [ $fail = 0 ]; then echo rolled-back > "$run/status"; else echo rollback-failed > "$run/status"; fi
echo "$reason $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$run/rollback-reason"
echo "@@dsrctl-rollback-status $(cat "$run/status")"
exit $fail
`;
