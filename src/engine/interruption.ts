/**
 * How a run learns that it is being interrupted. The caller watches the signals (the CLI:
 * src/cli/interrupt.ts); the engine looks at `signal` at every safe point and says what it is busy
 * with, so a second Ctrl-C can be answered with it.
 */
export interface Interruption {
  readonly signal: string | undefined;
  busy(what: string): void;
}

/** Thrown by a `confirm` hook whose question was interrupted (Ctrl-C at the prompt). */
export class Interrupted extends Error {
  constructor(readonly signal = 'SIGINT') {
    super(`interrupted (${signal})`);
    this.name = 'Interrupted';
  }
}
