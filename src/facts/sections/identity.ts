import { FactsParseError } from '../format.js';
import type { FactSection } from './section.js';

/** Its part of HostFacts. */
export interface IdentityFacts {
  hostname: string;
  kernel: string;
  uid: number;
  hasSystemd: boolean;
}

/** Who the host is: hostname, kernel, the user dsrctl runs as, whether systemd runs it. */
export const identity: FactSection<IdentityFacts> = {
  single: ['hostname', 'kernel', 'uid', 'systemd'],
  shell: () => [
    '  run hostname uname -n',
    '  run kernel uname -r',
    '  run uid id -u',
    '  b systemd; if [ -d /run/systemd/system ]; then echo yes; else echo no; fi; e systemd 0',
  ],
  parse(ctx) {
    const uid = ctx.must('uid').trim();
    if (!/^\d+$/.test(uid)) throw new FactsParseError('uid', 'not a number', uid);
    const systemd = ctx.one('systemd').body.trim();
    if (systemd !== 'yes' && systemd !== 'no') throw new FactsParseError('systemd', 'expected yes or no', systemd);
    return { hostname: ctx.must('hostname').trim(), kernel: ctx.must('kernel').trim(), uid: Number(uid), hasSystemd: systemd === 'yes' };
  },
};
