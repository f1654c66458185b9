import { ZodError } from 'zod';
import { UserError, EXIT } from '../util/errors.js';
import { SshError } from '../ssh/errors.js';
import { PlanError } from '../resources/types.js';

/** How an error reaches the user: a message, an exit code, and a stack only for our own bugs. */
export function describeError(e: unknown): { message: string; exitCode: number; stack?: string } {
  if (e instanceof UserError) return { message: e.message, exitCode: EXIT.usage };
  if (e instanceof PlanError && e.usage) return { message: `${e.message}\nNothing was changed.`, exitCode: EXIT.usage };
  if (e instanceof SshError || e instanceof PlanError) return { message: `${e.message}\nNothing was changed.`, exitCode: EXIT.failedRolledBack };
  if (e instanceof ZodError) return { message: `invalid data: ${e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, exitCode: EXIT.usage };
  if (e && typeof e === 'object' && 'name' in e && (e as Error).name === 'ExitPromptError') return { message: 'cancelled; nothing was changed', exitCode: EXIT.usage };
  const err = e as Error;
  return { message: err?.message ?? String(e), exitCode: EXIT.failedRolledBack, stack: err?.stack };
}
