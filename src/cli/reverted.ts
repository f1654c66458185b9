import type { HostState } from '../engine/hosts.js';

/** Hosts whose dead-man's switch reverted a run by itself, read from their facts. */
export function revertNotes(hosts: HostState[]): string[] {
  const notes: string[] = [];
  for (const h of hosts) {
    const r = h.facts?.dsrctl.reverted;
    if (!r) continue;
    const kv = Object.fromEntries(r.trim().split(/\s+/).map((x) => x.split('=', 2) as [string, string]));
    notes.push(`${h.target.name}: reverted run ${kv.run ?? '?'} by itself at ${kv.time ?? '?'} (dead-man's switch: the run was never confirmed; rollback status ${kv.status ?? '?'})`);
  }
  return notes;
}
