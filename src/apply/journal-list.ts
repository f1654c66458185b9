import { STATE_DIR } from './paths.js';

/** A change that `rollback` would undo on a host: from the host's own journal. */
export interface PendingUndo {
  run: string;
  /** done: applied; pending: possibly half-applied (its undo runs best-effort) */
  state: 'done' | 'pending';
  summary: string;
}

/**
 * Lists, newest run first and each run's changes last-first (the order rollback.sh --all undoes
 * them), every change of a run not yet undone. One line each: `@@dsrctl-pending RUN STATE SUMMARY`.
 */
export function pendingUndoScript(): string {
  return [
    `runs=${STATE_DIR}/runs`,
    'for r in $(ls -1 "$runs" 2>/dev/null | sort -r); do',
    '  case "$(cat "$runs/$r/status" 2>/dev/null)" in applying|applied|committed|rollback-failed) ;; *) continue ;; esac',
    '  for s in $(ls -r "$runs/$r"/changes/*.summary 2>/dev/null); do',
    '    n=${s%.summary}; st=$(cat "$n.state" 2>/dev/null)',
    '    case "$st" in done|pending) printf \'@@dsrctl-pending %s %s %s\\n\' "$r" "$st" "$(tr \'\\n\' \' \' < "$s")" ;; esac',
    '  done',
    'done',
  ].join('\n');
}

export function parsePendingUndo(stdout: string): PendingUndo[] {
  const out: PendingUndo[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^@@dsrctl-pending (\S+) (done|pending) (.*)$/.exec(line);
    if (m) out.push({ run: m[1]!, state: m[2] as PendingUndo['state'], summary: m[3]!.trim() });
  }
  return out;
}
