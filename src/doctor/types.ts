/** `dsrctl doctor`: the guide's Troubleshooting as data. */

export type Severity = 'ok' | 'info' | 'warn' | 'error';

/** One thing doctor checked on one host, with what it saw and what to do about it. */
export interface Finding {
  /** stable identifier of the check, e.g. "workers-privilege", "upstream-default-route" */
  id: string;
  /** inventory name of the host the evidence comes from ("proxy", "dev1", ...) */
  host: string;
  severity: Severity;
  /** one line: what was found */
  title: string;
  /** what doctor saw, as printed by the host (command output, file lines) */
  evidence: string[];
  /** what to run or change; absent for findings that need nothing */
  fix?: string;
}

export const SEVERITY_ORDER: Record<Severity, number> = { error: 0, warn: 1, info: 2, ok: 3 };
