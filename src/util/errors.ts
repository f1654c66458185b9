/** Exit codes of the contract (DESIGN.md). */
export const EXIT = {
  ok: 0,
  /** the run failed and every host was rolled back */
  failedRolledBack: 1,
  /** bad input or usage; nothing was touched */
  usage: 2,
  /** a rollback could not complete: a person must look */
  rollbackIncomplete: 3,
  /** plan --detailed-exitcode: changes are pending */
  changesPending: 4,
  /** interrupted (Ctrl-C, SIGTERM, a closed terminal) before any change: locks released, nothing touched */
  interrupted: 130,
} as const;

/** An error caused by what the user gave us: printed without a stack trace, exit 2, nothing touched. */
export class UserError extends Error {
  readonly exitCode = EXIT.usage;
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}
