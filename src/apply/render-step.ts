import { quote } from 'shell-quote';
import type { Change, Handler, Step } from '../plan/types.js';
import { PERSIST_SCRIPT, PERSIST_UNIT, unitPath } from '../persist/paths.js';

/** One step as one shell command line. Every value is quoted; no user text is ever interpreted by the shell. */
export function renderStep(step: Step, run: string): string {
  if ('run' in step) return quote(step.run);
  // a backup exists whole or not at all (copied aside, then linked into place): a full disk cannot
  // leave a partial copy that a restore would put over the intact original, and `ln` refuses to
  // replace a backup that exists (one backup can never destroy another)
  if ('backup' in step) {
    const b = `${run}/files/${step.backup.key}`;
    return `cp -p -- ${quote([step.backup.path, `${b}.tmp`])} && ln -- ${quote([`${b}.tmp`, b])} && rm -f -- ${quote([`${b}.tmp`])}`;
  }
  // a backup that exists but cannot be put back is exit status 3: a failed rollback even for a
  // half-applied change, whose other undo steps may fail harmlessly
  if ('restore' in step) {
    const b = `${run}/files/${step.restore.key}`;
    return `{ [ -f ${quote([b])} ] || { echo ${quote([`no backup of ${step.restore.path}`])} >&2; false; }; } && { cp -p -- ${quote([b, step.restore.path])} || { echo ${quote([`cannot restore ${step.restore.path} from ${b}`])} >&2; (exit 3); }; }`;
  }
  if ('write' in step) {
    // the exact bytes (content is a latin1 byte string)
    const b64 = Buffer.from(step.write.content, 'latin1').toString('base64');
    // truncate in place: an existing file keeps its owner and mode; a new one is made for the
    // program that reads it (nginx, systemd-networkd), not under the journal's umask 077
    return `( umask 022 && printf '%s' ${quote([b64])} | base64 -d > ${quote([step.write.path])} )`;
  }
  if ('remove' in step) return `rm -f -- ${quote([step.remove.path])}`;
  return step.sh;
}

/**
 * Handlers as shell functions. nginx reload is asynchronous: wait until the old workers stop serving,
 * or the first probe after apply may still hit a worker without `transparent`.
 */
export const HANDLER_FUNCTIONS = String.raw`
dsrctl_nginx_reload() {
  nginx -t -q || { echo "nginx -t rejected the new configuration" >&2; return 1; }
  pidf=$(nginx -V 2>&1 | sed -n 's/.*--pid-path=\([^ ]*\).*/\1/p'); [ -n "$pidf" ] || pidf=/run/nginx.pid
  master=$(cat "$pidf" 2>/dev/null) || { echo "nginx is not running (no $pidf)" >&2; return 1; }
  old=$(ps -o pid= --ppid "$master" 2>/dev/null)
  if [ -d /run/systemd/system ] && systemctl is-active --quiet nginx 2>/dev/null; then
    systemctl reload nginx || return 1
  else
    nginx -s reload || return 1
  fi
  i=0
  while [ $i -lt 100 ]; do
    busy=0
    for p in $old; do
      case "$(ps -o args= -p "$p" 2>/dev/null)" in *"worker process") busy=1 ;; esac
    done
    [ $busy = 0 ] && return 0
    sleep 0.05; i=$((i+1))
  done
  echo "nginx workers did not restart within 5 s" >&2; return 1
}
`;

/**
 * After dsrctl's unit files changed (persistence): systemd reads them again, and the restore unit
 * runs now when it exists (so every apply proves the restore script on the live state, and a
 * network manager restart finds the unit active and re-runs it through PartOf=), or is stopped
 * when it is gone (a rollback removed it).
 */
export const SYSTEMD_UNITS_HANDLER = String.raw`
dsrctl_systemd_units() {
  [ -d /run/systemd/system ] || return 0
  systemctl daemon-reload || return 1
  if [ -f ${unitPath(PERSIST_UNIT)} ] && [ -f ${PERSIST_SCRIPT} ]; then
    systemctl restart ${PERSIST_UNIT} || { echo "${PERSIST_UNIT} failed: $(journalctl -u ${PERSIST_UNIT} -n 5 --no-pager -o cat 2>/dev/null | tr '
' ' ')" >&2; return 1; }
  else
    systemctl stop ${PERSIST_UNIT} 2>/dev/null; systemctl reset-failed ${PERSIST_UNIT} 2>/dev/null; true
  fi
}
`;

export const HANDLER_CALL: Record<Handler, string> = { 'nginx-reload': 'dsrctl_nginx_reload', 'systemd-units': 'dsrctl_systemd_units' };

/** Steps that change only what is on disk: what survives a reboot, so what a boot-time revert undoes. */
const FILE_COMMANDS = new Set(['rm', 'rmdir', 'mkdir', 'ln', 'chown', 'chmod', 'touch', 'cp', 'mv']);
export function isFileStep(s: Step): boolean {
  if ('restore' in s || 'remove' in s || 'write' in s || 'backup' in s) return true;
  if ('run' in s) return FILE_COMMANDS.has(s.run[0]!) || (s.run[0] === 'systemctl' && (s.run[1] === 'enable' || s.run[1] === 'disable' || s.run.includes('enable') || s.run.includes('disable')));
  return s.files === true;
}

/**
 * The boot-time revert of a change (rollback.sh --boot): its file undo; after a reboot the runtime
 * state (routes, rules, sysctls, firewall, tc, processes) is gone anyway. systemctl only edits
 * links there (--no-reload: systemd is still starting).
 */
export function bootSteps(change: Change): Step[] {
  const steps = change.bootUndo ?? change.undo.filter(isFileStep);
  return steps.map((s) => ('run' in s && s.run[0] === 'systemctl' && !s.run.includes('--no-reload') ? { run: ['systemctl', '--no-reload', ...s.run.slice(1)] } : s));
}
