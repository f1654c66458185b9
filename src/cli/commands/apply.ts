import { confirm } from '@inquirer/prompts';
import type { GlobalOptions } from '../prepare.js';
import { connectAndPlan, rendererFor } from '../prepare.js';
import { closeAll, type HostState } from '../../engine/hosts.js';
import { applyHost, rollbackHost, type HostApplyResult, type HostRollbackResult } from '../../engine/apply-host.js';
import { newRunId } from '../../apply/paths.js';
import { formatPlan, formatChecks, planJson, red, green, yellow, bold } from '../output.js';
import { EXIT, UserError } from '../../util/errors.js';
import { verifyHosts } from './verify.js';
import type { CheckResult } from '../../verify/checks.js';
import type { HostPlan } from '../../plan/types.js';
import { Listr } from 'listr2';

type Result = 'no-changes' | 'applied' | 'failed' | 'rolled-back' | 'rollback-failed';

/** Roll back the hosts that changed in this run: upstreams first (in parallel), then the proxy. */
export async function rollbackRun(hosts: HostState[], runId: string, opts: GlobalOptions): Promise<HostRollbackResult[]> {
  const results: HostRollbackResult[] = [];
  const upstreams = hosts.filter((h) => h.target.role === 'upstream');
  const proxy = hosts.filter((h) => h.target.role === 'proxy');
  await new Listr(
    [upstreams, proxy]
      .filter((group) => group.length)
      .map((group) => ({
        title: `roll back ${group.map((h) => h.target.name).join(', ')}`,
        task: async () => {
          results.push(...(await Promise.all(group.map((h) => rollbackHost(h.session!, runId)))));
        },
      })),
    { concurrent: false, renderer: rendererFor(opts) },
  ).run();
  return results;
}

export async function applyCommand(file: string, opts: GlobalOptions): Promise<number> {
  if (!opts.yes && !process.stdin.isTTY) throw new UserError('apply changes hosts: confirm on a terminal, or pass --yes when running unattended');
  const prep = await connectAndPlan(file, opts);
  const runId = newRunId();
  const applied: HostApplyResult[] = [];
  let checks: CheckResult[] = [];
  let rollbacks: HostRollbackResult[] = [];
  let result: Result = 'no-changes';
  let failure: string | undefined;
  const log = (s: string) => {
    if (!opts.json && !opts.quiet) console.log(s);
  };
  try {
    const plans = prep.hosts.map((h) => h.plan).filter((p): p is HostPlan => !!p);
    if (prep.errors.size) {
      failure = [...prep.errors].map(([h, e]) => `${h}: ${e.message}`).join('\n');
      result = 'failed';
      return finish(EXIT.failedRolledBack);
    }
    const changed = prep.hosts.filter((h) => h.plan!.changes.length > 0);
    log('\n' + formatPlan(plans, { commands: !!opts.verbose, runId }));
    if (changed.length && !opts.yes) {
      const ok = await confirm({ message: `Apply these changes to ${changed.length} host(s)?`, default: false });
      if (!ok) {
        failure = 'cancelled; nothing was changed';
        return finish(EXIT.ok);
      }
    }
    if (changed.length) {
      // proxy before upstreams: the upstreams' new default route is useless until the proxy handles their replies
      const proxy = changed.filter((h) => h.target.role === 'proxy');
      const ups = changed.filter((h) => h.target.role === 'upstream');
      const applyGroup = async (group: HostState[]) => {
        const res = await Promise.all(
          group.map((h) =>
            applyHost(h.session!, h.plan!, runId).catch((e: Error) => ({ host: h.target.name, ok: false, done: 0, rollback: [], failure: e.message, stderr: '' }) as HostApplyResult),
          ),
        );
        applied.push(...res);
        const bad = res.filter((r) => !r.ok);
        if (bad.length) throw new Error(bad.map((r) => `${r.host}: ${r.failure}`).join('; '));
      };
      await new Listr(
        [
          ...(proxy.length ? [{ title: `apply ${proxy[0]!.plan!.changes.length} change(s) on proxy`, task: () => applyGroup(proxy) }] : []),
          ...(ups.length ? [{ title: `apply changes on ${ups.map((h) => h.target.name).join(', ')}`, task: () => applyGroup(ups) }] : []),
        ],
        { concurrent: false, exitOnError: true, renderer: rendererFor(opts) },
      )
        .run()
        .catch((e: Error) => {
          failure = `apply failed: ${e.message}`;
        });
    }
    if (!failure) {
      checks = await verifyHosts(prep, opts);
      const bad = checks.filter((c) => !c.ok);
      if (bad.length) failure = `verification failed: ${bad.map((c) => `${c.description}: ${c.detail}`).join('; ')}`;
    }
    if (!failure) {
      result = changed.length ? 'applied' : 'no-changes';
      log(formatChecks(checks));
      log(green(changed.length ? `\nApplied run ${runId} and verified it.` : '\nNo changes; verification passed.'));
      return finish(EXIT.ok);
    }
    // every host that completed its changes is rolled back; a host whose apply failed already rolled itself back
    const toUndo = prep.hosts.filter((h) => applied.some((a) => a.host === h.target.name && a.ok));
    if (checks.length) log(formatChecks(checks));
    log(red(`\n${failure}`));
    if (toUndo.length) rollbacks = await rollbackRun(toUndo, runId, opts);
    const selfRolled = applied.filter((a) => !a.ok && a.done > 0);
    const incomplete = rollbacks.filter((r) => !r.ok).length + selfRolled.filter((a) => a.rollbackStatus !== 'rolled-back').length;
    result = incomplete ? 'rollback-failed' : changed.length ? 'rolled-back' : 'failed';
    for (const r of rollbacks) log(`${r.ok ? green('rolled back') : red('ROLLBACK FAILED')} ${r.host}${r.error ? `: ${r.error}` : ''}${r.lines.length ? '\n    ' + r.lines.join('\n    ') : ''}`);
    for (const a of selfRolled) log(`${a.rollbackStatus === 'rolled-back' ? yellow('rolled itself back') : red('ROLLBACK FAILED')} ${a.host}:\n    ${a.rollback.join('\n    ')}`);
    return finish(incomplete ? EXIT.rollbackIncomplete : EXIT.failedRolledBack);
  } finally {
    await closeAll(prep.hosts);
  }

  function finish(code: number): number {
    if (opts.json) {
      process.stdout.write(
        JSON.stringify(
          {
            command: 'apply',
            runId,
            mode: prep.inv.mode,
            result,
            exitCode: code,
            failure,
            hosts: prep.hosts.map((h) => ({
              ...(h.plan ? planJson(h.plan, runId) : { host: h.target.name, role: h.target.role, changes: [] }),
              error: prep.errors.get(h.target.name)?.message,
              outcome: applied.find((a) => a.host === h.target.name) ?? null,
              rollback: rollbacks.find((r) => r.host === h.target.name) ?? null,
              execs: h.session?.execCount ?? 0,
            })),
            verification: checks,
          },
          null,
          2,
        ) + '\n',
      );
    } else if (failure && code !== EXIT.ok) {
      console.error(bold(code === EXIT.rollbackIncomplete ? red('Rollback did not complete: a person must look at the hosts above.') : `Run ${runId} failed; every changed host was rolled back.`));
    } else if (failure) log(failure);
    return code;
  }
}
