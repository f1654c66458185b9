import type { ExecOptions, ExecResult, HostSession } from '../ssh/types.js';
import type { Connector } from './connector.js';

/**
 * At most `n` hosts at work at once: connecting, or running an exec. A host waiting for its turn
 * holds nothing but its place in the queue, and its connect or exec timeout only starts with its
 * turn, so a run over hundreds of hosts neither times out in the queue nor starts them all at
 * once. A conversation (ExecOptions.then) gives its turn back when the host waits for the caller:
 * a run's facts execs can all wait for its decision with any `n`.
 */
export const DEFAULT_CONCURRENCY = 64;

export class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`concurrency must be a whole number of at least 1, not ${size}`);
    this.free = size;
  }

  async take(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
}

/** `base`, with its connects and every exec of its sessions taking turns in `slots`. */
export function limitedConnector(base: Connector, slots: Slots): Connector {
  return async (target, opts) => {
    const done = await slots.take();
    let s: HostSession;
    try {
      s = await base(target, opts);
    } finally {
      done();
    }
    return {
      name: s.name,
      target: s.target,
      get execCount() {
        return s.execCount;
      },
      async exec(script: string, o: ExecOptions = {}): Promise<ExecResult> {
        const give = await slots.take();
        const then = o.then;
        try {
          return await s.exec(script, then ? { ...o, then: { ...then, next: (t) => (give(), then.next(t)) } } : o);
        } finally {
          give();
        }
      },
      close: () => s.close(),
    };
  };
}
