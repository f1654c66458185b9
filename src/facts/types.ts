/** Facts: what one read-only exec per host learned about it. Plain data, produced by pure parsers. */
import type { SectionFacts } from './sections/index.js';

/** One entry of `ip -j -4 rule show`, as iproute2 prints it (extra keys kept). */
export interface IpRule {
  priority: number;
  src?: string; // "all" or an address/prefix
  fwmark?: string; // hex as printed by iproute2, e.g. "0x1"; no fwmask key means the full mask
  fwmask?: string;
  /** "main", "local", "100", ...; iproute2 omits it for rules whose action is not a lookup
   *  (blackhole, goto, ...): the parser then leaves "" here */
  table: string;
  [extra: string]: unknown;
}

/**
 * One entry of `ip -j -4 route show table all`. The parser fills in what iproute2 leaves out, so
 * parsed routes always carry type, protocol, scope, metric and table (optional here only so that
 * hand-written test data may omit them).
 */
export interface IpRoute {
  type?: string; // "local", "broadcast", "unicast", ... (iproute2 omits unicast; parser fills it)
  /** "default", "172.16.0.0/24", "127.0.0.1"...; iproute2 prints a /0 route as "default", also for
   *  `ip route add local 0.0.0.0/0 dev lo table 100` */
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string; // iproute2 omits "boot" (the default of `ip route add`); parser fills it
  scope?: string; // iproute2 omits "global"; parser fills it
  prefsrc?: string;
  metric?: number; // iproute2 omits 0; parser fills it
  table?: string; // iproute2 omits "main"; parser fills it
  flags: string[];
  [extra: string]: unknown;
}

export interface InterfaceFact {
  name: string;
  state: string; // operstate: UP, DOWN, UNKNOWN
  addresses: { family: 'inet' | 'inet6'; address: string; prefixlen: number }[];
  /** link flags as printed, e.g. ["BROADCAST","MULTICAST","UP","LOWER_UP"] */
  flags?: string[];
  ifindex?: number;
  mtu?: number;
  /** "ether", "loopback", "none" (tun), ... */
  linkType?: string;
}

export interface DirStat {
  path: string;
  uid: number;
  gid: number;
  mode: string;
}

export interface FileFact {
  path: string;
  exists: boolean;
  /** the exact bytes as a latin1 string (one char per byte, so edits keep every byte that is not
   *  edited); undefined when absent, not a regular file, or unreadable */
  content?: string;
  /** the exact bytes, base64 (what `content` decodes from; use it for non-utf8 files) */
  contentBase64?: string;
  sha256?: string;
  mode?: string; // octal, e.g. "644"
  /** "file", "dir" or "other" when it exists (symlinks are followed); "dangling" for a symlink to nothing */
  type?: 'file' | 'dir' | 'other' | 'dangling';
  /** the path with symlinks, ".", ".." and "//" resolved on the host (realpath -m) */
  realpath?: string;
  /** the path itself is a symlink */
  link?: boolean;
  /** owner uid and gid of the file (when it exists) */
  owner?: { uid: number; gid: number };
  /** the nearest existing directory above the resolved path: who can create, replace or redirect the file */
  dir?: DirStat;
  /** for a symlink: the nearest existing directory above the link itself */
  linkDir?: DirStat;
  /** false when it exists but the facts user could not read it (content then unknown, not empty) */
  readable?: boolean;
}

export interface IptablesFacts {
  /** "nft" (iptables-nft), "legacy" or null when iptables is missing */
  variant: 'nft' | 'legacy' | null;
  /** `iptables-save` output, as printed */
  save: string;
  /** tables present in the save output, with their rule lines ("-A CHAIN ...") */
  tables: Record<string, { chains: string[]; rules: string[] }>;
  /** set when iptables is installed but `iptables-save` failed (e.g. not root): tables unknown */
  error?: string;
}

export interface NginxFacts {
  installed: boolean;
  version: string | null; // "1.22.1"
  /** `--with-*` and dynamic modules that matter, e.g. "stream" */
  modules: string[];
  running: boolean;
  masterPid: number | null;
  /** path of the main config as nginx reports it (`--conf-path`) */
  confPath: string;
  /** pid file looked at: the main config's `pid` directive, else `--pid-path`, else /run/nginx.pid */
  pidFile?: string;
  /** `load_module` lines found in the main config and modules-enabled/*.conf */
  loadModules?: string[];
  /** the running master's capability bounding set (CapBnd of /proc/PID/status, 16 hex digits); workers inherit it */
  capBnd?: string;
}

export interface NginxLink {
  target: string;
  owner: string;
  mtime: string;
}

/** `nginx -T`: the effective configuration, or why it could not be read. */
export type NginxConfigFacts =
  | {
      status: 'ok';
      /** `nginx -T` stdout as printed */
      dump: string;
      /** config files that are symlinks: path -> link target as written (readlink), owner "uid:gid"
       *  and the link's own mtime ("seconds.nanoseconds"; "" when unknown) */
      links: Record<string, NginxLink>;
    }
  | { status: 'failed'; error: string }
  | { status: 'absent' };

/**
 * Everything one facts exec learned about a host: the parts of every fact in the registry
 * (src/facts/sections/, each declaring its own), and which sections could not be read.
 */
export type HostFacts = SectionFacts & {
  /** sections whose command was missing or failed, so that part of the facts is unknown
   *  (e.g. `iptables-save` as non-root); always present in parsed facts */
  incomplete?: { section: string; reason: string }[];
  /** optional facts this host was not asked for and did not read (their part of HostFacts is empty) */
  notRead?: string[];
};

/** What the facts script must read beyond the fixed set. */
export interface FactsRequest {
  sysctls: string[];
  files: string[];
  /** interfaces whose tc qdiscs and filters are read */
  interfaces?: string[];
  /** files whose copy in the oldest active dsrctl run is read (facts.journalBackups) */
  journalFiles?: string[];
  /** change ids whose undo in the oldest active dsrctl run that made one is read (facts.journalUndos) */
  journalChanges?: string[];
  /** files another program rewrites (the health checker's): read with one open, so one version */
  reads?: string[];
  /**
   * The optional facts to read (ids of sections/*: "iptables", "nat", "nginx", "health"); absent:
   * every fact. The others are read only when dsrctl's journal says an earlier run changed what
   * they read (their `leftBy`), else parsed as not read (HostFacts.notRead).
   */
  sections?: string[];
}

export interface NftFacts {
  available: boolean;
  /** `nft list ruleset` as printed */
  ruleset: string;
  /** "family name" -> the table block exactly as listed, from "table ..." to its closing "}" */
  tables: Record<string, string>;
}

export interface TcFacts {
  /** root qdisc of the device, e.g. { kind: "htb", handle: "10:" }; noqueue/pfifo_fast count as none */
  rootQdisc: { kind: string; handle: string } | null;
  qdiscs: string;
  filters: string;
}

export interface NatBackendFacts {
  /** act_nat is loaded, built in, or loadable from a module on disk */
  actNat: 'loaded' | 'builtin' | 'module' | 'absent';
  tc: boolean;
  nft: boolean;
}

export interface HealthProcessFacts {
  /** pid from the checker's pid file */
  pid: number | null;
  /** that pid runs the checker's script (not a zombie, not a recycled pid) */
  alive: boolean;
  /** systemd hosts: `systemctl is-active` / `is-enabled` of the unit */
  unitActive?: string;
  unitEnabled?: string;
}
