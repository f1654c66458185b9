import type { Inventory } from '../inventory/schema.js';
import type { Playbook } from '../playbook/load.js';
import type { HostSession, ConnectTarget } from '../ssh/types.js';
import type { HostFacts } from '../facts/types.js';
import type { HostPlan } from '../plan/types.js';
import type { HostTarget } from '../plan/desired.js';
import { sshConnector, type Connector } from './connector.js';
import { HostConnectionError, ExecTimeoutError } from '../ssh/errors.js';
import { factsDefinitions } from '../facts/script.js';
import type { FactsRequest } from '../facts/types.js';
import type { ExecResult } from '../ssh/types.js';
import { parseFacts } from '../facts/parse.js';
import { factsRequest } from '../plan/desired.js';
import { planHost } from '../plan/plan-host.js';
import { timed } from '../util/debug.js';
import { converse, inSubshell } from './conversation.js';
import { acquireLockScript, parseLockOutput, releaseLockScript, type LockState } from '../apply/lock.js';

/** Everything dsrctl knows about one host during a run. */
export interface HostState {
  target: HostTarget;
  ssh: ConnectTarget;
  session?: HostSession;
  facts?: HostFacts;
  plan?: HostPlan;
  /** the run lock, for commands that change hosts */
  lock?: LockState;
  /** how to reach the host (SSH, or a test's fake) */
  connect?: Connector;
  /** what the checks printed when they ran in the facts exec (speculatively: the plan decides whether they count) */
  checkOutput?: string;
  /**
   * apply's facts exec, still open and holding the lock: ends it, keeping the lock (changes
   * follow) or releasing it (a no-op). See factsExecScript.
   */
  open?: (keep: boolean) => Promise<ExecResult>;
}

export interface LockRequest {
  /** the holder line written into the lock */
  info: string;
  breakLock: boolean;
  /** rollback may take the lock of an unconfirmed run whose switch is armed: it undoes that run anyway */
  breakArmed?: boolean;
  /** apply: keep the facts exec open until the run knows whether it changes anything (factsExecScript) */
  converse?: { runId: string };
}

export interface FactsExecOptions {
  /** the host's check script, run after the facts in the same exec */
  checks?: string;
  /** how long those checks may take, on top of the facts' 30 s */
  checksTimeoutMs?: number;
  /** run the checks while the facts are read (the proxy's: one or two per upstream), see factsExecScript */
  checksAlongside?: boolean;
  /** the lock's line, the moment it arrives (the facts are still being read) */
  onLock?: (l: LockState) => void;
}

/** The line apply's facts exec prints when it waits for the run's decision. */
export const AWAIT_MARKER = '@@dsrctl-await';
/** What the run answers: changes follow (the lock stays), or nothing changes (the exit trap releases it). */
const KEEP = 'trap - EXIT HUP PIPE TERM\nexit 0\n';
const RELEASE = 'exit 0\n';

/**
 * One exec: the run lock first (its line streams back at once, so the upstreams need not wait
 * for the proxy's facts), then the facts, then the checks if asked.
 *
 * apply (`converse`) also holds the lock safely across its decision, in the same exec. After the
 * lock is taken, an EXIT trap releases it; the script prints AWAIT_MARKER and `sh -s` waits for
 * more script on stdin. The run answers KEEP (the trap is removed: changes follow, the lock stays
 * until the run's last exec, as before) or RELEASE (plain exit: the trap releases it). Why this
 * is safe:
 * - the lock is never released while this run may still change the host: changes only ever come
 *   in later execs, after KEEP; RELEASE is sent only when the whole run will change nothing (a
 *   no-op, or a run that stops before its first change);
 * - of two concurrent runs exactly one proceeds, as before: the lock is the same noclobber file,
 *   taken proxy first, and held from before the facts are read until the run's decision;
 * - a controller that dies, or loses the connection, before deciding closes the script's stdin
 *   (sshd closes it with the channel): sh ends and the trap releases the lock. That run changed
 *   nothing on the host, so nothing is left locked. (HUP, PIPE, TERM end the script the same way;
 *   only a KILL, e.g. the exec's own timeout, leaves the lock, exactly as it did before.)
 *   A controller cut off without a FIN keeps the lock until sshd drops the connection (its
 *   ClientAlive or TCP keepalive): no timer on the host may release it sooner, since the run may
 *   still be deciding and would then apply unlocked.
 * - a held lock ends the script before any fact is read: nothing waits.
 */
export function factsExecScript(req: FactsRequest, lock?: LockRequest, checks?: string, alongside = false): string {
  const defs = factsDefinitions(req);
  const sub = checks ? inSubshell(checks).trimEnd() : '';
  // Alongside: the checks start before the facts, in the background, into a private temporary
  // file that is printed after the facts (never interleaved with them); the checks mostly wait
  // on the network, and the proxy's facts exec is a run's longest. Without mktemp: after, as usual.
  const start = sub && alongside ? `if _dck=$(mktemp 2>/dev/null); then ${sub} >"$_dck" & _dckp=$!; else _dck=; fi\n` : '';
  const checkPart = !sub
    ? ''
    : alongside
      ? `if [ -n "$_dck" ]; then wait "$_dckp"; while IFS= read -r _l || [ -n "$_l" ]; do printf '%s\\n' "$_l"; done <"$_dck"; rm -f "$_dck"; _dck=; else ${sub}; fi\n`
      : `${sub}\n`;
  if (!lock) return `${defs}${start}dsrctl_facts </dev/null\n${checkPart}exit 0\n`;
  const take = acquireLockScript(lock.info, lock.breakLock, lock.breakArmed);
  if (!lock.converse) return `${defs}${take}\n${start}dsrctl_facts </dev/null\n${checkPart}exit 0\n`;
  return [
    `${defs}${take}`,
    'if [ "$lk" != acquired ]; then exit 0; fi',
    // no output but the last line: after a lost connection a write could only end it sooner
    // (a run cut off while its checks ran alongside also leaves no temporary file)
    `dsrctl_unlock() { ${releaseLockScript(lock.converse.runId)}; [ -z "\${_dck:-}" ] || rm -f "$_dck"; echo "@@dsrctl-lock released" 2>/dev/null; }`,
    'trap dsrctl_unlock EXIT',
    "trap 'exit 1' HUP PIPE TERM",
    `${start}dsrctl_facts </dev/null`,
    `${checkPart}echo "${AWAIT_MARKER}"`,
    // nothing after the marker: sh reads its next command from stdin, i.e. the run's answer
    '',
  ].join('\n');
}

