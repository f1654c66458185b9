import type { HostPlan, Step } from '../plan/types.js';
import type { CheckResult } from '../verify/checks.js';
import { displayStep } from '../plan/display-step.js';
import { COLOR_MARK } from './terminal.js';

const useColor = () => process.stdout.isTTY && !process.env.NO_COLOR;
// colours are marks until the output boundary (terminal.ts) has made the text around them safe
const paint = (code: string) => (s: string) => (useColor() ? `${COLOR_MARK}${code}m${s}${COLOR_MARK}0m` : s);
export const green = paint('32');
export const red = paint('31');
export const yellow = paint('33');
export const bold = paint('1');
export const dim = paint('2');

/** The plan as a person reads it: per host, each change, its commands, and file diffs. */
export function formatPlan(plans: HostPlan[], opts: { commands: boolean; runId?: string; unread?: string[]; refused?: string[] }): string {
  const out: string[] = [];
  for (const p of plans) {
    out.push(bold(`${p.host} (${p.role}): ${p.changes.length === 0 ? 'no changes' : `${p.changes.length} change${p.changes.length > 1 ? 's' : ''}`}`));
    for (const c of p.changes) {
      const sign = c.action === 'create' ? green('+') : c.action === 'delete' ? red('-') : yellow('~');
      out.push(`  ${sign} ${c.summary}`);
      if (opts.commands)
        // file writes show as the diff below; their backups are bookkeeping
        for (const s of c.do) if (!('write' in s) && !('backup' in s)) out.push(dim(`      $ ${displayStep(s, opts.runId)}`));
      if (c.diff) out.push(...c.diff.trimEnd().split('\n').map((l) => `      ${l.startsWith('+') ? green(l) : l.startsWith('-') ? red(l) : dim(l)}`));
    }
    for (const n of p.notes) out.push(yellow(`  note: ${n}`));
  }
  const total = plans.reduce((n, p) => n + p.changes.length, 0);
  // never a claim about a host that was not read
  const unread = opts.unread ?? [];
  const refused = opts.refused ?? [];
  const about = [
    ...(unread.length ? [`${unread.join(', ')} not read: nothing is known about ${unread.length === 1 ? 'it' : 'them'}`] : []),
    ...(refused.length ? [`${refused.join(', ')} refused: see below`] : []),
  ].map((s) => ` (${s})`).join('');
  if ((unread.length || refused.length) && !plans.length) out.push('', `No host was planned${about}.`);
  else
    out.push(
      '',
      total === 0
        ? about
          ? `Nothing to change on ${plans.map((p) => p.host).join(', ')}${about}.`
          : 'Nothing to change: every host is in the desired state.'
        : `Plan: ${total} change${total > 1 ? 's' : ''} on ${plans.filter((p) => p.changes.length).length} host(s)${about}.`,
    );
  return out.join('\n');
}

export function formatChecks(results: CheckResult[]): string {
  return results
    .map((r) => `  ${r.unproven && r.ok ? yellow('note') : r.ok ? green('ok  ') : red('FAIL')} ${r.description}${(r.ok && r.kind === 'ping') || !r.detail ? '' : `: ${r.detail}`}`)
    .join('\n');
}

