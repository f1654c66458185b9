import { eventRunner, type StepRunner } from '../engine/steps.js';
import { escapeControls, safeError } from './terminal.js';

export interface GlobalOptions {
  json?: boolean;
  yes?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  breakLock?: boolean;
  /** --concurrency: hosts at work at once */
  concurrency?: number;
}

/**
 * listr2 options for every task tree: progress goes to stderr (stdout holds only results, so
 * `dsrctl plan > file` holds the plan alone), and listr2 registers no signal listeners (its SIGINT
 * handler exits 127 at once, which left hosts locked; src/cli/interrupt.ts decides instead).
 */
function listrOptions({ ListrLogger, ProcessOutput }: typeof import('listr2')) {
  return {
    renderer: process.stderr.isTTY ? ('default' as const) : ('simple' as const),
    registerSignalListeners: false,
    rendererOptions: { logger: new ListrLogger({ processOutput: new ProcessOutput(process.stderr, process.stderr) }) },
  } as const;
}

/**
 * The engine's steps as a listr2 task tree on stderr; host text in titles and errors made harmless.
 * With --json or --quiet nothing is drawn: the library's plain runner, and listr2 is never loaded
 * (a no-op run in automation is mostly start-up).
 */
export function listrRunner(opts: GlobalOptions): StepRunner {
  if (opts.json || opts.quiet) return eventRunner();
  return async (steps, { concurrent, stopOnError }) => {
    const listr2 = await import('listr2');
    await new listr2.Listr(
      steps.map((s) => ({
        title: escapeControls(s.title),
        task: async (_ctx: unknown, task: { title: string }) => {
          try {
            await s.run((t) => (task.title = escapeControls(t)));
          } catch (e) {
            // a long report (a port conflict) is printed once, below the task list
            const lines = (e as Error).message?.split('\n');
            throw safeError(lines && lines.length > 1 ? new Error(`${lines[0]} (see below)`) : e);
          }
        },
      })),
      { concurrent, exitOnError: !!stopOnError, collectErrors: false, ...listrOptions(listr2) },
    )
      .run()
      .catch(() => undefined); // the step's own code recorded what failed
  };
}
