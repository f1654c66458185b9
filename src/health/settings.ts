import { posix } from 'node:path';
import type { Inventory } from '../inventory/schema.js';
import { chooseServiceCheck, type ServiceCheckKind } from '../verify/service-check.js';
import { STATE_DIR } from '../apply/paths.js';

/** Where the checker lives on the proxy. Its state is its own: apply never compares it. */
export const HEALTH_DIR = `${STATE_DIR}/health`;
export const HEALTH_SCRIPT = `${HEALTH_DIR}/check.sh`;
export const HEALTH_PID = `${HEALTH_DIR}/pid`;
/** one line per upstream, replaced whole (mv) every round: one `cat` reads one consistent version */
export const HEALTH_STATE = `${HEALTH_DIR}/state`;
export const HEALTH_EVENTS = `${HEALTH_DIR}/events.log`;
export const HEALTH_UNIT = 'dsrctl-health.service';
export const HEALTH_UNIT_FILE = `/etc/systemd/system/${HEALTH_UNIT}`;

/** The upstream group's `server` lines, included by the managed config and rewritten by the checker (not `.conf`: no conf.d glob picks it up). */
export const serversFile = (inv: Inventory) => posix.join(posix.dirname(inv.proxy.nginx_conf), 'dsrctl-health.servers');

export type HealthSettings =
  | { enabled: true; interval: number; fails: number; passes: number; check: Exclude<ServiceCheckKind, 'none'>; reason: string }
  | { enabled: false; reason: string };

/** NGINX Plus's health_check defaults: interval=5s fails=1 passes=1. */
export const HEALTH_DEFAULTS = { interval: 5, fails: 1, passes: 1 } as const;

/** On by default for DSR (nginx sees no reply, so it has no passive checks), opt-in for Method 1; never without a check that speaks the service. */
export function healthSettings(inv: Inventory): HealthSettings {
  const h = inv.health;
  const wanted = h === undefined ? inv.mode !== 'ip-transparency' : h !== false;
  if (!wanted)
    return { enabled: false, reason: h === false ? 'health: false' : `off by default for ${inv.mode} (nginx's passive checks work there); set health: true to turn it on` };
  const svc = chooseServiceCheck(inv);
  if (svc.kind === 'none') return { enabled: false, reason: `no health checker: no check speaks this service (${svc.reason})` };
  const t = typeof h === 'object' ? h : HEALTH_DEFAULTS;
  const why = h === undefined ? `on by default for ${inv.mode}` : 'health in the inventory';
  return { enabled: true, interval: t.interval, fails: t.fails, passes: t.passes, check: svc.kind, reason: `${why}; check ${svc.kind} (${svc.reason})` };
}
