import type { Inventory } from '../inventory/schema.js';
import type { Playbook } from '../playbook/load.js';
import type { HostSession, ConnectTarget } from '../ssh/types.js';
import type { HostFacts } from '../facts/types.js';
import type { HostPlan } from '../plan/types.js';
import type { HostTarget } from '../plan/desired.js';
import { sshConnector, type Connector } from './connector.js';
import { HostConnectionError, ExecTimeoutError } from '../ssh/errors.js';
import { buildFactsScript } from '../facts/script.js';
import { parseFacts } from '../facts/parse.js';
import { factsRequest } from '../plan/desired.js';
import { planHost } from '../plan/plan-host.js';
import { timed } from '../util/debug.js';
import { acquireLockScript, parseLockOutput, type LockState } from '../apply/lock.js';

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
}

export interface LockRequest {
  /** the holder line written into the lock */
  info: string;
  breakLock: boolean;
  /** rollback may take the lock of an unconfirmed run whose switch is armed: it undoes that run anyway */
  breakArmed?: boolean;
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

/** One exec: the facts, and for changing commands the run lock in the same round trip. */
export async function gatherFacts(h: HostState, inv: Inventory, pb: Playbook, lock?: LockRequest): Promise<HostFacts> {
  const epilogue = lock ? acquireLockScript(lock.info, lock.breakLock, lock.breakArmed) : '';
  const res = await timed(`${h.target.name} facts`, () => h.session!.exec(buildFactsScript(factsRequest(inv, pb, h.target), epilogue), { timeoutMs: 30_000 }));
  if (res.code !== 0) throw new Error(`${h.target.name}: reading facts failed (exit ${res.code}): ${res.stderr.trim()}`);
  if (lock) h.lock = parseLockOutput(res.stdout) ?? { state: 'held', holder: 'unknown (could not write the lock file; is the user root?)' };
  h.facts = parseFacts(res.stdout);
  return h.facts;
}

export function planFor(h: HostState, inv: Inventory, pb: Playbook): HostPlan {
  h.plan = planHost(inv, pb, h.target, h.facts!);
  return h.plan;
}

export async function closeAll(hosts: { session?: HostSession }[]): Promise<void> {
  await Promise.allSettled(hosts.map((h) => h.session?.close()));
}
