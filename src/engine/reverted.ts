import type { HostState } from './hosts.js';
import { parseLockInfo } from '../apply/lock.js';

/** Hosts whose dead-man's switch reverted a run by itself, read from their facts. */
export function revertNotes(hosts: HostState[]): string[] {
  const notes: string[] = [];
  for (const h of hosts) {
    const r = h.facts?.dsrctl.reverted;
    if (!r) continue;
    const kv = parseLockInfo(r) as Record<string, string | undefined>;
    notes.push(`${h.target.name}: reverted run ${kv.run ?? '?'} by itself at ${kv.time ?? '?'} (dead-man's switch: the run was never confirmed; rollback status ${kv.status ?? '?'})`);
  }
  return notes;
}
