/** Findings as a person reads them: grouped by host, worst first, evidence indented, then the fix. Pure. */
import { SEVERITY_ORDER, type Finding, type Severity } from './types.js';

export interface ReportStyle {
  /** show the evidence of ok findings too (-v) */
  verbose?: boolean;
  /** only warn and error findings (-q) */
  quiet?: boolean;
  paint?: Partial<Record<Severity | 'bold' | 'dim', (s: string) => string>>;
}

const LABEL: Record<Severity, string> = { error: 'ERROR', warn: 'WARN ', info: 'info ', ok: 'ok   ' };

export function formatFindings(findings: Finding[], hostOrder: string[], style: ReportStyle = {}): string {
  const p = (k: Severity | 'bold' | 'dim', s: string) => style.paint?.[k]?.(s) ?? s;
  const out: string[] = [];
  const hosts = [...hostOrder, ...new Set(findings.map((f) => f.host).filter((h) => !hostOrder.includes(h)))];
  for (const host of hosts) {
    const mine = findings
      .filter((f) => f.host === host && (!style.quiet || f.severity === 'error' || f.severity === 'warn'))
      .map((f, i) => ({ f, i }))
      .sort((a, b) => SEVERITY_ORDER[a.f.severity] - SEVERITY_ORDER[b.f.severity] || a.i - b.i)
      .map((x) => x.f);
    if (!mine.length) continue;
    const worst = mine[0]!.severity;
    out.push(p('bold', `${host}${worst === 'ok' || worst === 'info' ? '' : `: ${count(mine, 'error')} error(s), ${count(mine, 'warn')} warning(s)`}`));
    for (const f of mine) {
      out.push(`  ${p(f.severity, LABEL[f.severity])} ${f.title}`);
      if (f.severity !== 'ok' || style.verbose) for (const e of f.evidence) out.push(p('dim', `          ${e}`));
      if (f.fix) out.push(`          fix: ${f.fix}`);
    }
  }
  out.push('', summaryLine(findings));
  return out.join('\n');
}

const count = (fs: Finding[], s: Severity) => fs.filter((f) => f.severity === s).length;

export function summaryLine(findings: Finding[]): string {
  const e = count(findings, 'error');
  const w = count(findings, 'warn');
  const hosts = new Set(findings.map((f) => f.host)).size;
  return `doctor: ${e} error${e === 1 ? '' : 's'}, ${w} warning${w === 1 ? '' : 's'}, ${count(findings, 'ok')} ok on ${hosts} host${hosts === 1 ? '' : 's'}${e ? '' : w ? ' (nothing broken; look at the warnings)' : ''}`;
}
