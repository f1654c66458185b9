/** Facts: what one read-only exec per host learned about it. Plain data, produced by pure parsers. */

/** One entry of `ip -j rule show`. */
export interface IpRule {
  priority: number;
  src?: string; // "all" or an address/prefix
  fwmark?: string; // hex as printed by iproute2, e.g. "0x1"
  fwmask?: string;
  table: string; // "main", "local", "100", ...
  [extra: string]: unknown;
}

/** One entry of `ip -j route show table all` (IPv4). */
export interface IpRoute {
  type?: string; // "local", "broadcast", "unicast" (absent means unicast)
  dst: string; // "default", "172.16.0.0/24", "0.0.0.0/0" ...
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  table?: string; // absent means main
  flags: string[];
  [extra: string]: unknown;
}

export interface InterfaceFact {
  name: string;
  state: string; // operstate: UP, DOWN, UNKNOWN
  addresses: { family: 'inet' | 'inet6'; address: string; prefixlen: number }[];
}

export interface FileFact {
  path: string;
  exists: boolean;
  /** utf8 content; undefined when absent */
  content?: string;
  sha256?: string;
  mode?: string; // octal, e.g. "644"
}

export interface IptablesFacts {
  /** "nft" (iptables-nft), "legacy" or null when iptables is missing */
  variant: 'nft' | 'legacy' | null;
  /** `iptables-save` output, as printed */
  save: string;
  /** tables present in the save output, with their rule lines ("-A CHAIN ...") */
  tables: Record<string, { chains: string[]; rules: string[] }>;
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
}

export interface HostFacts {
  hostname: string;
  kernel: string;
  uid: number;
  hasSystemd: boolean;
  interfaces: InterfaceFact[];
  rules: IpRule[];
  routes: IpRoute[];
  sysctl: Record<string, string>;
  iptables: IptablesFacts;
  nginx: NginxFacts;
  files: Record<string, FileFact>;
  /** dead-man's switch / journal state under /var/lib/dsrctl, raw */
  dsrctl: { journal: string | null; lock: string | null; reverted: string | null };
}

/** What the facts script must read beyond the fixed set. */
export interface FactsRequest {
  sysctls: string[];
  files: string[];
}