/** An SSH error that means the connection is gone (or hung): worth one reconnect. */
export function isConnectionLoss(e: unknown): boolean {
  return e instanceof HostConnectionError || e instanceof ExecTimeoutError;
}

/**
 * Run `f` on the host's session; when the connection was lost, connect again once and retry.
 * For the steps that must happen after a failure (rollback, unlock): a dropped session must not
 * leave a host half-applied or locked if it can be reached again.
 */
export async function withSession<T>(h: HostState, f: (s: HostSession) => Promise<T>): Promise<T> {
  try {
    if (!h.session) throw new HostConnectionError(h.target.name, h.ssh.host, `${h.target.name}: not connected`, 'lost');
    return await f(h.session);
  } catch (e) {
    if (!isConnectionLoss(e)) throw e;
    await h.session?.close().catch(() => undefined);
    h.session = await timed(`${h.target.name} reconnect`, () => (h.connect ?? sshConnector)({ ...h.ssh, connectTimeoutMs: Math.min(h.ssh.connectTimeoutMs ?? 10_000, 10_000) }));
    return f(h.session);
  }
}

/** Shared: upstreams whose jump host is this host (`jump: proxy`) tunnel through this very connection. */
export async function connectHost(h: HostState): Promise<void> {
  h.session = await timed(`${h.target.name} connect`, () => (h.connect ?? sshConnector)(h.ssh, { share: true }));
}

/**
 * One exec (factsExecScript): for changing commands the run lock, the facts, and the checks when
 * asked. Resolves once the facts are in: with `lock.converse` the exec then stays open (h.open).
 * Undefined when apply's lock was held: nothing was read.
 */
export async function gatherFacts(h: HostState, inv: Inventory, pb: Playbook, lock?: LockRequest, opts: FactsExecOptions = {}): Promise<HostFacts | undefined> {
  const script = factsExecScript(factsRequest(inv, pb, h.target), lock, opts.checks, opts.checksAlongside);
  let streamed = '';
  let lockSeen = false;
  const onStdout = lock
    ? (t: string) => {
        if (lockSeen) return;
        streamed += t;
        const l = parseLockOutput(streamed.slice(0, streamed.lastIndexOf('\n') + 1));
        if (!l) return;
        lockSeen = true;
        h.lock = l;
        opts.onLock?.(l);
      }
    : undefined;
  const wait = lock?.converse ? { marker: AWAIT_MARKER, timeoutMs: 20_000 } : undefined;
  const conv = converse(h.session!, script, { timeoutMs: 30_000 + (opts.checksTimeoutMs ?? 0), ...(onStdout ? { onStdout } : {}), ...(wait ? { wait } : {}) });
  // timed twice: the whole exec (with wait: until the run decided), and until the facts are in
  void timed(`${h.target.name} facts exec${wait ? ' (until the run decided)' : ''}`, async () => {
    const c = await conv;
    return 'ended' in c ? c.ended : c.done;
  }).catch(() => undefined);
  const first = await timed(`${h.target.name} facts`, () => conv);
  let stdout: string;
  if ('ended' in first) {
    if (first.ended.code !== 0) throw new Error(`${h.target.name}: reading facts failed (exit ${first.ended.code}): ${first.ended.stderr.trim()}`);
    stdout = first.ended.stdout;
  } else {
    stdout = first.head;
    h.open = (keep) => {
      h.open = undefined;
      return first.answer(keep ? KEEP : RELEASE);
    };
  }
  if (lock) h.lock = parseLockOutput(stdout) ?? { state: 'held', holder: 'unknown (could not write the lock file; is the user root?)' };
  if (lock?.converse && h.lock?.state !== 'acquired') return undefined;
  h.facts = parseFacts(stdout);
  if (opts.checks) h.checkOutput = stdout;
  return h.facts;
}

/**
 * End apply's open facts execs: keep the locks (changes follow) or release them. Resolves to the
 * hosts whose exec failed (their lock state is then unknown; a released lock is marked released).
 */
export async function endFactsExecs(hosts: HostState[], keep: boolean): Promise<Map<string, Error>> {
  const failed = new Map<string, Error>();
  await Promise.all(
    hosts.map(async (h) => {
      if (!h.open) return;
      try {
        const r = await h.open(keep);
        if (!keep && r.stdout.includes('@@dsrctl-lock released')) h.lock = { state: 'released' };
      } catch (e) {
        failed.set(h.target.name, e as Error);
      }
    }),
  );
  return failed;
}

export function planFor(h: HostState, inv: Inventory, pb: Playbook): HostPlan {
  h.plan = planHost(inv, pb, h.target, h.facts!);
  return h.plan;
}

export async function closeAll(hosts: { session?: HostSession }[]): Promise<void> {
  await Promise.allSettled(hosts.map((h) => h.session?.close()));
}
