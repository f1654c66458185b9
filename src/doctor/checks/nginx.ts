/** nginx on the proxy: who the workers run as, with which capabilities; the error log's transparent-proxy failures. Pure: evidence in, findings out. */
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

export function nginxWorkers(inv: Inventory, h: HostEvidence): Finding[] {
  const f = h.facts!;
  const d = h.doctor!;
  const n = f.nginx;
  if (!n.installed)
    return [{ id: 'nginx-workers', host: h.name, severity: 'error', title: 'nginx is not installed on the proxy', evidence: ['`nginx -V`: command not found'], fix: 'install nginx with the stream module (Debian: apt-get install nginx libnginx-mod-stream)' }];
  if (!n.running || !d.nginx)
    return [{ id: 'nginx-workers', host: h.name, severity: 'error', title: `nginx ${n.version ?? ''} is not running`.replace('  ', ' '), evidence: [`pid file ${n.pidFile ?? '?'}: no live nginx master`], fix: 'start nginx (systemctl start nginx, or `nginx`) and look at its error log if it does not stay up' }];
  const keeps = versionAtLeast(n.version, NGINX_KEEPS_CAP);
  const workers = d.nginx.workers.filter((w) => /worker process/.test(w.cmd));
  const evidence = [
    `nginx ${n.version} (${keeps ? `>= ${NGINX_KEEPS_CAP}: workers keep CAP_NET_RAW when the config uses \`transparent\`` : `< ${NGINX_KEEPS_CAP}: only root workers can bind to client addresses`})`,
    ...(d.nginx.master ? [`master ${procText(d.nginx.master)}`] : []),
    ...workers.map((w) => `worker ${procText(w)}`),
    ...(d.nginx.transparentLines.length ? d.nginx.transparentLines.map((l) => `config: ${l}`) : ['config: no `proxy_bind ... transparent` under the nginx config directory']),
  ];
  const base = { id: 'nginx-workers', host: h.name, evidence };
  const masterBnd = d.nginx.master?.capBnd ? decodeCaps(d.nginx.master.capBnd) : null;
  const bndCut = masterBnd !== null && !masterBnd.has(CAP_NET_RAW);
  const capsetLines = (d.nginx.errorLogs ?? []).flatMap((l) => l.lines.filter((x) => /capset\(\) failed/.test(x)).map((x) => `${l.path}: ${x}`));
  const cutFix = (adminLeft: boolean) =>
    `give nginx CAP_NET_RAW back (systemd: add it to the unit's CapabilityBoundingSet=, e.g. \`systemctl edit nginx\`; a container: cap_add NET_RAW), then restart nginx (a reload keeps the master's bounding set)${adminLeft ? "; or run the workers as root (`user root;`, proxy.nginx_user: root): CAP_NET_ADMIN is left, and root workers can use it" : ''}`;
  if (workers.length === 0) {
    if (capsetLines.length || bndCut)
      return [
        {
          ...base,
          evidence: [...evidence, ...capsetLines.slice(-3)],
          severity: 'error',
          title: `nginx has no worker processes: unprivileged workers exit at start because CAP_NET_RAW was cut from nginx's capability bounding set${d.nginx.master?.capBnd ? ` (CapBnd ${d.nginx.master.capBnd})` : ''}: with \`transparent\` in the config each worker must keep CAP_NET_RAW (nginx >= ${NGINX_KEEPS_CAP}), its capset() fails, and nginx gives up respawning it`,
          fix: cutFix(masterBnd?.has(CAP_NET_ADMIN) ?? false),
        },
      ];
    return [{ ...base, severity: 'warn', title: `nginx master ${n.masterPid} has no worker processes`, fix: 'reload or restart nginx and check its error log' }];
  }
  const euid = (w: ProcInfo) => w.uids[1] ?? w.uids[0];
  const who = (w: ProcInfo) => (euid(w) === 0 ? 'root' : w.user ? `${w.user} (uid ${euid(w)})` : `uid ${euid(w)}`);
  const capable = (w: ProcInfo) => decodeCaps(w.capEff).has(CAP_NET_RAW) || decodeCaps(w.capEff).has(CAP_NET_ADMIN);
  const root = workers.every((w) => euid(w) === 0);
  if (workers.every(capable)) {
    const title = root
      ? keeps
        ? `nginx workers run as root: \`user root\` works but is not needed with nginx ${n.version} (>= ${NGINX_KEEPS_CAP} keeps CAP_NET_RAW for \`transparent\`)`
        : `nginx workers run as root, as nginx ${n.version} (< ${NGINX_KEEPS_CAP}) needs for \`transparent\``
      : `nginx workers run as ${who(workers[0]!)} and hold CAP_NET_RAW: \`transparent\` binds work, \`user root\` is not needed`;
    return [{ ...base, severity: 'ok', title }];
  }
  const w0 = workers.find((w) => !capable(w))!;
  const config = d.nginx.transparentLines.length > 0;
  if (euid(w0) === 0)
    return [
      {
        ...base,
        severity: 'error',
        title: 'nginx workers run as root but without CAP_NET_RAW or CAP_NET_ADMIN: the capability bounding set was cut (systemd CapabilityBoundingSet=, a container, setpriv), so setsockopt(IP_TRANSPARENT) fails',
        fix: "give nginx CAP_NET_RAW back (e.g. add CAP_NET_RAW to the unit's CapabilityBoundingSet= / AmbientCapabilities=, or the container's cap_add), then restart nginx (a reload keeps the master's bounding set)",
      },
    ];
  if (bndCut || (w0.capBnd && !decodeCaps(w0.capBnd).has(CAP_NET_RAW)))
    return [
      {
        ...base,
        severity: 'error',
        title: `nginx workers run as ${who(w0)} without CAP_NET_RAW, and CAP_NET_RAW was cut from nginx's capability bounding set (CapBnd ${d.nginx.master?.capBnd ?? w0.capBnd}): unprivileged workers cannot keep it for \`transparent\`, so setsockopt(IP_TRANSPARENT) fails`,
        fix: cutFix((masterBnd ?? decodeCaps(w0.capBnd ?? '')).has(CAP_NET_ADMIN)),
      },
    ];
  return [
    {
      ...base,
      severity: 'error',
      title: `nginx workers run as ${who(w0)} without CAP_NET_RAW: they cannot bind to client addresses (setsockopt(IP_TRANSPARENT) fails)${config && keeps ? '; the config asks for `transparent`, but the workers predate it' : ''}`,
      fix: !keeps
        ? fixApply(`put \`user root;\` in ${inv.proxy.nginx_conf} (nginx ${n.version} is older than ${NGINX_KEEPS_CAP}) and reload nginx (nginx -s reload)`)
        : config
          ? 'reload nginx (nginx -s reload): workers started from a config with `proxy_bind ... transparent` keep CAP_NET_RAW; or set `user root;`'
          : fixApply(`add \`proxy_bind $remote_addr transparent;\` to the proxied server and reload nginx (with nginx ${n.version} its workers then keep CAP_NET_RAW; \`user root;\` is the guide's alternative)`),
    },
  ];
}

