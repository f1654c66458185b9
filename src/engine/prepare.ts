import type { Inventory } from '../inventory/schema.js';
import { loadInventory } from '../inventory/load.js';
import { loadPlaybook, type Playbook } from '../playbook/load.js';
import { desiredHosts } from '../plan/desired.js';
import { inventoryTargets, probeTarget } from '../ssh/targets.js';
import { connectHost, gatherFacts, planFor, type HostState, type LockRequest } from './hosts.js';
import { describeHolder, holderIsDeadHere, type LockState } from '../apply/lock.js';
import { PlanError } from '../resources/types.js';
import { EXIT } from '../util/errors.js';
import { sshConnector, type Connector } from './connector.js';
import { checkLocalFiles } from '../ssh/local-files.js';
import type { HostSession } from '../ssh/types.js';
import type { StepRunner } from './steps.js';
import { limitedConnector, Slots, DEFAULT_CONCURRENCY } from './limit.js';
import { checksTimeoutMs, hostCheckScripts } from '../verify/run.js';
import { timed } from '../util/debug.js';

/**
 * The start of every run: the inventory and its playbook (pure, exit 2 on bad input), then every
 * host connected, read and planned at once, taking the run lock in the same round trip.
 */
export interface Prepared {
  inv: Inventory;
  pb: Playbook;
  hosts: HostState[];
  /** the verification probe host, connected alongside the others when the command verifies */
  probe?: HostSession;
  /** things the user should know before anything happens (e.g. a lock that --break-lock removed) */
  notices: string[];
  /** per host: the error that stopped connect/facts/plan */
  errors: Map<string, Error>;
  /** what the probe's checks printed, when they ran as soon as it connected (PrepareOptions.checks) */
  probeChecks?: Promise<string>;
}

/** Pure input stage: inventory, playbook, desired resources, SSH targets. Throws UserError on bad input. */
export function loadAll(file: string, withProbe = false): { inv: Inventory; pb: Playbook; hosts: HostState[] } {
  const { inventory: inv } = loadInventory(file);
  const pb = loadPlaybook(inv.mode);
  if (!pb.protocols.includes(inv.service.protocol)) throw new Error(`${inv.mode} does not support ${inv.service.protocol}`);
  const targets = inventoryTargets(inv);
  checkLocalFiles([...targets, ...(withProbe ? [probeTarget(inv)].filter((t): t is NonNullable<typeof t> => !!t) : [])]);
  const hosts = desiredHosts(inv, pb).map((target, i) => ({ target, ssh: targets[i]! }));
  return { inv, pb, hosts };
}

export interface PrepareOptions {
  /** plan each host (plan, apply) */
  plan?: boolean;
  /** take the run lock in the facts exec (apply, rollback) */
  lock?: LockRequest;
  /** connect the verification probe host too */
  probe?: boolean;
  /**
   * run each host's checks in its facts exec, and the probe's as soon as it is connected (verify;
   * apply, speculatively: they count only when the run changes nothing)
   */
  checks?: boolean;
  /** hosts at work at once (connecting or running an exec); default DEFAULT_CONCURRENCY */
  concurrency?: number;
  connect?: Connector;
}

/**
 * Connect to every host, read facts, plan: one step per host, all in parallel (at most
 * `concurrency` at work at once).
 */
