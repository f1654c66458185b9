import { quote } from 'shell-quote';
import { hostname } from 'node:os';
import { STATE_DIR } from './paths.js';

export const LOCK_FILE = `${STATE_DIR}/lock`;

export interface LockInfo {
  run: string;
  command: string;
  agent: string;
  pid: string;
  time: string;
}

export function lockInfo(runId: string, command: string): string {
  return `run=${runId} command=${command} agent=${hostname()} pid=${process.pid} time=${new Date().toISOString()}`;
}

/** `key=value key=value` lines, as the lock and the switch's `reverted` marker are written. */
export function parseLockInfo(text: string): Partial<LockInfo> {
  return Object.fromEntries(text.trim().split(/\s+/).map((kv) => kv.split('=', 2) as [string, string]));
}

export function describeHolder(text: string): string {
  const l = parseLockInfo(text);
  return `run ${l.run ?? '?'} (dsrctl ${l.command ?? '?'} on ${l.agent ?? '?'}, pid ${l.pid ?? '?'}, since ${l.time ?? '?'})`;
}

/**
 * Take the host's lock atomically (noclobber create), appended to the facts exec so it costs no
 * round trip. Prints `@@dsrctl-lock acquired` or `@@dsrctl-lock held <base64 holder>`.
 */
export function acquireLockScript(info: string, breakLock: boolean, breakArmed = false): string {
  return [
    // made private from the start (the facts exec runs under the login's umask); the test first:
    // this runs on every host of every run, and the directory is almost always there
    `[ -d ${STATE_DIR} ] || (umask 077 && mkdir -p ${STATE_DIR}) 2>/dev/null`,
    // a lock whose run applied changes and still has its switch armed is not dead: that run's
    // changes are unconfirmed and will revert by themselves; breaking it would let a new run build on them
    breakLock
      ? [
          `if [ -f ${LOCK_FILE} ]; then`,
          `  lr=$(sed -n 's/^run=\\([^ ]*\\) .*/\\1/p' ${LOCK_FILE}); lrd=${STATE_DIR}/runs/$lr`,
          `  if ${breakArmed ? 'false' : 'true'} && [ -n "$lr" ] && [ -f "$lrd/switch" ] && [ ! -d "$lrd/claimed" ] && case "$(cat "$lrd/status" 2>/dev/null)" in applying|applied) true ;; *) false ;; esac; then`,
          `    echo "@@dsrctl-lock armed $(base64 -w0 < ${LOCK_FILE})"`,
          `  else echo "@@dsrctl-lock broke $(base64 -w0 < ${LOCK_FILE})"; rm -f ${LOCK_FILE}; fi`,
          'fi',
        ].join('\n')
      : '',
    // lk: what the rest of the exec goes on with
    `if ( set -C; umask 077; printf '%s\\n' ${quote([info])} > ${LOCK_FILE} ) 2>/dev/null; then lk=acquired; echo "@@dsrctl-lock acquired";`,
    `else lk=held; echo "@@dsrctl-lock held $(base64 -w0 < ${LOCK_FILE} 2>/dev/null)"; fi`,
  ].join('\n');
}

/** Remove the lock only when this run holds it (its first line starts `run=<id> `; read by the shell itself, no grep). */
export function releaseLockScript(runId: string): string {
  return `_lk=; { IFS= read -r _lk || :; } 2>/dev/null < ${LOCK_FILE}; case $_lk in ${quote([`run=${runId} `])}*) rm -f ${LOCK_FILE} ;; esac`;
}

export type LockState = { state: 'acquired'; broke?: string } | { state: 'held'; holder: string; armed?: boolean } | { state: 'released' };

export function parseLockOutput(stdout: string): LockState | undefined {
  let broke: string | undefined;
  let armed = false;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('@@dsrctl-lock armed ')) armed = true;
    if (line.startsWith('@@dsrctl-lock broke ')) broke = Buffer.from(line.slice(20), 'base64').toString('utf8');
    if (line === '@@dsrctl-lock acquired') return { state: 'acquired', broke };
    if (line.startsWith('@@dsrctl-lock held')) return { state: 'held', holder: Buffer.from(line.slice(19).trim(), 'base64').toString('utf8'), armed };
  }
  return undefined;
}

/**
 * True when the holder is a dsrctl process of this machine that no longer exists. A holder from
 * another machine, or whose pid is alive (even if reused), is never called dead.
 */
export function holderIsDeadHere(holder: string, here = hostname(), alive = pidAlive): boolean {
  const l = parseLockInfo(holder);
  if (l.agent !== here || !l.pid || !/^\d+$/.test(l.pid)) return false;
  const pid = Number(l.pid);
  // beyond the largest pid Linux hands out (pid_max is at most 2^22): no process can have it
  return pid > 4194304 || !alive(pid);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
