import { quote } from 'shell-quote';
import type { BootItem } from '../resources/types.js';
import { REMOTE_PATH } from '../util/remote-env.js';

/**
 * `dsrctl_default_via GW`: table main's only default route goes via GW. Every other default route
 * (another gateway, another metric: a DHCP client's, the network manager's `Gateway=`) is deleted,
 * so no second default of equal metric ever stands beside it; the one via GW is added if missing.
 */
const DEFAULT_VIA = String.raw`dsrctl_default_via() {
  _want=$1
  ip -4 route show default table main | while read -r _line; do
    set -- $_line; _gw=; _dev=; _metric=0
    while [ $# -gt 0 ]; do
      case "$1" in via) _gw=$2; shift ;; dev) _dev=$2; shift ;; metric) _metric=$2; shift ;; esac
      shift
    done
    [ "$_gw" = "$_want" ] && [ "$_metric" = 0 ] && continue
    ip route del default ${'$'}{_gw:+via "$_gw"} ${'$'}{_dev:+dev "$_dev"} metric "$_metric" table main
  done
  ip -4 route show default table main | grep -q "^default via $_want " || ip route add default via "$_want" table main
}`;

/**
 * The host's desired kernel state as one idempotent sh script: every item's lines in playbook
 * order; a failing item is reported (stderr, the unit's journal) and the others still run; exit 1
 * when any failed. Generated from the desired resources, not from a diff, so it is complete when
 * nothing changes. Deterministic (no run id, no time): the same inventory gives the same bytes.
 */
export function renderStateScript(host: string, items: BootItem[]): string {
  const lines = [
    '#!/bin/sh',
    `# dsrctl: the kernel state of ${host} that dsrctl applied, restored at boot and after a network`,
    '# manager restart by dsrctl-persist.service. Generated: the next dsrctl apply rewrites it,',
    '# dsrctl rollback removes it. Idempotent: safe to run again at any time.',
    `PATH=${REMOTE_PATH}; export PATH`,
    'rc=0',
    "dsrctl_fail() { echo \"dsrctl-persist: could not restore: $1\" >&2; rc=1; }",
  ];
  if (items.some((i) => i.lines.some((l) => l.includes('dsrctl_default_via')))) lines.push(DEFAULT_VIA);
  for (const item of items) {
    lines.push(`# ${item.what.replace(/\n/g, ' ')}`);
    for (const l of item.lines) lines.push(`{\n${l}\n} || dsrctl_fail ${quote([item.what])}`);
  }
  lines.push(`[ $rc = 0 ] && echo ${quote([`dsrctl-persist: restored ${items.length} item(s) on ${host}`])}`, 'exit $rc', '');
  return lines.join('\n');
}
