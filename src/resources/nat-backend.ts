import type { HostFacts } from '../facts/types.js';
import { PlanError } from './types.js';

/** netdev egress hooks arrived in Linux 5.16. */
export function kernelAtLeast(kernel: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(kernel);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}

export interface NatBackendChoice {
  backend: 'tc' | 'nft';
  reason: string;
}

/** auto: the guide's tc when act_nat is there and ports need no rewrite; else nftables netdev egress. Pure. */
export function chooseNatBackend(requested: 'auto' | 'tc' | 'nft', facts: HostFacts, portRewrite: boolean, host: string): NatBackendChoice {
  const tcWhy = !facts.nat.tc ? 'tc is not installed' : facts.nat.actNat === 'absent' ? `kernel ${facts.kernel} has no act_nat (CONFIG_NET_ACT_NAT)` : null;
  const nftWhy = !facts.nat.nft ? 'nft is not installed' : !kernelAtLeast(facts.kernel, 5, 16) ? `kernel ${facts.kernel} is older than 5.16 (no netdev egress hook)` : null;
  if (requested === 'tc') {
    if (tcWhy) throw new PlanError(host, `nat.backend tc cannot run here: ${tcWhy}; use nat.backend nft or auto`, { usage: true });
    return { backend: 'tc', reason: 'nat.backend: tc' };
  }
  if (requested === 'nft') {
    if (nftWhy) throw new PlanError(host, `nat.backend nft cannot run here: ${nftWhy}; use nat.backend tc or auto`, { usage: true });
    return { backend: 'nft', reason: 'nat.backend: nft' };
  }
  if (!tcWhy && !portRewrite) return { backend: 'tc', reason: `auto: act_nat is ${facts.nat.actNat}` };
  if (!nftWhy) return { backend: 'nft', reason: `auto: ${portRewrite ? 'the source port must be rewritten, which tc nat cannot do' : tcWhy}` };
  throw new PlanError(host, `no stateless NAT backend works here: tc: ${portRewrite ? 'cannot rewrite ports' : tcWhy}; nft: ${nftWhy}`, { usage: true });
}