export async function connectAndPlan(file: string, runner: StepRunner, opts: PrepareOptions = {}): Promise<Prepared> {
  const { inv, pb, hosts } = loadAll(file, !!opts.probe);
  const lock = opts.lock;
  const connect = limitedConnector(opts.connect ?? sshConnector, new Slots(opts.concurrency ?? DEFAULT_CONCURRENCY));
  for (const h of hosts) h.connect = connect;
  const errors = new Map<string, Error>();
  const notices: string[] = [];
  const pt = opts.probe ? probeTarget(inv) : undefined;
  let probe: HostSession | undefined;
  let probeChecks: Promise<string> | undefined;
  const checkScript = opts.checks ? hostCheckScripts(inv) : () => '';
  const probeScript = checkScript('probe');
  // the probe connects while the hosts read facts: its handshake costs no extra time
  const probeTask = pt
    ? [
        {
          title: `probe: connect to ${pt.user}@${pt.host}${pt.via ? ` via ${pt.via.name}` : ''}`,
          run: async (update: (t: string) => void) => {
            try {
              probe = await connect(pt);
              update(`probe: connected to ${pt.user}@${pt.host}`);
            } catch (e) {
              errors.set('probe', e as Error);
              throw e;
            }
            if (probeScript) {
              const session = probe;
              probeChecks = timed('probe checks', () => session.exec(probeScript, { timeoutMs: checksTimeoutMs(inv) })).then((r) => r.stdout);
              probeChecks.catch(() => undefined);
            }
          },
        },
      ]
    : [];
  // Locks are taken proxy first: two runs of one inventory then meet at the proxy, and exactly one
  // of them goes on (taken all at once, each run could win some hosts and both would give up).
  // The upstreams start the moment the proxy's lock line arrives, while the proxy reads its facts.
  let proxyDone: () => void = () => undefined;
  const proxyGate = new Promise<void>((resolve) => (proxyDone = resolve));
  const proxyState = () => hosts.find((x) => x.target.role === 'proxy');
  const factsOpts = (h: HostState) => {
    const checks = checkScript(h.target.name);
    return {
      // the proxy's checks (a ping and a service check per upstream) run while its facts are read
      ...(checks ? { checks, checksTimeoutMs: checksTimeoutMs(inv), checksAlongside: h.target.role === 'proxy' } : {}),
      // a lock left by a dead run of this machine is taken over below before the upstreams go
      ...(h.target.role === 'proxy' ? { onLock: (l: LockState) => (l.state === 'acquired' ? proxyDone() : undefined) } : {}),
    };
  };
  await runner(
    [...probeTask, ...hosts.map((h) => ({
      title: `${h.target.name}: connect to ${h.ssh.user}@${h.ssh.host}${h.ssh.via ? ` via ${h.ssh.via.name}` : ''}`,
      run: async (update: (t: string) => void) => {
        try {
          await connectHost(h);
          if (lock && h.target.role !== 'proxy') {
            await proxyGate;
            const p = proxyState();
            if (p?.lock?.state !== 'acquired') throw new Error(`not read: the proxy ${p?.lock?.state === 'held' ? 'is locked by another run' : 'could not be locked'}`);
          }
          update(`${h.target.name}: read facts`);
          let facts = await gatherFacts(h, inv, pb, lock, factsOpts(h));
          // a lock left by a dsrctl on this machine whose process is gone needs no person (the
          // lock script still refuses one whose run has its switch armed)
          if (lock && h.lock?.state === 'held' && !h.lock.armed && holderIsDeadHere(h.lock.holder)) {
            const dead = h.lock.holder;
            facts = await gatherFacts(h, inv, pb, { ...lock, breakLock: true }, factsOpts(h));
            const now = h.lock as LockState | undefined;
            if (now?.state === 'acquired') {
              now.broke = undefined;
              notices.push(`${h.target.name}: took over the lock of ${describeHolder(dead)}: that process is gone`);
            }
          }
          // the upstreams wait for the proxy's lock (taken over or not) before they read theirs
          if (h.target.role === 'proxy') proxyDone();
          if (h.lock?.state === 'held')
            throw new Error(
              h.lock.armed
                ? `locked by ${describeHolder(h.lock.holder)}, whose changes were never confirmed and whose dead-man's switch is still armed: wait for it to revert them, or run dsrctl rollback --break-lock (apply --break-lock will not take this lock)`
                : `locked by ${describeHolder(h.lock.holder)}; if that run is dead, run again with --break-lock`,
            );
          if (!facts) throw new Error('facts not read');
          if (h.lock?.state === 'acquired' && h.lock.broke) notices.push(`${h.target.name}: broke the lock of ${describeHolder(h.lock.broke)}`);
          if (opts.plan) {
            const plan = planFor(h, inv, pb);
            update(`${h.target.name}: ${plan.changes.length} change${plan.changes.length === 1 ? '' : 's'} planned (${facts.hostname}, kernel ${facts.kernel})`);
          } else update(`${h.target.name}: connected (${facts.hostname})`);
        } catch (e) {
          if (h.target.role === 'proxy') proxyDone();
          errors.set(h.target.name, e as Error);
          throw e;
        }
      },
    }))],
    { concurrent: true },
  );
  return { inv, pb, hosts, errors, probe, notices, ...(probeChecks ? { probeChecks } : {}) };
}

/** "host: message" once, whether or not the error already names its host. */
export function hostMessage(host: string, e: Error): string {
  return e.message.startsWith(`${host}: `) || e.message.startsWith(`${host} (`) ? e.message : `${host}: ${e.message}`;
}

/** Errors before any change: 2 when every one is bad input (a PlanError with usage), else 1. */
export function preflightExit(errors: Error[]): number {
  return errors.length > 0 && errors.every((e) => e instanceof PlanError && e.usage) ? EXIT.usage : EXIT.failedRolledBack;
}
