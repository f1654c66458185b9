import { quote } from 'shell-quote';
import { parseNft, parseNatProbe, parseTc } from '../parsers/nat.js';
import type { FactSection } from './section.js';
import type { NatBackendFacts, NftFacts, TcFacts } from '../types.js';

/** Its part of HostFacts. */
export interface NatFacts {
  nft: NftFacts;
  nat: NatBackendFacts;
  /** per requested interface */
  tc: Record<string, TcFacts>;
}

export function checkIfname(name: string): string {
  if (!/^[A-Za-z0-9_.@-]{1,15}$/.test(name)) throw new Error(`invalid interface name ${JSON.stringify(name)}`);
  return name;
}

/** Stateless NAT: the nft ruleset, which backends the host can run, tc on the interfaces asked for. */
export const nat: FactSection<NatFacts> = {
  id: 'nat',
  optional: {
    notRead: () => ({ nft: { available: false, ruleset: '', tables: {} }, nat: { actNat: 'absent', tc: false, nft: false }, tc: {} }),
    leftBy: ['nft table ', 'tc nat on '],
  },
  single: ['nft', 'nat-probe'],
  repeated: ['tc'],
  shell: (req) => [
    '  run nft nft list ruleset',
    // stateless NAT backends: act_nat for tc (loaded, built in, or a module on disk), nft for netdev egress
    `  b nat-probe; printf 'act_nat_loaded=%s\\n' "$(grep -c '^act_nat ' /proc/modules 2>/dev/null)"; _k=$(uname -r); printf 'act_nat_builtin=%s\\n' "$(grep -c '/act_nat.ko' "/lib/modules/$_k/modules.builtin" 2>/dev/null)"; printf 'act_nat_module=%s\\n' "$(grep -o '[^ :]*/act_nat\\.ko[^ :]*' "/lib/modules/$_k/modules.dep" 2>/dev/null | head -n 1)"; printf 'tc=%s\\n' "$(command -v tc)"; printf 'nft=%s\\n' "$(command -v nft)"; e nat-probe 0`,
    ...(req.interfaces ?? []).map((i) => `  b tc; printf 'dev=%s\\n' ${quote([checkIfname(i)])}; tc qdisc show dev ${quote([i])} 2>/dev/null; printf '%s\\n' '--filters--'; tc filter show dev ${quote([i])} 2>/dev/null; e tc 0`),
  ],
  parse: (ctx) => ({
    nft: parseNft(ctx.one('nft')),
    nat: parseNatProbe(ctx.one('nat-probe').body),
    tc: Object.fromEntries(ctx.all('tc').map((t) => parseTc(t.body))),
  }),
};
