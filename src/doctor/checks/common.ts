/** Wording shared by doctor's checks. */
import ipaddr from 'ipaddr.js';
import type { Inventory, Upstream } from '../../inventory/schema.js';
import type { HostFacts, IpRoute } from '../../facts/types.js';
import { chooseNatBackend, kernelAtLeast } from '../../resources/nat-backend.js';
import { currentForwardFilter, FORWARD_CHAIN, needsForwarding } from '../../resources/forward-filter.js';
import { CAP_NET_ADMIN, CAP_NET_RAW, NGINX_KEEPS_CAP, decodeCaps, versionAtLeast } from '../../resources/nginx/user-decision.js';
import type { DoctorOutput, ProcInfo } from '../collect.js';
import { ERROR_LOG_TAIL } from '../collect.js';
import type { Finding } from '../types.js';
import { conflictFixes, describeConflict, serviceConflicts, type ServiceConflicts } from '../../resources/nginx-port.js';

import type { HostEvidence } from '../findings.js';

/** the guide's "Missing Packets" fix */
export const GUIDE_RP_FILTER_FIX = 'for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > $f ; done';

export const fixApply = (what: string) => `${what}, or run \`dsrctl apply -i INVENTORY\`, which does it`;
export const procText = (p: ProcInfo) => {
  const caps = decodeCaps(p.capEff);
  const named = [caps.has(CAP_NET_ADMIN) && 'CAP_NET_ADMIN', caps.has(CAP_NET_RAW) && 'CAP_NET_RAW'].filter(Boolean);
  const bnd = p.capBnd ? decodeCaps(p.capBnd) : null;
  const cut = bnd && !bnd.has(CAP_NET_RAW) ? ` (no CAP_NET_RAW${bnd.has(CAP_NET_ADMIN) ? '' : ', no CAP_NET_ADMIN'})` : '';
  return `pid ${p.pid} "${p.cmd}": uid ${new Set(p.uids).size === 1 ? p.uids[0] : p.uids.join(' ')}${p.user ? ` (${p.user})` : ''}, CapEff ${p.capEff}${named.length ? ` = ${named.join(' + ')}${caps.size > named.length ? ' among others' : ' only'}` : ' (no CAP_NET_RAW, no CAP_NET_ADMIN)'}${p.capBnd ? `, CapBnd ${p.capBnd}${cut}` : ''}`;
};
