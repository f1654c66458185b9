import type { ConnectTarget, HostSession } from '../ssh/types.js';
import { connect } from '../ssh/session.js';

/**
 * How a run reaches a host. The real one is SSH (src/ssh); tests give the engine a fake that
 * answers each script from fixtures of real output captured on the lab (test/fixtures/runs/),
 * so the workflow's decisions are tested without a network.
 */
export type Connector = (target: ConnectTarget, opts?: { share?: boolean }) => Promise<HostSession>;

export const sshConnector: Connector = (target, opts) => connect(target, opts);
