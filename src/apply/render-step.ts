import { quote } from 'shell-quote';
import type { Handler, Step } from '../plan/types.js';

/** One step as one shell command line. Every value is quoted; no user text is ever interpreted by the shell. */
export function renderStep(step: Step, run: string): string {
  if ('run' in step) return quote(step.run);
  if ('backup' in step) return `cp -p -- ${quote([step.backup.path, `${run}/files/${step.backup.key}`])}`;
  if ('restore' in step) return `cp -p -- ${quote([`${run}/files/${step.restore.key}`, step.restore.path])}`;
  if ('write' in step) {
    const b64 = Buffer.from(step.write.content, 'utf8').toString('base64');
    // truncate in place: an existing file keeps its owner and mode
    return `printf '%s' ${quote([b64])} | base64 -d > ${quote([step.write.path])}`;
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
  if [ -d /run/systemd/system ] && systemctl is-active --quiet nginx 2>/dev/null; then
    systemctl reload nginx; return $?
  fi
  pidf=$(nginx -V 2>&1 | sed -n 's/.*--pid-path=\([^ ]*\).*/\1/p'); [ -n "$pidf" ] || pidf=/run/nginx.pid
  master=$(cat "$pidf" 2>/dev/null) || { echo "nginx is not running (no $pidf)" >&2; return 1; }
  old=$(ps -o pid= --ppid "$master" 2>/dev/null)
  nginx -s reload || return 1
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

export const HANDLER_CALL: Record<Handler, string> = { 'nginx-reload': 'dsrctl_nginx_reload' };
