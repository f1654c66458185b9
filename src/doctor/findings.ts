/**
 * The guide's Troubleshooting as pure functions: Inventory + each host's Facts + doctor's extra
 * read-only output in, findings out (each with its evidence and the fix). No I/O.
 */
import ipaddr from 'ipaddr.js';
import type { Inventory, Upstream } from '../inventory/schema.js';
import type { HostFacts, IpRoute } from '../facts/types.js';
import { chooseNatBackend, kernelAtLeast } from '../resources/nat-backend.js';
import { currentForwardFilter, FORWARD_CHAIN, needsForwarding } from '../resources/forward-filter.js';
import { CAP_NET_ADMIN, CAP_NET_RAW, NGINX_KEEPS_CAP, decodeCaps, versionAtLeast } from '../resources/nginx/user-decision.js';
import type { DoctorOutput, ProcInfo } from './collect.js';
import { ERROR_LOG_TAIL } from './collect.js';
import type { Finding } from './types.js';
import { conflictFixes, describeConflict, serviceConflicts, type ServiceConflicts } from '../resources/nginx-port.js';

/** One host as doctor saw it. `facts`/`doctor` are absent when that stage failed (`error` says why). */
export interface HostEvidence {
  name: string;
  role: 'proxy' | 'upstream';
  upstream?: Upstream;
  facts?: HostFacts;
  doctor?: DoctorOutput;
  error?: string;
}

export { CAP_NET_ADMIN, CAP_NET_RAW, NGINX_KEEPS_CAP, decodeCaps, versionAtLeast } from '../resources/nginx/user-decision.js';
export { GUIDE_RP_FILTER_FIX } from './checks/common.js';
export { overlaps, formatRoute, connectedSubnets, clientNetworks } from './net.js';

import { dsrctlState, portConflicts } from './checks/state.js';
import { persistDrift } from './checks/persist.js';
import { nginxWorkers, errorLog } from './checks/nginx.js';
import { pings, overlap, rpFilter, upstreamRouting, policyRouting } from './checks/network.js';
import { iptablesMixed, natBackend, proxySysctls } from './checks/netfilter.js';

/** Every finding for every host, in inventory order (proxy first). Pure. */
export function diagnose(inv: Inventory, hosts: HostEvidence[]): Finding[] {
  const out: Finding[] = [];
  for (const h of hosts) {
    if (!h.facts || !h.doctor) {
      out.push({
        id: 'reach',
        host: h.name,
        severity: 'error',
        title: `could not examine ${h.name}`,
        evidence: [h.error ?? 'unknown error'],
        fix: 'check the SSH settings of this host in the inventory and that it is up (dsrctl verify uses the same connection)',
      });
      continue;
    }
    out.push(...dsrctlState(h), ...persistDrift(inv, h));
    if (h.role === 'proxy') {
      out.push(...nginxWorkers(inv, h), ...portConflicts(inv, h));
      if (h.facts.nginx.running) out.push(...errorLog(h));
      out.push(...pings(inv, h), ...overlap(inv, h), ...rpFilter(inv, h), ...proxySysctls(inv, h));
      if (inv.mode === 'ip-transparency') out.push(...policyRouting(inv, h));
      if (inv.mode === 'dsr-router-nat') out.push(...natBackend(inv, h));
      out.push(...iptablesMixed(h));
    } else {
      out.push(...upstreamRouting(inv, h), ...overlap(inv, h), ...rpFilter(inv, h));
      if (inv.mode === 'dsr-origin-nat') out.push(...natBackend(inv, h));
      out.push(...iptablesMixed(h));
    }
  }
  return out;
}
