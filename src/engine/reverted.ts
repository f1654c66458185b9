import type { HostState } from './hosts.js';
import { parseLockInfo } from '../apply/lock.js';

/** What /var/lib/dsrctl/reverted says, in words: the dead-man's switch, or the boot-time revert (by=boot). */
export function describeRevert(reverted: string): string {
  const kv = parseLockInfo(reverted) as Record<string, string | undefined>;
  if (kv.by === 'boot')
    return `reverted run ${kv.run ?? '?'} at boot (${kv.time ?? '?'}): the run was never confirmed before the host rebooted, so dsrctl-boot-revert.service put its files back from the journal (boot-time revert; rollback status ${kv.status ?? '?'})`;
  return `reverted run ${kv.run ?? '?'} by itself at ${kv.time ?? '?'} (dead-man's switch: the run was never confirmed; rollback status ${kv.status ?? '?'})`;
}

/** Hosts whose dead-man's switch (or boot-time revert) reverted a run by itself, read from their facts. */
export function revertNotes(hosts: HostState[]): string[] {
  return hosts.flatMap((h) => (h.facts?.dsrctl.reverted ? [`${h.target.name}: ${describeRevert(h.facts.dsrctl.reverted)}`] : []));
}
