/**
 * Ctrl-C, SIGTERM and a closed terminal (SIGHUP) during a command that changes hosts.
 *
 * Node's default for these signals is to die at once, which left every host locked (and listr2's
 * own listener exits 127). Instead the command is told, and decides at its next safe point:
 * before any change, it releases its locks and exits 130; once changes have started it rolls
 * back as a failed verification would (the dead-man's switch stays the backstop). A third signal
 * gives up waiting and exits at once: the hosts' switches revert what they must.
 */
export interface Interruption {
  /** the first signal received, if any */
  readonly signal: NodeJS.Signals | undefined;
  /** aborted at the first signal: pass it to prompts so a question ends at once */
  readonly abort: AbortSignal;
  /** what to print when a second signal arrives while the command finishes up */
  busy(message: string): void;
  /** remove the listeners (the command is over) */
  dispose(): void;
}

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export function watchInterruptions(say: (line: string) => void = (l) => process.stderr.write(l + '\n')): Interruption {
  const controller = new AbortController();
  let first: NodeJS.Signals | undefined;
  let count = 0;
  let busyMessage = 'finishing up';
  const onSignal = (sig: NodeJS.Signals) => {
    count++;
    if (sig === 'SIGHUP') {
      // the terminal is gone: writes to it would fail with EIO and must not crash the cleanup
      process.stdout.on('error', () => undefined);
      process.stderr.on('error', () => undefined);
    }
    if (!first) {
      first = sig;
      controller.abort(new Error(`interrupted (${sig})`));
      say(`\n${sig === 'SIGINT' ? 'Ctrl-C' : sig}: stopping safely (${busyMessage}); press Ctrl-C twice more to quit at once.`);
      return;
    }
    if (count >= 3) {
      say(`${sig}: quitting now; a host that changed reverts by itself when its dead-man's switch fires.`);
      process.exit(130);
    }
    say(`${sig}: still ${busyMessage}; once more quits at once.`);
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  return {
    get signal() {
      return first;
    },
    abort: controller.signal,
    busy(message: string) {
      busyMessage = message;
    },
    dispose() {
      for (const s of SIGNALS) process.off(s, onSignal);
    },
  };
}

/** True for the error a prompt throws when Ctrl-C ends it (inquirer's ExitPromptError / AbortPromptError). */
export function isPromptInterrupt(e: unknown): boolean {
  const name = (e as Error | undefined)?.name;
  return name === 'ExitPromptError' || name === 'AbortPromptError';
}
