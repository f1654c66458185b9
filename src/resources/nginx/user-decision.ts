/**
 * Which user nginx's workers run as: the guide's `user root;`, or the user nginx.conf already has.
 * Since nginx 1.13.8 a worker of a configuration that uses `transparent` keeps CAP_NET_RAW after it
 * drops root (prctl(PR_SET_KEEPCAPS), then capset), which is all IP_TRANSPARENT needs. The capset
 * fails when CAP_NET_RAW is not in the master's capability bounding set (systemd
 * CapabilityBoundingSet=, a container): measured in the lab, every worker then exits at start
 * ("capset() failed (1: Operation not permitted)", "exited with fatal code 2 and cannot be
 * respawned"). Pure.
 */
import type { NginxFacts } from '../../facts/types.js';

export const NGINX_KEEPS_CAP = '1.13.8';
export const CAP_NET_ADMIN = 12;
export const CAP_NET_RAW = 13;

export type NginxUserSetting = 'keep' | 'root';

export interface NginxUserDecision {
  user: NginxUserSetting;
  /** one line for the plan: which and why */
  reason: string;
  /** the host cannot do transparent binds as any user: the plan warns */
  warning?: string;
}

export function versionAtLeast(version: string | null, min: string): boolean {
  if (!version) return false;
  const a = version.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const b = min.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

/** Capability numbers set in a hex mask as /proc/PID/status prints it (CapEff, CapBnd). */
export function decodeCaps(hex: string): Set<number> {
  const out = new Set<number>();
  if (!/^[0-9a-fA-F]+$/.test(hex)) return out;
  const v = BigInt(`0x${hex}`);
  for (let i = 0; i < 64; i++) if ((v >> BigInt(i)) & 1n) out.add(i);
  return out;
}

/** `setting`: proxy.nginx_user from the inventory (undefined: not set, decide from the facts). */
export function decideNginxUser(setting: NginxUserSetting | undefined, nginx: Pick<NginxFacts, 'version' | 'running' | 'capBnd'>): NginxUserDecision {
  if (setting === 'root') return { user: 'root', reason: "proxy.nginx_user: root: the guide's `user root;`" };
  const asked = setting === 'keep' ? 'proxy.nginx_user: keep is not possible here: ' : '';
  const fallback = (why: string, warning?: string): NginxUserDecision => ({
    user: 'root',
    reason: `${asked}${why}: falling back to the guide's \`user root;\``,
    ...(warning ? { warning } : {}),
  });
  if (!versionAtLeast(nginx.version, NGINX_KEEPS_CAP))
    return fallback(`nginx ${nginx.version ?? '(version unknown)'} is older than ${NGINX_KEEPS_CAP}, whose workers keep CAP_NET_RAW for \`transparent\``);
  if (!nginx.running) return fallback("nginx is not running, so its capability bounding set is unknown (dsrctl reads it from the master's /proc/PID/status)");
  if (!nginx.capBnd) return fallback("the capability bounding set of nginx's master could not be read (/proc/PID/status)");
  const bnd = decodeCaps(nginx.capBnd);
  if (!bnd.has(CAP_NET_RAW)) {
    const warning = bnd.has(CAP_NET_ADMIN)
      ? undefined
      : `nginx's capability bounding set (CapBnd ${nginx.capBnd}) has neither CAP_NET_RAW nor CAP_NET_ADMIN: transparent proxy_bind fails as any user; give nginx CAP_NET_RAW back (systemd: CapabilityBoundingSet=, AmbientCapabilities=; containers: cap_add) and restart it`;
    return fallback(
      `nginx's capability bounding set (CapBnd ${nginx.capBnd}) lacks CAP_NET_RAW, so unprivileged workers cannot keep it (their capset fails and they exit at start)`,
      warning,
    );
  }
  return {
    user: 'keep',
    reason: `nginx ${nginx.version} >= ${NGINX_KEEPS_CAP} and CAP_NET_RAW in its capability bounding set (CapBnd ${nginx.capBnd}): the workers keep their user and hold only CAP_NET_RAW for \`transparent\` (proxy.nginx_user: ${setting ?? 'keep, the default here'}; root is the guide's way)`,
  };
}
