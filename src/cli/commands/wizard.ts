/**
 * `dsrctl wizard [-o FILE]`: asks what a network engineer knows and writes a commented inventory
 * (src/wizard/). Needs a terminal. Exit codes: 0 written (or the user chose not to save), 130
 * cancelled with Ctrl-C (nothing written, unless the file was already saved when Ctrl-C came at
 * the plan/apply offers), 2 the answers do not make a valid inventory; after plan or apply run
 * from the wizard, their exit code.
 */
import { resolve } from 'node:path';
import { loadEnv } from '../../inventory/load.js';
import { UserError } from '../../util/errors.js';
import { describeError } from '../describe-error.js';
import { runWizard, newState, type Prompter, type WizardIo } from '../../wizard/run.js';
import { readFactsOverSsh } from '../../wizard/facts.js';
import { planCommand } from './plan.js';
import { applyCommand } from './apply.js';
import { escapeControls } from '../terminal.js';

/** 128 + SIGINT, what shells report for a command stopped by Ctrl-C. */
export const EXIT_CANCELLED = 130;

// the prompt library loads when a prompt is asked: the CLI is one bundle, and every other
// command would otherwise load it (and its encoding tables) at start-up
const prompts = () => import('@inquirer/prompts');
const prompter: Prompter = {
  select: async (q) => (await prompts()).select({ ...q, pageSize: 12 }),
  input: async (q) => (await prompts()).input(q),
  confirm: async (q) => (await prompts()).confirm(q),
  password: async (q) => (await prompts()).password({ ...q, mask: '*' }),
};

export async function wizardCommand(opts: { output?: string }): Promise<number> {
  if (!process.stdin.isTTY || !process.stdout.isTTY) throw new UserError('dsrctl wizard asks questions: run it in a terminal (or write the inventory by hand: see inventory/lab.example.yaml)');
  const state = newState();
  const say = (t = '') => process.stdout.write(`${t}\n`);
  const cancelled = () => (state.saved ? `Cancelled; ${state.saved} was saved.` : 'Cancelled: nothing was written.');
  // Ctrl-C outside a prompt (while connecting): nothing is open but sockets, which die with us
  const onSigint = () => {
    say(`\n${cancelled()}`);
    process.exit(EXIT_CANCELLED);
  };
  /** plan and apply handle Ctrl-C themselves; the values behind ${VAR}s typed in this session go in this process's environment only */
  const run = async (fn: () => Promise<number>, secrets: Record<string, string>) => {
    process.off('SIGINT', onSigint);
    for (const [k, v] of Object.entries(secrets)) if (process.env[k] === undefined) process.env[k] = v;
    try {
      return await fn();
    } catch (e) {
      const { message, exitCode } = describeError(e);
      process.stderr.write(`dsrctl: ${escapeControls(message)}\n`);
      return exitCode;
    }
  };
  const io: WizardIo = {
    ask: prompter,
    say,
    readFacts: readFactsOverSsh,
    cwd: process.cwd(),
    env: loadEnv(resolve(process.cwd(), 'inventory', 'wizard.yaml')),
    runPlan: (file, secrets) => run(() => planCommand(file, {}), secrets),
    runApply: (file, secrets) => run(() => applyCommand(file, {}), secrets),
    date: new Date().toISOString().slice(0, 10),
  };
  process.on('SIGINT', onSigint);
  try {
    return await runWizard(io, opts, state);
  } catch (e) {
    if (e instanceof Error && e.name === 'ExitPromptError') {
      say(`\n${cancelled()}`);
      return EXIT_CANCELLED;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

