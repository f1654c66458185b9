import type { z } from 'zod';
import type { Inventory, Upstream } from '../inventory/schema.js';
import type { Playbook } from '../playbook/load.js';
import type { FactsRequest, HostFacts } from '../facts/types.js';
import type { Change } from '../plan/types.js';

export interface PlanContext {
  inventory: Inventory;
  playbook: Playbook;
  role: 'proxy' | 'upstream';
  host: string;
  upstream?: Upstream;
  /** per-host scratch shared by resources of one plan (e.g. iptables tables this plan creates) */
  shared: Map<string, unknown>;
  /** notes for the user, collected while planning (e.g. which NAT backend and why) */
  notes: string[];
}

/**
 * What a resource's desired state needs after a reboot: idempotent sh lines (run at boot and after a
 * network manager restart, any number of times, on a host in any state) and what they restore, in
 * words (the plan names what a reboot loses where nothing persists).
 */
export interface BootItem {
  what: string;
  lines: string[];
}

/** A resource kind reads its current state from Facts and produces the change (with exact undo) to reach the spec. */
export interface ResourceKind<S> {
  kind: string;
  schema: z.ZodType<S>;
  facts?(spec: S, ctx: PlanContext): Partial<FactsRequest>;
  /** null when the host is already in the desired state; several changes when it takes several */
  plan(spec: S, facts: HostFacts, ctx: PlanContext): Change | Change[] | null;
  /** kernel-side kinds (their state is gone after a reboot): the lines that restore the spec at boot */
  boot?(spec: S, facts: HostFacts, ctx: PlanContext): BootItem[];
}

/** Facts contradict what the resource needs (e.g. a sysctl that does not exist): the plan cannot be made. */
export class PlanError extends Error {
  /** the input asks for something this host cannot do: exit 2, like any bad input */
  readonly usage: boolean;
  constructor(
    readonly host: string,
    message: string,
    opts: { usage?: boolean } = {},
  ) {
    super(`${host}: ${message}`);
    this.name = 'PlanError';
    this.usage = opts.usage ?? false;
  }
}
