import { FactsParseError, parseKeyValues } from '../format.js';
import { fileFacts } from './files.js';
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
  helpers: String.raw`# networkd_links: a networkd-link section per link networkd keeps state for (its ifindex read by
# the shell, one sed of its state file), then one fileinfo of every .network file and drop-in they name
networkd_links() {
  set --
  for _nl in /sys/class/net/*; do
    _ni=; { IFS= read -r _ni || [ -n "$_ni" ]; } 2>/dev/null <"$_nl/ifindex" || continue
    [ -r "/run/systemd/netif/links/$_ni" ] || continue
    b networkd-link
    printf 'name=%s\n' "${'$'}{_nl##*/}"
    _no=$(sed -n 's/^ADMIN_STATE=/admin_state=/p; s/^NETWORK_FILE=/network_file=/p; s/^NETWORK_FILE_DROPINS=/dropins=/p' "/run/systemd/netif/links/$_ni")
    out "$_no"
    e networkd-link 0
    # the files: network_file= and dropins= values, quotes dropped, split into words as the shell does
    _nw=; _q=$_no$NL
    while [ -n "$_q" ]; do
      pop
      case $_v in network_file=*) _v=${'$'}{_v#network_file=} ;; dropins=*) _v=${'$'}{_v#dropins=} ;; *) continue ;; esac
      while case $_v in *'"'*) true ;; *) false ;; esac; do _v=${'$'}{_v%%'"'*}${'$'}{_v#*'"'}; done
      _nw="$_nw $_v"
    done
    for _f in $_nw; do
      case "$_f" in /*) case " $* " in *" networkd-file $_f "*) ;; *) set -- "$@" networkd-file "$_f" ;; esac ;; esac
    done
  done
  fileinfo "$@"
}
`,
  shell: () => [
    '  if [ -d /run/systemd/system ] && have systemctl; then',
    '    b netmgr',
    "    _sv=$(systemctl --version 2>/dev/null); _sv=${_sv%%\"$NL\"*}; case $_sv in 'systemd '*) _sv=${_sv#systemd }; _sv=${_sv%%[!0-9]*} ;; *) _sv= ;; esac",
    "    printf 'systemd=%s\\n' \"$_sv\"",
    // one systemctl for every unit: one line each, in order (else each on its own, as it answers alone)
    `    _su=$(systemctl is-active ${[...NETWORK_MANAGERS, 'nftables'].map((u) => `${u}.service`).join(' ')} 2>/dev/null)$NL`,
    `    nlines "$_su"; [ "$_c" = ${NETWORK_MANAGERS.length + 1} ] || _su=`,
    ...[...NETWORK_MANAGERS, 'nftables'].map((u) => `    if [ -n "$_su" ]; then _v=\${_su%%"$NL"*}; _su=\${_su#*"$NL"}; else _v=$(systemctl is-active ${u}.service 2>/dev/null); fi; printf 'unit-${u.toLowerCase()}=%s\\n' "$_v"`),
    '    e netmgr 0',
    '    networkd_links',
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
    for (const f of fileFacts(ctx, 'networkd-file')) files[f.path] = f;
    return { netmgr: { systemdVersion: Number(kv.get('systemd') || 0), units, nftables: kv.get('unit-nftables') ?? '', networkd, files } };
  },
};

/** The network manager whose service a restart of would re-run dsrctl's restore (PartOf=), if one is active. Pure. */
export function activeManager(facts: NetmgrFacts): NetworkManagerUnit | null {
  const units = facts.netmgr?.units;
  if (!units) return null;
  return NETWORK_MANAGERS.find((u) => units[u] === 'active') ?? null;
}
