import type { GlobalOptions } from '../progress.js';
import { listrRunner } from '../progress.js';
import { apply, Interrupted, type ApplyEvent, type ApplyResult } from '../../engine/apply.js';
import { formatPlan, formatChecks, red, green, yellow, bold } from '../output.js';
import { EXIT, UserError } from '../../util/errors.js';
import { print, printErr } from '../terminal.js';
import { writeReport } from '../report.js';
import { applyReport } from '../../report/documents.js';
import { watchInterruptions, isPromptInterrupt } from '../interrupt.js';
import { summarizeHostErrors } from '../host-errors.js';

/** `dsrctl apply`: the engine's apply, drawn on the terminal, asked on a terminal, reported as text or JSON. */
export async function applyCommand(file: string, opts: GlobalOptions): Promise<number> {
  if (!opts.yes && !process.stdin.isTTY) throw new UserError('apply changes hosts: confirm on a terminal, or pass --yes when running unattended');
  const intr = watchInterruptions();
  const log = (s: string) => {
    if (!opts.json && !opts.quiet) print(s);
  };
  // the failure, once printed as the run goes, is not printed again at the end
  let failureShown = false;
  let r: ApplyResult;
  try {
    r = await apply(file, {
      ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
      runner: listrRunner(opts),
      breakLock: !!opts.breakLock,
      interruption: intr,
      onEvent: (e) => {
        if (e.type === 'failure') failureShown = !opts.json && !opts.quiet;
        render(e, opts, log);
      },
      confirm: opts.yes
        ? undefined
        : async (_plans, hosts) => {
            try {
              return await (await import('@inquirer/prompts')).confirm({ message: `Apply these changes to ${hosts} host(s)?`, default: false }, { signal: intr.abort });
            } catch (e) {
              if (isPromptInterrupt(e)) throw new Interrupted(intr.signal ?? 'SIGINT');
              throw e;
            }
          },
    });
  } finally {
    intr.dispose();
  }
  if (opts.json) {
    writeReport(applyReport(r));
  } else if (r.exitCode === EXIT.ok) log(`\n${green(r.message)}`);
  else {
    // a run stopped before any change: each host's cause once, the proxy's first
    const preflight = r.result === 'failed' && r.errors.size > 0 && !r.hosts.some((h) => h.outcome);
    const failure = preflight ? summarizeHostErrors(new Map([...r.errors].filter(([h]) => h !== 'probe')), r.hosts.map((h) => h.host)).join('\n') : r.failure;
    if (failure && !failureShown && (opts.quiet || r.result === 'failed')) printErr(red(failure));
    printErr(r.exitCode === EXIT.rollbackIncomplete ? red(bold(r.message)) : r.exitCode === EXIT.failedRolledBack ? bold(r.message) : r.message);
  }
  return r.exitCode;
}

/** One event of the run as the lines a person reads. */
function render(e: ApplyEvent, opts: GlobalOptions, log: (s: string) => void): void {
  switch (e.type) {
    case 'warning':
      return log(yellow(e.text));
    case 'plan':
      return log('\n' + formatPlan(e.plans, { commands: !!opts.verbose, runId: e.runId }));
    case 'host-output':
      if (opts.verbose) log(`${e.host}: apply output\n${e.lines.map((l) => `    ${l}`).join('\n')}`);
      return;
    case 'checks':
      return log(formatChecks(e.checks));
    case 'failure':
      return log(red(`\n${e.text}`));
    case 'lock-left':
      return log(red(`${e.host}: could not release its lock (unreachable); once it is checked, run again with --break-lock`));
    case 'rolled-back': {
      const x = e.result;
      return log(`${x.ok ? green('rolled back') : red('ROLLBACK FAILED')} ${x.host}${x.error ? `: ${x.error}` : ''}${x.lines.length ? '\n    ' + x.lines.join('\n    ') : ''}`);
    }
    case 'rolled-itself-back': {
      const a = e.outcome;
      return log(`${a.rollbackStatus === 'rolled-back' ? yellow('rolled itself back') : red('ROLLBACK FAILED')} ${a.host}:\n    ${a.rollback.join('\n    ')}`);
    }
  }
}
