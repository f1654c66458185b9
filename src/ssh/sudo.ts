/**
 * sudo (`target.sudo`): the command an exec runs as root, the password handshake, and why sudo
 * refused. Without a sudo password scripts run as `sudo -n sh -s`; with one, as `sudo -S` with a
 * prompt/ready handshake so that the password is written only when sudo asks for it and the
 * script only once sudo has started sh. The password never appears in output or messages.
 */
import { SudoError, hostLabel } from './errors.js';

/** How one exec runs as root through sudo. */
export interface SudoSpec {
  user: string;
  /** given on stdin when sudo prompts for it (`sudo -S`); without it `sudo -n` */
  password?: string;
}

/**
 * The prompt sudo -S prints (on stderr) when it wants the password, and the marker the root shell
 * prints once sudo has started it. Printable ASCII only: they go through the remote login shell.
 */
const SUDO_PROMPT = '[dsrctl-sudo-password]';
const SUDO_READY = '[dsrctl-sudo-ready]';
/**
 * `sudo -n`: never prompts; fails at once with "a password is required" when sudo wants one.
 * `exec`: sudo replaces the login shell, so it leads the session's process group and the root
 * `sh -s` (its child) can report that group for a timeout kill (PGID_PREAMBLE).
 */
export const SUDO_N_COMMAND = 'exec sudo -n sh -s';
/**
 * `sudo -S`: the password comes from stdin, ahead of the script. sh -c prints the ready marker
 * and execs `sh -s`, which then reads the script from the same stdin.
 */
export const SUDO_S_COMMAND = `exec sudo -S -p '${SUDO_PROMPT}' sh -c 'echo "${SUDO_READY}" >&2; exec sh -s'`;

/** The command of an exec request; the script follows on stdin. */
export function execCommand(sudo: SudoSpec | undefined): string {
  return !sudo ? 'sh -s' : sudo.password !== undefined ? SUDO_S_COMMAND : SUDO_N_COMMAND;
}

/**
 * A one-line command that reads no stdin, run as root when the scripts are. With a password, it
 * is written to stdin up front: unread, it goes nowhere.
 */
export function asRoot(command: string, sudo: SudoSpec | undefined): { command: string; stdin?: string } {
  if (!sudo) return { command };
  if (sudo.password === undefined) return { command: `sudo -n sh -c '${command}'` };
  return { command: `sudo -S -p '' sh -c '${command}'`, stdin: `${sudo.password}\n` };
}

function countOf(haystack: string, needle: string): number {
  let n = 0;
  for (let i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + needle.length)) n++;
  return n;
}

/**
 * The `sudo -S` handshake, fed the exec's stderr so far: the first prompt gets the password,
 * another one means sudo rejected it (give up: EOF); the script goes once the root shell is ready.
 */
export class SudoHandshake {
  prompts = 0;
  ready = false;

  constructor(private readonly password: string) {}

  /** Answers sudo on `ch`; true (once) when the root shell is ready for the script. */
  advance(stderrSoFar: string, ch: { write(s: string): unknown; end(): unknown }): boolean {
    if (this.ready) return false;
    const n = countOf(stderrSoFar, SUDO_PROMPT);
    if (n > this.prompts) {
      this.prompts = n;
      if (n === 1) ch.write(`${this.password}\n`);
      else ch.end();
    }
    if (stderrSoFar.includes(SUDO_READY + '\n') && this.prompts <= 1) {
      this.ready = true;
      return true;
    }
    return false;
  }
}

/** Remove the sudo handshake (lecture, prompts, ready marker) from a -S exec's stderr. */
export function stripSudoHandshake(stderr: string): string {
  const i = stderr.indexOf(SUDO_READY + '\n');
  const rest = i >= 0 ? stderr.slice(i + SUDO_READY.length + 1) : stderr;
  return rest.split(SUDO_PROMPT).join('');
}

export function hidePassword(text: string, password: string | undefined): string {
  return password ? text.split(password).join('***') : text;
}

/**
 * Why sudo refused to start the script, from the exec's stderr; undefined when it is not sudo's
 * doing. Only for an exec whose script never started (no ready marker / pgid marker).
 */
export function sudoRefusal(
  name: string,
  target: string,
  sudo: SudoSpec,
  code: number | null,
  stderr: string,
  promptedTwice: boolean,
): SudoError | undefined {
  const text = hidePassword(stderr, sudo.password).split(SUDO_PROMPT).join('');
  const f = sudoFailure(hostLabel(name, target), sudo.user, code, text, sudo.password !== undefined, promptedTwice);
  return f && new SudoError(name, target, f.message, f.reason);
}

function sudoFailure(
  label: string,
  user: string,
  code: number | null,
  stderr: string,
  withPassword: boolean,
  promptedTwice: boolean,
): { message: string; reason: SudoError['reason'] } | undefined {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const sudoLines = lines.filter((l) => l.startsWith('sudo:') || /\bsudoers\b/.test(l) || /incorrect password/.test(l));
  const said = sudoLines.length ? `"${sudoLines.slice(0, 3).join(' / ')}"` : `exit ${code}`;
  const nothing = 'nothing was run';
  const rule = `"${user} ALL=(root) NOPASSWD: ALL" in /etc/sudoers.d/dsrctl`;
  if (code === 127 && /sudo: (command )?not found|sudo: No such file/i.test(stderr))
    return { reason: 'not-installed', message: `${label}: sudo is not installed (ssh.sudo is true); install it, or connect as root with sudo: false; ${nothing}` };
  if (promptedTwice || /incorrect password|Sorry, try again/i.test(stderr))
    return { reason: 'wrong-password', message: `${label}: sudo did not accept the sudo_password given for ${user} (${said}); ${nothing}. Check ssh.sudo_password (and the .env variable it comes from)` };
  if (/must have a tty|requiretty/i.test(stderr))
    return { reason: 'no-tty', message: `${label}: sudo requires a terminal for ${user} (${said}); ${nothing}. Fix: "Defaults:${user} !requiretty" in /etc/sudoers.d/dsrctl` };
  if (/a password is required|a terminal is required|askpass/i.test(stderr))
    return {
      reason: 'password-required',
      message:
        `${label}: sudo asks ${user} for a password (${said}); ${nothing}. ` +
        `Fix: let ${user} run commands as root without one (a NOPASSWD rule, e.g. ${rule}), ` +
        'or give sudo\'s password as ssh.sudo_password (from .env, e.g. sudo_password: ${DSRCTL_SUDO_PASSWORD})',
    };
  if (/not in the sudoers file|not allowed to (execute|run)|may not run sudo/i.test(stderr))
    return { reason: 'not-allowed', message: `${label}: ${user} may not run sh as root through sudo (${said}); ${nothing}. Fix: a sudoers rule for ${user}, e.g. ${rule}` };
  if (sudoLines.length || withPassword)
    return { reason: 'other', message: `${label}: sudo failed before the script started (exit ${code}${sudoLines.length ? `: ${said}` : ''}); ${nothing}` };
  return undefined;
}
