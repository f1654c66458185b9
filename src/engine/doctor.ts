import type { Inventory } from '../inventory/schema.js';
import type { HostSession } from '../ssh/types.js';
import { probeTarget } from '../ssh/targets.js';
import { EXIT } from '../util/errors.js';
import { collectDoctor, doctorRequest } from '../doctor/collect.js';
import { diagnose, type HostEvidence } from '../doctor/findings.js';
import type { Finding } from '../doctor/types.js';
import { closeAll } from './hosts.js';
import { connectAndPlan } from './prepare.js';
import { runCapture, type CaptureHost, type CaptureResult } from './doctor-capture.js';
import { sshConnector, type Connector } from './connector.js';
import { eventRunner, type StepRunner } from './steps.js';

export interface DoctorOptions {
  runner?: StepRunner;
  connect?: Connector;
  /** hosts at work at once, connecting or running a command (default 64) */
  concurrency?: number;
  /** the findings, as soon as they are known (before a capture, which waits for traffic) */
  onFindings?: (findings: Finding[], hostOrder: string[]) => void;
  /** `--capture N`: tcpdump on every host for N seconds; `say` tells the person when to send traffic */
  capture?: { seconds: number; say: (line: string) => void };
}

export interface DoctorResult {
  inventory: Inventory;
  findings: Finding[];
  /** inventory order */
  hostOrder: string[];
  /** hosts that could not be examined, and why */
  errors: Map<string, string>;
  roles: Map<string, 'proxy' | 'upstream'>;
  capture?: CaptureResult;
  /** 1 when a finding is an error, else 0 */
  exitCode: number;
}

/** The guide's Troubleshooting, automated and read-only: facts without the run lock, no plan, no journal. */
export async function doctor(inventoryFile: string, opts: DoctorOptions = {}): Promise<DoctorResult> {
  const runner = opts.runner ?? eventRunner();
  const connect = opts.connect ?? sshConnector;
  const prep = await connectAndPlan(inventoryFile, runner, { ...(opts.concurrency ? { concurrency: opts.concurrency } : {}), connect });
  const { inv } = prep;
  let probe: HostSession | undefined;
  try {
    const evidence: HostEvidence[] = prep.hosts.map((h) => ({ name: h.target.name, role: h.target.role, ...(h.target.upstream ? { upstream: h.target.upstream } : {}) }));
    await runner(
      prep.hosts.map((h, i) => ({
        title: `${h.target.name}: read-only checks`,
        run: async () => {
          const ev = evidence[i]!;
          const err = prep.errors.get(h.target.name);
          if (err || !h.session || !h.facts) throw new Error((ev.error = err?.message ?? 'not connected'));
          ev.facts = h.facts;
          try {
            ev.doctor = await collectDoctor(h.session, doctorRequest(inv, h.target.role, h.facts));
          } catch (e) {
            ev.error = (e as Error).message;
            throw e;
          }
        },
      })),
      { concurrent: true },
    );
    const findings = diagnose(inv, evidence);
    const hostOrder = prep.hosts.map((h) => h.target.name);
    opts.onFindings?.(findings, hostOrder);

    let capture: CaptureResult | undefined;
    if (opts.capture) {
      const hosts: CaptureHost[] = [];
      const unreachable = new Map<string, string>();
      for (const h of prep.hosts) {
        if (h.session && !prep.errors.has(h.target.name)) hosts.push({ name: h.target.name, target: h.ssh, control: h.session });
        else unreachable.set(h.target.name, prep.errors.get(h.target.name)?.message ?? 'no connection');
      }
      const pt = probeTarget(inv);
      if (pt) {
        try {
          probe = await connect(pt);
          hosts.push({ name: 'probe', target: pt, control: probe });
        } catch (e) {
          unreachable.set('probe', (e as Error).message);
        }
      }
      capture = await runCapture(inv, hosts, unreachable, opts.capture.seconds, opts.capture.say, connect);
    }
    return {
      inventory: inv,
      findings,
      hostOrder,
      errors: new Map(evidence.filter((e) => e.error).map((e) => [e.name, e.error!])),
      roles: new Map(evidence.map((e) => [e.name, e.role])),
      capture,
      exitCode: findings.some((f) => f.severity === 'error') ? EXIT.failedRolledBack : EXIT.ok,
    };
  } finally {
    await probe?.close();
    await closeAll(prep.hosts);
  }
}
