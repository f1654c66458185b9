/** The proxy's and each host's dsrctl state: the journal, locks, reverted runs; other servers on the service port. Pure: evidence in, findings out. */
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
import { fixApply, procText, GUIDE_RP_FILTER_FIX } from './common.js';
import { cidr, parseCidr, overlaps, routeDstCidr, formatRoute, mainRoutes, connectedSubnets, ifaceOf, clientNetworks } from '../net.js';

export function dsrctlState(h: HostEvidence): Finding[] {
  const f = h.facts!;
  const run = f.dsrctl.journal?.trim();
  const out: Finding[] = [];
  if (f.dsrctl.reverted)
    out.push({
      id: 'dsrctl-state',
      host: h.name,
      severity: 'warn',
      title: /(^|\s)by=boot(\s|$)/.test(f.dsrctl.reverted)
        ? 'dsrctl reverted an unconfirmed run here at boot (the host rebooted before the run was confirmed): the host is not in the applied state'
        : "dsrctl's dead-man's switch reverted a run here by itself: the host is not in the applied state",
      evidence: [`/var/lib/dsrctl/reverted: ${f.dsrctl.reverted.trim()}`],
      fix: 'find out why the run was never confirmed (connection lost?), then `dsrctl apply -i INVENTORY` again',
    });
  else {
    const status = h.doctor?.lastRunStatus;
    const evidence = [
      ...(run && status ? [`/var/lib/dsrctl/runs/${run}/status: ${status}`] : []),
      ...(f.dsrctl.lock ? [`/var/lib/dsrctl/lock (a run in progress, or a dead one's): ${f.dsrctl.lock.trim()}`] : []),
    ];
    out.push({ id: 'dsrctl-state', host: h.name, evidence, ...runState(run, status) });
  }
  return out;
}

/** What the last run's status says about the host: applied, undone, or needing a person. */
function runState(run: string | undefined, status: string | undefined): Pick<Finding, 'severity' | 'title' | 'fix'> {
  if (!run) return { severity: 'info', title: 'dsrctl has applied nothing here yet (no /var/lib/dsrctl/last-run)' };
  switch (status) {
    case 'rolled-back':
    case 'committed-rolled-back':
      return { severity: 'info', title: `dsrctl run ${run}, the last one here, was rolled back: nothing dsrctl applied is in place`, fix: '`dsrctl apply -i INVENTORY` applies the mode again' };
    case 'rollback-failed':
      return { severity: 'error', title: `the rollback of dsrctl run ${run} did not complete: the host is neither as applied nor as before`, fix: 'look at /var/lib/dsrctl/runs/' + run + '/ (what each undo printed), then `dsrctl rollback -i INVENTORY` again' };
    case 'applying':
    case 'applied':
      return { severity: 'warn', title: `dsrctl run ${run} was applied here but never confirmed (status ${status}): its dead-man's switch may still revert it`, fix: 'wait for the run to finish, or `dsrctl verify -i INVENTORY`, then apply again' };
    default:
      return { severity: 'info', title: `dsrctl run ${run} is the last one applied here${status ? ` (${status})` : ''}` };
  }
}

/** Another nginx server on the service's port answers the clients (the plan refuses it too). */
export function portConflicts(inv: Inventory, h: HostEvidence): Finding[] {
  const cfg = h.facts!.nginxConfig;
  if (!cfg || cfg.status === 'absent') return [];
  const { protocol, listen_port: port } = inv.service;
  const where = `port ${port}/${protocol === 'udp' ? 'udp' : 'tcp'} on ${inv.proxy.public_ip}`;
  const base = { id: 'port-conflict', host: h.name };
  if (cfg.status === 'failed')
    return [{ ...base, severity: 'warn', title: `nginx -T failed: which servers hold ${where} is unknown`, evidence: cfg.error.split('\n').filter(Boolean), fix: "fix nginx's configuration (nginx -t says where), or connect as root" }];
  let found: ServiceConflicts;
  try {
    found = serviceConflicts(inv, cfg.dump, cfg.links);
  } catch (e) {
    return [{ ...base, severity: 'warn', title: `nginx -T's output could not be read: ${where} not checked`, evidence: [(e as Error).message] }];
  }
  if (!found.conflicts.length) return [{ ...base, severity: 'ok', title: `no other nginx server answers on ${where}`, evidence: [] }];
  return [
    {
      ...base,
      severity: 'error',
      title: found.head.replace(/:$/, ''),
      evidence: found.conflicts.map(describeConflict),
      fix: `do one of: ${conflictFixes(found).map((l) => l.replace(/^\s*- /, '')).join('; ')}`,
    },
  ];
}
