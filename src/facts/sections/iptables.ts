import { parseIptablesSave, parseIptablesVariant } from '../parsers/iptables-save.js';
import type { IptablesFacts } from '../types.js';
import { reason, type FactSection } from './section.js';

/** Its part of HostFacts. */
export interface IptablesSectionFacts {
  iptables: IptablesFacts;
}

/** iptables: which variant (legacy or nft), and every table as iptables-save prints it. */
export const iptables: FactSection<IptablesSectionFacts> = {
  id: 'iptables',
  // the variant null, as on a host without iptables: only prune looks then, and finds nothing of dsrctl's
  optional: { notRead: () => ({ iptables: { variant: null, save: '', tables: {} } }), leftBy: ['iptables '] },
  single: ['iptables-version', 'iptables-save'],
  shell: () => ['  run iptables-version iptables -V', '  run iptables-save iptables-save'],
  parse(ctx) {
    const ver = ctx.one('iptables-version');
    const out: IptablesFacts = { variant: null, save: '', tables: {} };
    if (ver.rc !== 127) {
      if (ver.rc !== 0) ctx.incomplete.push({ section: 'iptables-version', reason: reason(ver.rc) });
      out.variant = parseIptablesVariant(ver.body);
      const save = ctx.one('iptables-save');
      if (save.rc === 0) {
        out.save = save.body === '' ? '' : `${save.body}\n`;
        out.tables = parseIptablesSave(save.body);
      } else {
        out.error = `iptables-save failed (${reason(save.rc)})`;
        ctx.incomplete.push({ section: 'iptables-save', reason: reason(save.rc) });
      }
    }
    return { iptables: out };
  },
};
