import type { HostState } from './hosts.js';

/** What every result says of each host of the inventory: read or not, and why not. */
export interface HostSummary {
  host: string;
  role: 'proxy' | 'upstream';
  read: boolean;
  error?: string;
}

export function hostSummaries(hosts: HostState[], errors: ReadonlyMap<string, Error>): HostSummary[] {
  return hosts.map((h) => ({ host: h.target.name, role: h.target.role, read: !!h.facts, ...(errors.has(h.target.name) ? { error: errors.get(h.target.name)!.message } : {}) }));
}
