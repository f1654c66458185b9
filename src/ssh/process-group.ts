/**
 * Stopping a timed-out command with everything it spawned: the script reports its remote process
 * group (PGID_PREAMBLE), the channel is sent KILL and closed, and the group is killed through a
 * second exec, because OpenSSH refuses "signal" requests for root sessions ("session signalling
 * requires privilege separation") and does not kill the command when its channel is closed.
 */
import type { Client, ClientChannel } from 'ssh2';
import { asRoot, type SudoSpec } from './sudo.js';

/** Upper bound for the exec that kills a timed-out command's process group. */
const KILL_EXEC_TIMEOUT_MS = 2_500;

/**
 * Prepended to every script, on the same line so the script's line numbers in
 * shell error messages are unchanged. On Linux it reports the command's process
 * group on stderr (as \x1edsrctl-pgid:N\x1e, stripped again from the result)
 * so a timed-out command can be killed with everything it spawned. Only
 * reported when that group belongs to this command: sh -s leads it (sshd runs
 * each session under setsid) or its parent, the login shell, does. Never a
 * group led by sshd itself. Silent where /proc is missing.
 */
export const PGID_PREAMBLE =
  'if read -r __dsr_a __dsr_b __dsr_c __dsr_d __dsr_g __dsr_e 2>/dev/null </proc/$$/stat; then ' +
  'if [ "$__dsr_g" = "$$" ] || { [ "$__dsr_g" = "$PPID" ] && read -r __dsr_b 2>/dev/null </proc/$PPID/comm && ' +
  'case $__dsr_b in sshd*|dropbear*) false;; *) true;; esac; }; then ' +
  "printf '\\036dsrctl-pgid:%s\\036\\n' \"$__dsr_g\" >&2; fi; fi; " +
  'unset __dsr_a __dsr_b __dsr_c __dsr_d __dsr_g __dsr_e; ';

const PGID_MARKER_RE = /\x1edsrctl-pgid:(\d+)\x1e\n/;

/** The process group the script reported, from the start of its stderr. */
export function findPgid(stderr: Buffer[]): number | undefined {
  const head = Buffer.concat(stderr).subarray(0, 8192).toString('latin1');
  const m = PGID_MARKER_RE.exec(head);
  if (!m) return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 1 ? n : undefined;
}

export function stripPgidMarker(stderr: string): string {
  return stderr.replace(PGID_MARKER_RE, '');
}

/** Ask the server to KILL the command (where it honours signals) and close the channel. */
export function stopChannel(ch: ClientChannel): void {
  sendSignal(ch, 'KILL');
  try {
    ch.close();
  } catch {
    /* ignore */
  }
}

/**
 * Send an SSH "signal" channel request (honoured by OpenSSH sshd >= 7.9,
 * ignored by older servers). ssh2's ClientChannel.signal() silently does
 * nothing once our side of the channel is ended, which is always the case
 * here (the script is written and stdin closed up front), so fall back to the
 * protocol object while the channel is still open in the 'eof' state.
 */
function sendSignal(ch: ClientChannel, name: string): void {
  try {
    if (ch.writable) {
      ch.signal(name);
      return;
    }
    const inner = ch as unknown as {
      outgoing?: { id?: number; state?: string };
      _client?: { _protocol?: { signal?: (id: number, sig: string) => void } };
    };
    const out = inner.outgoing;
    const proto = inner._client?._protocol;
    if (
      out &&
      typeof out.id === 'number' &&
      (out.state === 'open' || out.state === 'eof') &&
      typeof proto?.signal === 'function'
    ) {
      proto.signal(out.id, name);
    }
  } catch {
    /* best effort */
  }
}

/**
 * Kill process group `pgid` through a separate exec on `client`, as root when the command ran
 * as root. Best effort, never rejects; resolves when that exec is done or after a bound.
 */
export function killProcessGroup(client: Client, pgid: number, sudo?: SudoSpec): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, KILL_EXEC_TIMEOUT_MS);
    let finished = false;
    function done() {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      resolve();
    }
    const { command, stdin } = asRoot(`kill -s KILL -- -${pgid} 2>/dev/null; exit 0`, sudo);
    try {
      client.exec(command, (err, ch) => {
        if (err) return done();
        ch.on('error', () => {});
        ch.stderr.on('error', () => {});
        ch.resume();
        ch.stderr.resume();
        ch.on('close', done);
        ch.end(stdin);
      });
    } catch {
      done();
    }
  });
}
