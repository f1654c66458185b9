/**
 * How a run reports progress. The engine splits its work into steps (per host: connect, read
 * facts, plan; a rollback group) and hands them to a StepRunner; the CLI's runner draws them as a
 * listr2 task tree, the library's runs them quietly and turns them into events.
 */
export interface Step {
  title: string;
  /** the work; `update` changes the step's title as it goes ("dev1: read facts") */
  run(update: (title: string) => void): Promise<void>;
}

export interface StepOptions {
  /** steps run at once (every host in parallel) or one after another (rollback groups) */
  concurrent: boolean;
  /** one after another, and a failed step stops the ones after it (apply: no upstream before the proxy) */
  stopOnError?: boolean;
}

/** Runs steps; a step that throws is failed, the others go on (unless stopOnError). Never rejects. */
export type StepRunner = (steps: Step[], opts: StepOptions) => Promise<void>;

export type ProgressEvent =
  | { type: 'step-start'; title: string }
  | { type: 'step-update'; title: string }
  | { type: 'step-done'; title: string }
  | { type: 'step-failed'; title: string; error: string };

/** The library's runner: plain promises, progress as events (or nothing). */
export function eventRunner(onEvent?: (e: ProgressEvent) => void): StepRunner {
  const emit = onEvent ?? (() => undefined);
  return async (steps, { concurrent, stopOnError }) => {
    const one = async (s: Step): Promise<boolean> => {
      let title = s.title;
      emit({ type: 'step-start', title });
      try {
        await s.run((t) => emit({ type: 'step-update', title: (title = t) }));
        emit({ type: 'step-done', title });
        return true;
      } catch (e) {
        emit({ type: 'step-failed', title, error: (e as Error).message });
        return false;
      }
    };
    if (concurrent) await Promise.all(steps.map(one));
    else for (const s of steps) if (!(await one(s)) && stopOnError) break;
  };
}
