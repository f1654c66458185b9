import { FactsParseError, parseKeyValues } from '../format.js';
import { parseFileSection } from '../parsers/files.js';
import type { FactSection } from './section.js';
import type { FileFact } from '../types.js';

/** The network managers dsrctl knows, by their systemd unit. */
export const NETWORK_MANAGERS = ['systemd-networkd', 'NetworkManager', 'networking'] as const;
export type NetworkManagerUnit = (typeof NETWORK_MANAGERS)[number];

/** One interface systemd-networkd manages: the .network file (and drop-ins) that configure it. */
export interface NetworkdLink {
  name: string;
  /** networkd's state of the link: configured, configuring, unmanaged, ... */
  adminState: string;
  networkFile: string | null;
  dropins: string[];
}

/** Its part of HostFacts. */
export interface NetmgrFacts {
  /**
   * Which network managers run here and what networkd configures; null without systemd (or from an
   * older facts script): nothing dsrctl could hand a persistent setting to.
   */
  netmgr?: {
    /** systemd's version (252), 0 when unknown */
    systemdVersion: number;
    /** `systemctl is-active` of each manager's unit: "active", "inactive", "failed", ... */
    units: Record<NetworkManagerUnit, string>;
    /** `systemctl is-active nftables.service`: its stop runs `nft flush ruleset` (every table, iptables-nft's too); "" when not read */
    nftables?: string;
    /** links networkd knows (from /run/systemd/netif/links) */
    networkd: NetworkdLink[];
    /** the .network files (and drop-ins) those links name, as read */
    files: Record<string, FileFact>;
  } | null;
}

/**
 * Who configures the network of a systemd host: which manager is active, and for networkd which
 * .network file each link uses (networkd's own state file for the link, as `networkctl status`
 * reads it) with that file's content. Read only where systemd runs.
 */
export const netmgr: FactSection<NetmgrFacts> = {
  id: 'netmgr',
  // read where persistence may use it (inventory persist: true); the shell itself does nothing without systemd
  optional: { notRead: () => ({ netmgr: null }) },
  repeated: ['netmgr', 'networkd-link', 'networkd-file'],
  shell: () => [
    '  if [ -d /run/systemd/system ] && have systemctl; then',
    '    b netmgr',
    "    printf 'systemd=%s\\n' \"$(systemctl --version 2>/dev/null | sed -n '1s/^systemd \\([0-9]*\\).*/\\1/p')\"",
    ...NETWORK_MANAGERS.map((u) => `    printf 'unit-${u.toLowerCase()}=%s\\n' "$(systemctl is-active ${u}.service 2>/dev/null)"`),
    "    printf 'unit-nftables=%s\\n' \"$(systemctl is-active nftables.service 2>/dev/null)\"",
    '    e netmgr 0',
    '    for _l in /sys/class/net/*; do',
    '      _i=$(cat "$_l/ifindex" 2>/dev/null) || continue',
    '      [ -r "/run/systemd/netif/links/$_i" ] || continue',
    '      b networkd-link',
    "      printf 'name=%s\\n' \"${_l##*/}\"",
    "      sed -n 's/^ADMIN_STATE=/admin_state=/p; s/^NETWORK_FILE=/network_file=/p; s/^NETWORK_FILE_DROPINS=/dropins=/p' \"/run/systemd/netif/links/$_i\"",
    '      e networkd-link 0',
    "      for _f in $(sed -n 's/^NETWORK_FILE=//p; s/^NETWORK_FILE_DROPINS=//p' \"/run/systemd/netif/links/$_i\" | tr -d '\"'); do",
    '        case "$_f" in /*) fileinfo networkd-file "$_f" ;; esac',
    '      done',
    '    done',
    '  fi',
  ],
  parse(ctx) {
    const head = ctx.all('netmgr');
    if (head.length === 0) return { netmgr: null };
    const kv = parseKeyValues('netmgr', head[0]!.body);
    const units = Object.fromEntries(NETWORK_MANAGERS.map((u) => [u, kv.get(`unit-${u.toLowerCase()}`) ?? ''])) as Record<NetworkManagerUnit, string>;
    const networkd = ctx.all('networkd-link').map((s) => {
      const l = parseKeyValues('networkd-link', s.body);
      const name = l.get('name');
      if (!name) throw new FactsParseError('networkd-link', 'no name= line', s.body.split('\n')[0] ?? '');
      const file = l.get('network_file')?.trim();
      return {
        name,
        adminState: l.get('admin_state') ?? '',
        networkFile: file ? file : null,
        dropins: (l.get('dropins') ?? '').replace(/"/g, '').split(/\s+/).filter((p) => p.startsWith('/')),
      };
    });
    const files: Record<string, FileFact> = {};
    for (const s of ctx.all('networkd-file')) {
      const f = parseFileSection(s.body, 'networkd-file');
      files[f.path] = f;
    }
    return { netmgr: { systemdVersion: Number(kv.get('systemd') || 0), units, nftables: kv.get('unit-nftables') ?? '', networkd, files } };
  },
};

/** The network manager whose service a restart of would re-run dsrctl's restore (PartOf=), if one is active. Pure. */
export function activeManager(facts: NetmgrFacts): NetworkManagerUnit | null {
  const units = facts.netmgr?.units;
  if (!units) return null;
  return NETWORK_MANAGERS.find((u) => units[u] === 'active') ?? null;
}
