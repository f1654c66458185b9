/** A Step is one thing an apply or undo script does. Never a string glued from user input. */
export type Step =
  /** run a command given as argv; quoted for the shell when the script is rendered */
  | { run: string[] }
  /** copy a file aside (with mode and times) under the run's backup dir, keyed */
  | { backup: { path: string; key: string } }
  /** put back a file saved by `backup` under the same key, byte for byte */
  | { restore: { path: string; key: string } }
  /** write content (a latin1 byte string) to a file (truncate-in-place keeps owner and mode of an existing file) */
  | { write: { path: string; content: string; mode?: string } }
  /** remove a file (absent is fine) */
  | { remove: { path: string } }
  /** a shell fragment built by dsrctl's own code with every value quoted (never user text) */
  | { sh: string; display?: string; /** it changes only files on disk (a boot-time revert runs it) */ files?: boolean };

/** Handlers run once after all changes that notify them, in apply and in undo alike (Ansible's model). */
export type Handler = 'nginx-reload' | 'systemd-units';

export interface Change {
  /** resource kind, e.g. "ip-rule" */
  kind: string;
  /** stable identity of the resource on this host, e.g. "ip rule fwmark 0x1 lookup 100" */
  id: string;
  action: 'create' | 'update' | 'delete';
  /** one line a person reads in the plan */
  summary: string;
  /** for files: unified diff of before -> after */
  diff?: string;
  do: Step[];
  /** exact inverse of `do`, from the prior state recorded in facts */
  undo: Step[];
  notify?: Handler[];
  /**
   * What a boot-time revert runs for this change (rollback.sh --boot): the part of its undo that
   * survives a reboot (files, symlinks). Absent: the undo's file steps (render-step.ts bootSteps).
   */
  bootUndo?: Step[];
}

export interface HostPlan {
  host: string; // inventory name: "proxy" or the upstream's name
  role: 'proxy' | 'upstream';
  changes: Change[];
  /** notes the user should read (e.g. DSR gives up passive health checks) */
  notes: string[];
  /** files as the plan read them: the apply script checks each before it changes anything */
  preconditions?: { path: string; sha256?: string; realpath?: string }[];
  /** the host reverts an unconfirmed run at boot (systemd, persist: true): the journal is synced before each file change */
  bootRevert?: boolean;
}
