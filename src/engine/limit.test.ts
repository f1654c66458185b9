import { describe, expect, it } from 'vitest';
import { limitedConnector, Slots } from './limit.js';
import type { Connector } from './connector.js';
import type { ExecOptions } from '../ssh/types.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

/** A connector whose hosts record when their connects and execs run. */
function fakeHosts(log: string[], active: { now: number; max: number }): Connector {
  return async (t) => {
    active.now++;
    active.max = Math.max(active.max, active.now);
    await tick();
    active.now--;
    log.push(`${t.name} connected`);
    return {
      name: t.name,
      target: t.host,
      execCount: 0,
      async exec(script: string, o: ExecOptions = {}) {
        active.now++;
        active.max = Math.max(active.max, active.now);
        log.push(`${t.name} ${script} start`);
        await tick();
        let out = `${script}\n`;
        if (o.then) {
          active.now--;
          out += await o.then.next('@@wait\n');
          active.now++;
        }
        active.now--;
        log.push(`${t.name} ${script} end`);
        return { code: 0, stdout: out, stderr: '' };
      },
      close: async () => undefined,
    };
  };
}

const target = (name: string) => ({ name, host: `${name}.example`, port: 22, user: 'root', knownHosts: '/dev/null' });

describe('bounded concurrency', () => {
  it('refuses a size that is not a whole number of at least 1', () => {
    expect(() => new Slots(0)).toThrow(/at least 1/);
    expect(() => new Slots(1.5)).toThrow(/whole number/);
  });

  it('at most n hosts connect or run an exec at once, however many there are', async () => {
    const log: string[] = [];
    const active = { now: 0, max: 0 };
    const connect = limitedConnector(fakeHosts(log, active), new Slots(3));
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const s = await connect(target(`h${i}`));
        await s.exec('facts');
        await s.exec('checks');
      }),
    );
    expect(active.max).toBe(3);
    expect(log.filter((l) => l.endsWith('checks end'))).toHaveLength(20);
  });

  it('a conversation gives its turn back while it waits for the run: every host can wait at once with n = 1', async () => {
    const log: string[] = [];
    const active = { now: 0, max: 0 };
    const connect = limitedConnector(fakeHosts(log, active), new Slots(1));
    let decide: (s: string) => void = () => undefined;
    const decision = new Promise<string>((r) => (decide = r));
    let waiting = 0;
    const runs = ['a', 'b', 'c'].map(async (n) => {
      const s = await connect(target(n));
      return s.exec('facts', { then: { marker: '@@wait', timeoutMs: 1000, next: () => (waiting++, decision) } });
    });
    while (waiting < 3) await tick();
    decide('exit 0\n');
    const res = await Promise.all(runs);
    expect(res.map((r) => r.stdout)).toEqual(['facts\nexit 0\n', 'facts\nexit 0\n', 'facts\nexit 0\n']);
    expect(active.max).toBe(1);
  });
});
