import type { ExecResult, HostSession } from '../ssh/types.js';

/** How an exec that may wait at a marker went: it ended, or it waits for the rest of its script. */
export type Conversation =
  | { ended: ExecResult }
  | {
      /** everything printed up to and including the marker line */
      head: string;
      /** send the rest of the script; resolves when the exec ends (its whole output) */
      answer(more: string): Promise<ExecResult>;
      /** the exec's end, whoever answers */
      done: Promise<ExecResult>;
    };

/**
 * Run `script` in one exec. With `wait`, a script that prints `wait.marker` on a line of its own
 * stops there (`sh -s` reads its next command from stdin) and this resolves at once, while the
 * host waits up to `wait.timeoutMs` for `answer`. A script that ends without the marker resolves
 * as an exec does. An exec that fails after the marker fails the `answer` promise.
 */
export async function converse(
  session: HostSession,
  script: string,
  opts: { timeoutMs: number; onStdout?: (text: string) => void; wait?: { marker: string; timeoutMs: number } },
): Promise<Conversation> {
  let send: (more: string) => void = () => undefined;
  const more = new Promise<string>((r) => (send = r));
  let atMarker: (out: string) => void = () => undefined;
  const waiting = new Promise<string>((r) => (atMarker = r));
  const then = opts.wait ? { marker: opts.wait.marker, timeoutMs: opts.wait.timeoutMs, next: (out: string) => (atMarker(out), more) } : undefined;
  const run = session.exec(script, { timeoutMs: opts.timeoutMs, ...(opts.onStdout ? { onStdout: opts.onStdout } : {}), ...(then ? { then } : {}) });
  run.catch(() => undefined); // once at the marker, whoever answers sees the exec's failure
  const first = await Promise.race([run.then((r) => ({ r })), waiting.then((out) => ({ out }))]);
  if ('r' in first) return { ended: first.r };
  return {
    head: first.out,
    answer: (text) => {
      send(text);
      return run;
    },
    done: run,
  };
}

/** A check script as part of a larger one: in a subshell, so its `set -u` and background jobs stay its own, reading nothing of the script's stdin. */
export const inSubshell = (script: string) => `(\n${script}\n) </dev/null\n`;