export function errorLog(h: HostEvidence): Finding[] {
  const logs = h.doctor?.nginx?.errorLogs ?? [];
  const read = logs.filter((l) => l.status === 'ok');
  const hits = read.flatMap((l) => l.lines.filter((x) => /setsockopt\(IP_TRANSPARENT\) failed/.test(x)).map((x) => ({ path: l.path, line: x })));
  const base = { id: 'nginx-error-log', host: h.name };
  if (hits.length) {
    const privileged = (h.doctor?.nginx?.workers ?? []).filter((w) => /worker process/.test(w.cmd)).every((w) => decodeCaps(w.capEff).has(CAP_NET_RAW) || decodeCaps(w.capEff).has(CAP_NET_ADMIN));
    const paths = [...new Set(hits.map((x) => x.path))].join(', ');
    return [
      {
        ...base,
        severity: privileged ? 'warn' : 'error',
        title: `${hits.length} \`setsockopt(IP_TRANSPARENT) failed\` line(s) in the last ${ERROR_LOG_TAIL} lines of ${paths}${privileged ? ' (the current workers hold CAP_NET_RAW: the lines may predate them)' : ''}`,
        evidence: hits.slice(-5).map((x) => `${x.path}: ${x.line}`),
        fix: privileged
          ? 'if new lines keep coming, reload nginx (nginx -s reload) and check that every worker holds CAP_NET_RAW (see nginx-workers)'
          : "give the workers CAP_NET_RAW (see nginx-workers): the guide's \"Run as root\" (`user root;` in nginx.conf), or with nginx >= 1.13.8 a loaded `proxy_bind ... transparent`; workers that already run as root lack it only when nginx's capability bounding set was cut; then reload (or restart) nginx",
      },
    ];
  }
  if (read.length)
    return [{ ...base, severity: 'ok', title: `no \`setsockopt(IP_TRANSPARENT) failed\` in the last ${ERROR_LOG_TAIL} lines of ${read.map((l) => l.path).join(', ')}`, evidence: [] }];
  return [
    {
      ...base,
      severity: 'info',
      title: "could not read nginx's error log",
      evidence: logs.map((l) => `${l.path}: ${l.status}`),
      fix: 'run doctor as a user that can read the error log (root), or look for `setsockopt(IP_TRANSPARENT) failed` in it by hand',
    },
  ];
}
