import type { HostSession } from '../ssh/types.js';
import type { HostPlan } from '../plan/types.js';
import { renderApplyScript, parseApplyOutput, type ApplyOutcome } from '../apply/apply-script.js';
import { ROLLBACK_RUNNER, LAST_RUN, runDir } from '../apply/paths.js';
import { quote } from 'shell-quote';

export interface HostApplyResult extends ApplyOutcome {
  host: string;
  stderr: string;
}

/** All changes of one host in one exec. On failure the host has already rolled itself back. */
export async function applyHost(session: HostSession, plan: HostPlan, runId: string): Promise<HostApplyResult> {
  const res = await session.exec(renderApplyScript(plan, runId), { timeoutMs: 120_000 });
  const outcome = parseApplyOutput(res.stdout);
  if (res.code === 0 && !outcome.ok) outcome.failure = 'apply script ended without reporting success';
  if (res.code !== 0 && !outcome.failure) outcome.failure = `apply script exited ${res.code}: ${res.stderr.trim()}`;
  return { host: plan.host, ...outcome, ok: res.code === 0 && outcome.ok, stderr: res.stderr };
}

export interface HostRollbackResult {
  host: string;
  ok: boolean;
  /** "nothing to undo" when the host had no journal, or its last run was rolled back already */
  nothing: boolean;
  lines: string[];
  status?: string;
  error?: string;
}

/**
 * Undo a run from the host's own journal. Without a run id, the host's last run.
 * Running it again is harmless: undone changes are skipped.
 */
export async function rollbackHost(session: HostSession, runId?: string): Promise<HostRollbackResult> {
  const run = runId ? quote([runDir(runId)]) : `"/var/lib/dsrctl/runs/$(cat ${LAST_RUN} 2>/dev/null)"`;
  const script = [
    runId ? '' : `[ -s ${LAST_RUN} ] || { echo "@@dsrctl-nothing no run recorded on this host"; exit 0; }`,
    `[ -x ${ROLLBACK_RUNNER} ] || [ -f ${ROLLBACK_RUNNER} ] || { echo "@@dsrctl-nothing no journal on this host"; exit 0; }`,
    `sh ${ROLLBACK_RUNNER} ${run} "dsrctl rollback"`,
  ].join('\n');
  try {
    const res = await session.exec(script, { timeoutMs: 60_000 });
    const lines = res.stdout.split('\n').filter((l) => l.startsWith('@@dsrctl-'));
    const nothing = lines.some((l) => l.startsWith('@@dsrctl-nothing')) || (res.code === 0 && !lines.some((l) => l.startsWith('@@dsrctl-undone')));
    const status = lines.find((l) => l.startsWith('@@dsrctl-rollback-status '))?.slice(25);
    return {
      host: session.name,
      ok: res.code === 0,
      nothing,
      status,
      lines: lines.filter((l) => l.startsWith('@@dsrctl-undo')).map((l) => l.slice(9)),
      error: res.code === 0 ? undefined : `rollback exited ${res.code}: ${(res.stderr || lines.join('; ')).trim()}`,
    };
  } catch (e) {
    return { host: session.name, ok: false, nothing: false, lines: [], error: (e as Error).message };
  }
}
