#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
// Commands load on demand: `dsrctl plan` need not parse the wizard's prompt library, and
// Node's start-up is most of a no-op run's time.
import { EXIT } from './util/errors.js';
import { PACKAGE_ROOT } from './util/package-root.js';

const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };

async function main(argv: string[]): Promise<number> {
  let code: number = EXIT.ok;
  const program = new Command('dsrctl')
    .description('Put an NGINX reverse proxy and its upstreams into IP Transparency or Direct Server Return mode, verified and reversible.')
    .version(pkg.version)
    .exitOverride()
    .showHelpAfterError('(run dsrctl --help for usage)')
    .addHelpText(
      'after',
      `
Exit codes: 0 success or nothing to do; 1 the run failed and every host was rolled back;
            2 bad input or usage, nothing touched; 3 rollback could not complete (a person must look);
            4 plan --detailed-exitcode: changes pending;
            130 interrupted before any change (locks released), or wizard cancelled (nothing written).

Examples:
  dsrctl plan -i inventory/prod.yaml
  dsrctl apply -i inventory/prod.yaml --yes --json
  dsrctl verify -i inventory/prod.yaml
  dsrctl rollback -i inventory/prod.yaml --yes
  dsrctl lab demo`,
    );
  const inventoryOpt = () => new Option('-i, --inventory <file>', 'inventory YAML').makeOptionMandatory();
  // at most N hosts connecting or running a command at once: a host waiting for its turn has no timeout running
  const concurrencyOpt = () =>
    new Option('--concurrency <n>', 'hosts at work at once (connecting or running a command)').default(64).argParser((v) => {
      if (!/^[1-9]\d{0,4}$/.test(v)) throw new InvalidArgumentError('a whole number from 1 to 99999');
      return Number(v);
    });
  const common = (c: Command) =>
    c.addOption(inventoryOpt()).option('--json', 'print one JSON document on stdout').option('-q, --quiet', 'print only errors').option('-v, --verbose', 'show every command').addOption(concurrencyOpt());

  common(program.command('plan').description('show what apply would change on each host (read-only)'))
    .option('--detailed-exitcode', 'exit 0 when nothing would change, 4 when changes are pending')
    .action(async (o) => {
      code = await (await import('./cli/commands/plan.js')).planCommand(o.inventory, o);
    });
  common(program.command('apply').description('apply the mode to every host, verify, and roll back on failure'))
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--break-lock', 'remove a lock left by a dead run before taking it')
    .action(async (o) => {
      code = await (await import('./cli/commands/apply.js')).applyCommand(o.inventory, o);
    });
  common(program.command('verify').description('run the pings and end-to-end probes (read-only)')).action(async (o) => {
    code = await (await import('./cli/commands/verify.js')).verifyCommand(o.inventory, o);
  });
  common(program.command('rollback').description('undo what dsrctl applied on every host, from their own journals'))
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--break-lock', 'remove a lock left by a dead run before taking it')
    .action(async (o) => {
      code = await (await import('./cli/commands/rollback.js')).rollbackCommand(o.inventory, o);
    });
  common(program.command('doctor').description("the guide's Troubleshooting, automated: read-only findings with evidence and fixes"))
    .option('--capture [seconds]', 'run tcpdump on every host at once on the service port and print one merged timeline')
    .action(async (o) => {
      code = await (await import('./cli/commands/doctor.js')).doctorCommand(o.inventory, o);
    });
  program
    .command('wizard')
    .description('set up an inventory interactively: method, service, hosts, SSH, checks')
    .option('-o, --output <file>', 'where to write the inventory (default: asks, under inventory/)')
    .action(async (o) => {
      code = await (await import('./cli/commands/wizard.js')).wizardCommand(o);
    });
  program
    .command('lab')
    .description('the guide\'s topology in network namespaces on this machine (needs root)')
    .argument('<action>', 'up | down | demo | status')
    .option('--keep', 'demo: leave the lab running afterwards')
    .action(async (action: string, o: { keep?: boolean }) => {
      code = await (await import('./cli/commands/lab.js')).labCommand(action, o);
    });

  const examples: Record<string, string[]> = {
    plan: ['dsrctl plan -i inventory/prod.yaml', 'dsrctl plan -i inventory/prod.yaml --detailed-exitcode   # 0: nothing to do, 4: changes pending', 'dsrctl plan -i inventory/prod.yaml --json | jq \'.hosts[].changes[].summary\''],
    apply: ['dsrctl apply -i inventory/prod.yaml               # shows the plan, asks, applies, verifies', 'dsrctl apply -i inventory/prod.yaml --yes --json    # unattended, one JSON document', 'dsrctl apply -i inventory/prod.yaml --break-lock    # after checking that the lock holder is dead'],
    verify: ['dsrctl verify -i inventory/prod.yaml', '*/5 * * * * dsrctl verify -i /etc/dsrctl/prod.yaml -q --json > /var/lib/dsrctl-health.json   # DSR active health checks from cron'],
    rollback: ['dsrctl rollback -i inventory/prod.yaml', 'dsrctl rollback -i inventory/prod.yaml --yes --json'],
    doctor: ['dsrctl doctor -i inventory/prod.yaml', 'dsrctl doctor -i inventory/prod.yaml --capture 5    # then send a few requests from a client'],
    wizard: ['dsrctl wizard', 'dsrctl wizard -o inventory/edge.yaml'],
    lab: ['dsrctl lab demo', 'dsrctl lab up && dsrctl apply -i inventory/lab.yaml --yes && dsrctl lab down', 'DSR_LAB_MODE=dsr-router-nat dsrctl lab up   # a udp/53 lab with DNS upstreams'],
  };
  for (const c of program.commands) {
    const ex = examples[c.name()];
    if (ex) c.addHelpText('after', `\nExamples:\n${ex.map((e) => `  ${e}`).join('\n')}`);
  }

  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return EXIT.ok;
      await jsonError(argv, EXIT.usage, e.message.replace(/^error: /, ''));
      return EXIT.usage;
    }
    const { describeError } = await import('./cli/describe-error.js');
    const { escapeControls } = await import('./cli/terminal.js');
    const { message, exitCode, stack } = describeError(e);
    process.stderr.write(`dsrctl: ${escapeControls(message)}\n`);
    if (stack && process.env.DSRCTL_DEBUG) process.stderr.write(stack + '\n');
    await jsonError(argv, exitCode, message);
    return exitCode;
  }
  return code;
}

/** With --json, an error is a report too: scripts always get exactly one document on stdout. */
async function jsonError(argv: string[], exitCode: number, message: string): Promise<void> {
  if (!argv.includes('--json')) return;
  const { JSON_COMMANDS, writeReport, reportWritten } = await import('./cli/report.js');
  const command = argv.slice(2).find((a) => !a.startsWith('-'));
  if (reportWritten() || !JSON_COMMANDS.includes(command as never)) return;
  writeReport({ command: command as (typeof JSON_COMMANDS)[number], result: 'error', ok: false, exitCode, errors: [{ message }] });
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  async (e) => {
    process.stderr.write(`dsrctl: internal error: ${(e as Error).stack ?? e}\n`);
    await jsonError(process.argv, 1, `internal error: ${(e as Error).message ?? e}`).catch(() => undefined);
    process.exitCode = 1;
  },
);
