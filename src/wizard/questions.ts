/**
 * The wizard's questions as data, and per-answer validation with the inventory's own zod schema.
 *
 * Validation: the answer is put at its place in the draft inventory, the draft is completed with
 * placeholders for what has not been asked yet, and the whole thing goes through `inventorySchema`.
 * Issues that appear only because of this answer (compared with the same draft without it) are the
 * answer's problems, wherever the schema puts them: "172.16.0.0/24 contains upstream dev1" lands on
 * service.client_networks but is caused by the upstream's address being typed. Issues that mention
 * a placeholder are dropped. So one schema, one set of messages, for the file and for the prompts.
 */
import { inventorySchema } from '../inventory/schema.js';
import { fieldPath, formatIssues } from '../inventory/load.js';

export type Mode = 'ip-transparency' | 'dsr-router-nat' | 'dsr-origin-nat';
export type Protocol = 'http' | 'tcp' | 'udp';
export type Path = (string | number)[];

/** ssh options as they go into the YAML (secrets only as ${VAR} references) */
export interface SshDraft {
  user?: string;
  port?: number;
  private_key?: string;
  passphrase?: string;
  password?: string;
  agent?: string;
  known_hosts?: string;
}

export interface UpstreamDraft {
  name?: string;
  ssh_host?: string;
  ip?: string;
  interface?: string;
}

/** The inventory being built, in the YAML's shape (the fields of DESIGN.md's contract). */
export interface Draft {
  mode?: Mode;
  service?: { protocol?: Protocol; listen_port?: number; upstream_port?: number; client_networks?: string[] };
  ssh?: SshDraft;
  proxy?: {
    ssh_host?: string;
    public_ip?: string;
    public_interface?: string;
    private_ip?: string;
    private_interface?: string;
    masquerade?: boolean;
    managed_config?: string;
    take_over_port?: boolean;
  };
  upstreams?: UpstreamDraft[];
  verify?: {
    ping_targets?: string[];
    check?: 'dns' | 'http' | 'tcp' | 'none';
    probe?: { ssh_host?: string; kind?: 'http' | 'dns'; expect_source?: string; dns_query?: string };
  };
  persist?: boolean;
}

// ---------------------------------------------------------------------------------------------
// The guide's comparison table, one line per method

export interface MethodInfo {
  value: Mode;
  title: string;
  protocols: string;
  routing: string;
  healthChecks: string;
  performance: string;
}

export const METHODS: readonly MethodInfo[] = [
  {
    value: 'ip-transparency',
    title: 'Method 1: IP Transparency',
    protocols: 'TCP and UDP',
    routing: "all upstream egress is routed to the proxy and terminated there",
    healthChecks: 'passive by default (active supported)',
    performance: 'standard',
  },
  {
    value: 'dsr-router-nat',
    title: 'Method 2a: DSR, router NAT',
    protocols: 'UDP only',
    routing: 'all upstream egress is routed through the proxy, which forwards it (stateless NAT)',
    healthChecks: 'active required (passive not possible)',
    performance: 'better',
  },
  {
    value: 'dsr-origin-nat',
    title: 'Method 2b: DSR, origin NAT',
    protocols: 'UDP only',
    routing: 'upstream traffic is routed normally; replies bypass the proxy (NAT on each upstream)',
    healthChecks: 'active required (passive not possible)',
    performance: 'best',
  },
];

export function methodInfo(mode: Mode): MethodInfo {
  return METHODS.find((m) => m.value === mode)!;
}

/** "UDP only; replies ...; health checks ...; performance best" */
export function methodSummary(m: MethodInfo): string {
  return `${m.protocols}; ${m.routing}; health checks ${m.healthChecks}; performance ${m.performance}`;
}

/** The comparison as a small aligned table, printed above the method question. */
export function methodTable(): string[] {
  const rows = [
    ['', 'protocols', 'upstreams\' egress', 'health checks', 'performance'],
    ['ip-transparency', 'TCP, UDP', 'to the proxy, terminated', 'passive', 'standard'],
    ['dsr-router-nat', 'UDP only', 'through the proxy (NAT)', 'active required', 'better'],
    ['dsr-origin-nat', 'UDP only', 'direct (NAT on upstream)', 'active required', 'best'],
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => '  ' + r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd());
}

export const DSR_TCP_REASON = 'DSR works for UDP only (the guide: "DSR is of limited use for TCP protocols"); choose ip-transparency for TCP or HTTP';

export interface Choice<T> {
  value: T;
  name: string;
  description?: string;
  /** what the answered question shows (default: name) */
  short?: string;
  /** shown greyed with this reason, cannot be chosen */
  disabled?: string;
}

/** DSR: only udp can be chosen; http and tcp are shown with the reason. */
export function protocolChoices(mode: Mode): Choice<Protocol>[] {
  const dsr = mode !== 'ip-transparency';
  return [
    { value: 'http', name: 'http', description: 'HTTP: nginx http {} server, proxy_pass to the upstreams', ...(dsr ? { disabled: '(DSR: UDP only)' } : {}) },
    { value: 'tcp', name: 'tcp', description: 'any TCP service: nginx stream {} server', ...(dsr ? { disabled: '(DSR: UDP only)' } : {}) },
    {
      value: 'udp',
      name: 'udp',
      description: dsr ? 'UDP (DNS, syslog, ...): nginx stream {} server with proxy_responses 0' : 'UDP (DNS, syslog, ...): nginx stream {} server with proxy_responses 1',
    },
  ];
}

