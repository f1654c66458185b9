/**
 * Why verification fails on hosts where the mode is not in place: a host whose plan still has
 * changes does not run the mode, and one with no /var/lib/dsrctl/last-run never had it applied.
 * Pure: plans and facts in, the lines for the user out.
 */
export interface HostApplyState {
  host: string;
  /** changes the plan still has; undefined when the host could not be planned */
  pending?: number;
  /** /var/lib/dsrctl/last-run: null when dsrctl never applied anything there */
  lastRun: string | null;
}

export function notAppliedLines(mode: string, file: string, hosts: HostApplyState[]): string[] {
  const pending = hosts.filter((h) => (h.pending ?? 0) > 0);
  if (!pending.length) return [];
  const never = pending.filter((h) => h.lastRun === null);
  const changes = (n: number) => `${n} change${n === 1 ? '' : 's'}`;
  const lines = [
    `The ${mode} mode is not applied on ${pending.map((h) => `${h.host} (${changes(h.pending!)} pending)`).join(', ')}: checks of a mode that is not in place fail.`,
  ];
  if (never.length) lines.push(`dsrctl has never applied anything on ${never.length === hosts.length ? 'any of these hosts' : never.map((h) => h.host).join(', ')} (no /var/lib/dsrctl/last-run).`);
  lines.push(`See the changes with dsrctl plan -i ${file}, make them with dsrctl apply -i ${file}.`);
  return lines;
}
