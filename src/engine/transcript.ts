import type { ConnectTarget, ExecOptions, ExecResult, HostSession } from '../ssh/types.js';
import type { Connector } from './connector.js';
import { HostConnectionError } from '../ssh/errors.js';
import { AWAIT_MARKER } from './hosts.js';
import { releaseLockScript } from '../apply/lock.js';

/**
 * Transcripts of runs: every exec a run made on every host, with what it printed. A recording
 * connector writes one while a real run goes (test/fixtures/runs/capture.mjs does this on the
 * lab); a replaying connector answers a run from one, so the engine's decisions (which hosts roll
 * back, in which order, what happens to locks, the exit code) are tested in milliseconds, and a
 * scenario changes one answer (dev2's apply fails) rather than building a failing host.
 */

/** What a script does, told from its content. */
export type ScriptKind = 'facts' | 'apply' | 'finish' | 'checks' | 'rollback' | 'pending' | 'release' | 'other';

export function classifyScript(script: string): ScriptKind {
  // before the checks: apply's and verify's facts execs run the checks too
  if (script.includes('dsrctl_facts() {')) return 'facts';
  if (script.includes('@@dsrctl-finished')) return 'finish';
  if (script.includes('@@dsrctl-applied')) return 'apply';
  if (script.includes('@@dsrctl-pending')) return 'pending';
  if (script.includes('@@dsrctl-nothing')) return 'rollback';
  if (script.includes('@@check ') || script.includes('@@probe')) return 'checks';
  if (script.trim() === releaseLockScript(/case \$_lk in 'run=([^ ']+) '\*\)/.exec(script)?.[1] ?? '')) return 'release';
  return 'other';
}

export interface TranscriptEntry {
  host: string;
  kind: ScriptKind;
  code: number | null;
  stdout: string;
  stderr: string;
}

export type Transcript = TranscriptEntry[];

/** Record every exec of a real connector into `into`. */
export function recordingConnector(base: Connector, into: Transcript): Connector {
  return async (target, opts) => {
    const s = await base(target, opts);
    return {
      name: s.name,
      target: s.target,
      get execCount() {
        return s.execCount;
      },
      async exec(script: string, o?: ExecOptions): Promise<ExecResult> {
        const r = await s.exec(script, o);
        into.push({ host: target.name, kind: classifyScript(script), code: r.code, stdout: r.stdout, stderr: r.stderr });
        return r;
      },
      close: () => s.close(),
    };
  };
}

/**
 * A recorded output told through ExecOptions as the host would: streamed, and for a conversation
 * (`then`) up to the marker, then the caller's answer awaited. Its lock line after the answer
 * follows the answer as the host's exit trap would: released unless the answer keeps the lock.
 */
async function converse(stdout: string, o: ExecOptions, ended: (kept: boolean) => void, answered: (answer: string) => void): Promise<string> {
  const at = o.then ? stdout.indexOf(`${o.then.marker}\n`) : -1;
  if (!o.then || at < 0) {
    o.onStdout?.(stdout);
    return stdout;
  }
  const head = stdout.slice(0, at + o.then.marker.length + 1);
  o.onStdout?.(head);
  const answer = await o.then.next(head).catch(() => 'exit 0\n');
  // only the facts exec's answer decides a lock (apply's is its checks, or nothing)
  if (o.then.marker !== AWAIT_MARKER) {
    answered(answer);
    o.onStdout?.(stdout.slice(head.length));
    return stdout;
  }
  const rest = stdout.slice(head.length).replace(/^@@dsrctl-lock released\n/m, '');
  const kept = answer.includes('trap - EXIT');
  ended(kept);
  const tail = kept ? rest : `${rest}@@dsrctl-lock released\n`;
  o.onStdout?.(tail);
  return head + tail;
}

/**
 * A change to one answer of a replay: return the entry to answer with (or an Error to throw, as
 * a lost connection would), or undefined to keep the recorded one.
 */
export type Scenario = (host: string, kind: ScriptKind, recorded: TranscriptEntry | undefined, script: string) => TranscriptEntry | Error | undefined;

/** What a replayed run asked, in order: host and kind of every exec. */
export interface ReplayLog {
  execs: { host: string; kind: ScriptKind }[];
  /** conversations (ExecOptions.then) as the run ended them: keeping the lock, or not */
  ended?: { host: string; kept: boolean }[];
  /** apply execs continued after their changes: with checks or not, and how many execs had started by then */
  continued?: { host: string; checks: boolean; at: number }[];
}

/**
 * Answer each exec with the next recorded entry of the same host and kind (the last one again
 * when they run out). `unreachable`: hosts whose connection fails.
 */
export function replayConnector(transcript: Transcript, opts: { scenario?: Scenario; unreachable?: string[]; log?: ReplayLog } = {}): Connector {
  const used = new Map<string, number>();
  return async (target: ConnectTarget) => {
    const where = `${target.user}@${target.host}:${target.port}`;
    if (opts.unreachable?.includes(target.name)) throw new HostConnectionError(target.name, where, `${target.name} (${where}): connect ETIMEDOUT`, 'connect');
    let count = 0;
    return {
      name: target.name,
      target: where,
      get execCount() {
        return count;
      },
      async exec(script: string, o: ExecOptions = {}): Promise<ExecResult> {
        count++;
        const kind = classifyScript(script);
        opts.log?.execs.push({ host: target.name, kind });
        const key = `${target.name} ${kind}`;
        const all = transcript.filter((e) => e.host === target.name && e.kind === kind);
        const i = used.get(key) ?? 0;
        used.set(key, i + 1);
        // releasing a lock prints nothing: a run that never needed to has none recorded
        const recorded = all[Math.min(i, all.length - 1)] ?? (kind === 'release' ? { host: target.name, kind, code: 0, stdout: '', stderr: '' } : undefined);
        const answer = opts.scenario?.(target.name, kind, recorded, script) ?? recorded;
        if (answer instanceof Error) throw answer;
        if (!answer) throw new Error(`no recorded ${kind} exec for ${target.name}`);
        return { code: answer.code, stdout: await converse(answer.stdout, o, (kept) => opts.log?.ended?.push({ host: target.name, kept }), (a) => opts.log?.continued?.push({ host: target.name, checks: a.includes('@@check'), at: opts.log.execs.length })), stderr: answer.stderr };
      },
      async close() {},
    };
  };
}