export function defaultPorts(protocol: Protocol): { listen: number; upstream: number } | undefined {
  if (protocol === 'http') return { listen: 80, upstream: 80 };
  if (protocol === 'udp') return { listen: 53, upstream: 53 };
  return undefined;
}

/** The file dsrctl owns on the proxy when nothing else is said (schema.ts's default). */
export function defaultManagedConfig(protocol: Protocol): string {
  return protocol === 'http' ? '/etc/nginx/conf.d/dsrctl.conf' : '/etc/nginx/dsrctl/stream.conf';
}

/** Masquerade only means something where the proxy is the upstreams' gateway. */
export function masqueradeApplies(mode: Mode): boolean {
  return mode !== 'dsr-origin-nat';
}

// ---------------------------------------------------------------------------------------------
// Parsing answers

/** "80" -> 80; anything else stays a string so the schema says what is wrong with it. */
export function portAnswer(s: string): number | string {
  const t = s.trim();
  return /^\d{1,6}$/.test(t) ? Number(t) : t;
}

/** "a, b c" -> ["a", "b", "c"]; "" -> [] */
export function listAnswer(s: string): string[] {
  return s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);
}

// ---------------------------------------------------------------------------------------------
// Validation with the inventory schema

const PLACEHOLDER_NAME = 'wizard-placeholder';
const PLACEHOLDER_IF = 'wizph';
/** 0.254.x.y and 0.255.x.y: in 0.0.0.0/8, which no proxy, upstream or client network uses. */
const PLACEHOLDER_IP_RE = /(^|[^\d.])0\.25[45]\.\d{1,3}\.\d{1,3}(?![\d])/;
const placeholderIp = (i: number) => `0.255.${Math.floor(i / 256) % 256}.${i % 256}`;

function mentionsPlaceholder(message: string): boolean {
  return message.includes(PLACEHOLDER_NAME) || message.includes(PLACEHOLDER_IF) || PLACEHOLDER_IP_RE.test(message);
}

function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

/** The draft made complete: every required field not yet answered gets a harmless placeholder. */
export function completeDraft(draft: Draft): Record<string, unknown> {
  const d = clone(draft);
  const mode = d.mode ?? 'ip-transparency';
  const ups = d.upstreams?.length ? d.upstreams : [{}];
  return {
    mode,
    service: { protocol: mode === 'ip-transparency' ? 'http' : 'udp', listen_port: 1, upstream_port: 1, ...d.service },
    ssh: { ...d.ssh },
    proxy: {
      ssh_host: PLACEHOLDER_NAME,
      public_ip: '0.254.0.1',
      public_interface: `${PLACEHOLDER_IF}0`,
      private_ip: '0.254.0.2',
      private_interface: `${PLACEHOLDER_IF}1`,
      ...d.proxy,
    },
    upstreams: ups.map((u, i) => ({
      name: `${PLACEHOLDER_NAME}-${i}`,
      ssh_host: PLACEHOLDER_NAME,
      ip: placeholderIp(i),
      ...(mode === 'dsr-origin-nat' ? { interface: `${PLACEHOLDER_IF}2` } : {}),
      ...u,
    })),
    ...(d.verify ? { verify: d.verify } : {}),
  };
}

/** Set (or, for undefined, delete) the value at a path, creating objects on the way. */
export function setPath(obj: Record<string, unknown>, path: Path, value: unknown): void {
  let cur: Record<string | number, unknown> = obj;
  for (const [i, key] of path.slice(0, -1).entries()) {
    let next = cur[key];
    if (next === undefined || next === null || typeof next !== 'object') {
      next = typeof path[i + 1] === 'number' ? [] : {};
      cur[key] = next;
    }
    cur = next as Record<string | number, unknown>;
  }
  const last = path[path.length - 1]!;
  if (value === undefined) delete cur[last];
  else cur[last] = value;
}

function issuesOf(raw: unknown) {
  const r = inventorySchema.safeParse(raw);
  return r.success ? [] : r.error.issues;
}

const issueKey = (i: { path: readonly PropertyKey[]; message: string }) => `${fieldPath(i.path)}\0${i.message}`;

/**
 * What the schema says about `value` at `path` in this draft: true, or one line per problem
 * ("proxy.public_ip: must be an IPv4 address like 172.16.0.11 (not a CIDR or a name) (got "x")").
 */
export function validateAt(draft: Draft, path: Path, value: unknown): true | string {
  const without = clone(draft) as Record<string, unknown>;
  setPath(without, path, undefined);
  const base = new Set(issuesOf(completeDraft(without as Draft)).map(issueKey));
  const withValue = completeDraft(draft);
  setPath(withValue, path, value);
  const fresh = issuesOf(withValue).filter((i) => !base.has(issueKey(i)));
  const lines = formatIssues(fresh, withValue).filter((l) => !mentionsPlaceholder(l));
  return lines.length ? [...new Set(lines)].join('; ') : true;
}

/** An inquirer `validate` for a text answer: parse, then validateAt. */
export function validator(draft: () => Draft, path: Path, parse: (s: string) => unknown = (s) => s.trim()): (s: string) => true | string {
  return (s: string) => validateAt(draft(), path, parse(s));
}

/** A whole draft (with secrets as references) against the schema: [] when it is a valid inventory. */
export function draftProblems(draft: Draft): string[] {
  const issues = issuesOf(draft);
  return formatIssues(issues, draft);
}

/** A copy without undefined values and empty optional objects (what goes into the YAML). */
export function pruneDraft<T>(v: T): T {
  if (Array.isArray(v)) return v.map(pruneDraft) as T;
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = pruneDraft(x);
    return out as T;
  }
  return v;
}
