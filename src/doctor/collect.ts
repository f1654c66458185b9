/**
 * What doctor reads beyond the facts: one read-only POSIX sh script per host (one exec), and the
 * pure parser of its output. The wire format is the facts' one (src/facts/format.ts): sections
 * framed by `@@dsrctl-facts:begin NAME@@` / `@@dsrctl-facts:end NAME rc=N@@`.
 *
 * Everything here only reads: /proc, `iptables-*-save`, nginx's config and error log, and pings.
 */
import { quote } from 'shell-quote';
import ipaddr from 'ipaddr.js';
import type { Inventory } from '../inventory/schema.js';
import type { HostFacts } from '../facts/types.js';
import type { HostSession } from '../ssh/types.js';
import { FactsParseError, SHELL_PRELUDE, splitSections, type Section } from '../facts/format.js';
import { checkFactsPath } from '../facts/script.js';

export const DOCTOR_FORMAT_VERSION = 1;
/** lines of nginx's error log that doctor reads (the newest) */
export const ERROR_LOG_TAIL = 200;

export interface DoctorRequest {
  role: 'proxy' | 'upstream';
  /** proxy: nginx's master PID from the facts (its children are the workers) */
  masterPid?: number | null;
  /** proxy: nginx's main config (its directory is searched for error_log and proxy_bind) */
  nginxConf?: string;
  /** proxy: addresses to ping, in order */
  pingTargets?: { address: string; what: string }[];
}

export interface ProcInfo {
  pid: number;
  /** real, effective, saved, filesystem (as in /proc/PID/status) */
  uids: number[];
  /** name of the effective uid in /etc/passwd, when it has one */
  user?: string;
  /** CapEff as printed: 16 hex digits */
  capEff: string;
  /** CapBnd as printed (the bounding set: what the process and its children can ever hold); absent in older output */
  capBnd?: string;
  cmd: string;
}

export interface ErrorLogRead {
  path: string;
  status: 'ok' | 'unreadable' | 'missing';
  /** the `IP_TRANSPARENT` and `capset()` lines among the last ERROR_LOG_TAIL lines (at most 20, newest last) */
  lines: string[];
}

export interface IptablesBackendRead {
  /** false: that iptables-*-save is not installed */
  available: boolean;
  rc: number;
  /** "-A ..." lines, each prefixed by its table: "mangle: -A PREROUTING ..." */
  rules: string[];
  /** "# Warning: ..." lines iptables-nft-save prints when legacy tables exist */
  warnings: string[];
}

export interface PingRead {
  address: string;
  what: string;
  ok: boolean;
  /** round trip in ms when ok */
  rttMs?: number;
}

export interface DoctorOutput {
  /** net.ipv4.<key> values read: ip_forward, udp_early_demux */
  sysctl: Record<string, string>;
  /** interface ("all", "default", "lo", "eth0", ...) -> net.ipv4.conf.<iface>.rp_filter */
  rpFilter: Record<string, number>;
  iptables: { legacy: IptablesBackendRead; nft: IptablesBackendRead };
  /** proxy only */
  nginx?: {
    master: ProcInfo | null;
    /** the master's children: workers (and cache processes) */
    workers: ProcInfo[];
    /** `file:line:text` of proxy_bind ... transparent in the config directory */
    transparentLines: string[];
    errorLogs: ErrorLogRead[];
  };
  pings: PingRead[];
  /** status of the run /var/lib/dsrctl/last-run names (applied, committed, rolled-back, ...) */
  lastRunStatus?: string;
}

const q = (s: string) => quote([s]);

const PRELUDE = String.raw`# dsrctl doctor: read-only, POSIX sh
${SHELL_PRELUDE}# ipt NAME SAVE-COMMAND: table headers, rules and warnings of one iptables backend
ipt() {
  b "$1"
  if have "$2"; then _o=$("$2" 2>&1); _r=$?; printf '%s\n' "$_o" | grep -E '^(\*|-A |# Warning)' | head -n 300; else _r=127; fi
  e "$1" "$_r"
}
# proc PREFIX STATUS-FILE: one line about a process
proc() {
  _d=${'$'}{2%/status}
  _u=$(sed -n 's/^Uid:[[:space:]]*//p' "$2" 2>/dev/null | tr -s ' \t' ',,')
  _e=${'$'}{_u#*,}; _e=${'$'}{_e%%,*}
  printf '%s pid=%s uid=%s user=%s capeff=%s capbnd=%s cmd=%s\n' "$1" "${'$'}{_d#/proc/}" "$_u" \
    "$(awk -F: -v u="$_e" '$3 == u { print $1; exit }' /etc/passwd 2>/dev/null)" \
    "$(sed -n 's/^CapEff:[[:space:]]*//p' "$2" 2>/dev/null)" \
    "$(sed -n 's/^CapBnd:[[:space:]]*//p' "$2" 2>/dev/null)" \
    "$(tr '\0' ' ' <"$_d/cmdline" 2>/dev/null | sed 's/ *$//')"
}
`;

function checkIpv4(a: string): string {
  if (!ipaddr.IPv4.isValidFourPartDecimal(a)) throw new Error(`invalid IPv4 address ${JSON.stringify(a)}`);
  return a;
}

/** The read-only script for one host. Values that reach the shell are validated and quoted. */
export function buildDoctorScript(req: DoctorRequest): string {
  const body: string[] = [
    `  b doctor; printf 'format=%s\\n' ${DOCTOR_FORMAT_VERSION}; printf 'role=%s\\n' ${q(req.role)}; e doctor 0`,
    '  b sysctl; for _k in ip_forward udp_early_demux; do [ -r "/proc/sys/net/ipv4/$_k" ] && printf \'%s=%s\\n\' "$_k" "$(cat "/proc/sys/net/ipv4/$_k" 2>/dev/null)"; done; e sysctl 0',
    '  b rp-filter; for _f in /proc/sys/net/ipv4/conf/*/rp_filter; do [ -r "$_f" ] || continue; _i=${_f%/rp_filter}; printf \'%s=%s\\n\' "${_i##*/}" "$(cat "$_f" 2>/dev/null)"; done; e rp-filter 0',
    '  ipt ipt-legacy iptables-legacy-save',
    '  ipt ipt-nft iptables-nft-save',
    // run ids are dsrctl's own ([0-9A-Za-z-]); anything else in last-run is not followed
    "  b last-run; _id=$(cat /var/lib/dsrctl/last-run 2>/dev/null); case \"$_id\" in ''|*[!0-9A-Za-z-]*) ;; *) printf 'status=%s\\n' \"$(cat \"/var/lib/dsrctl/runs/$_id/status\" 2>/dev/null)\" ;; esac; e last-run 0",
  ];
  if (req.role === 'proxy') {
    const pid = req.masterPid;
    if (pid !== undefined && pid !== null && !(Number.isSafeInteger(pid) && pid > 0)) throw new Error(`invalid nginx master PID ${pid}`);
    const conf = checkFactsPath(req.nginxConf ?? '/etc/nginx/nginx.conf');
    const dir = conf.slice(0, conf.lastIndexOf('/')) || '/';
    body.push(
      '  b workers',
      ...(pid
        ? [
            `  if [ -r /proc/${pid}/status ]; then proc master /proc/${pid}/status; fi`,
            `  for _s in $(grep -l '^PPid:[[:space:]]*${pid}$' /proc/[0-9]*/status 2>/dev/null); do proc worker "$_s"; done`,
          ]
        : []),
      '  e workers 0',
      `  b nginx-transparent; grep -RnE '^[^#]*proxy_bind[^;]*transparent' ${q(dir)} 2>/dev/null | head -n 20; e nginx-transparent 0`,
      '  b error-log',
      '  set -f',
      `  for _f in $( { grep -RhoE '^[[:space:]]*error_log[[:space:]]+/[^[:space:];]+' ${q(dir)} 2>/dev/null | awk '{print $2}'; echo /var/log/nginx/error.log; } | sort -u); do`,
      `    printf 'file=%s\\n' "$_f"`,
      `    if [ -f "$_f" ] && [ -r "$_f" ]; then printf 'status=ok\\n'; tail -n ${ERROR_LOG_TAIL} "$_f" 2>/dev/null | grep -F -e 'IP_TRANSPARENT' -e 'capset()' | tail -n 20 | sed 's/^/line=/'`,
      `    elif [ -e "$_f" ]; then printf 'status=unreadable\\n'; else printf 'status=missing\\n'; fi`,
      '  done',
      '  set +f',
      '  e error-log 0',
    );
    const targets = req.pingTargets ?? [];
    body.push('  b ping');
    for (const t of targets) {
      const a = q(checkIpv4(t.address));
      body.push(
        `  ( _o=$(ping -n -c 1 -W 1 ${a} 2>&1) || _o=$(ping -n -c 1 -W 1 ${a} 2>&1); if [ $? -eq 0 ]; then printf 'ping %s ok %s\\n' ${a} "$(printf '%s\\n' "$_o" | sed -n 's/.*time=\\([0-9.]*\\) *ms.*/\\1/p' | head -n 1)"; else printf 'ping %s fail\\n' ${a}; fi ) &`,
      );
    }
    body.push('  wait', '  e ping 0');
  }
  body.push('  b done; e done 0');
  // one function read whole before it runs, stdin from /dev/null (see buildFactsScript)
  return `${PRELUDE}dsrctl_doctor() {\n${body.join('\n')}\n}\ndsrctl_doctor </dev/null\nexit 0\n`;
}

/** Proxy: what to ping (the guide's "Test with ping": clients and servers from the proxy). Pure. */
export function pingTargets(inv: Inventory): { address: string; what: string }[] {
  const out: { address: string; what: string }[] = inv.upstreams.map((u) => ({ address: u.ip, what: `upstream ${u.name}` }));
  const seen = new Set(out.map((t) => t.address));
  const add = (address: string, what: string) => {
    if (!seen.has(address)) out.push({ address, what });
    seen.add(address);
  };
  if (inv.verify.probe?.expect_source) add(inv.verify.probe.expect_source, 'the client (verify.probe.expect_source)');
  for (const n of inv.service.client_networks ?? []) {
    const [addr, len] = n.split('/');
    if (len === undefined || len === '32') add(addr!, `client ${n} (service.client_networks)`);
  }
  return out;
}

export function doctorRequest(inv: Inventory, role: 'proxy' | 'upstream', facts: HostFacts | undefined): DoctorRequest {
  if (role === 'upstream') return { role };
  return { role, masterPid: facts?.nginx.masterPid ?? null, nginxConf: inv.proxy.nginx_conf ?? facts?.nginx.confPath, pingTargets: pingTargets(inv) };
}

function procLine(section: string, line: string): ProcInfo {
  const m = /^(?:master|worker) pid=(\d+) uid=([\d,]*) user=(\S*) capeff=([0-9a-fA-F]*)(?: capbnd=([0-9a-fA-F]*))? cmd=(.*)$/.exec(line);
  if (!m) throw new FactsParseError(section, 'expected "master|worker pid=N uid=U,U,U,U user=NAME capeff=HEX capbnd=HEX cmd=..."', line);
  return {
    pid: Number(m[1]),
    uids: m[2]!.split(',').filter((x) => x !== '').map(Number),
    ...(m[3] ? { user: m[3] } : {}),
    capEff: m[4]!,
    ...(m[5] ? { capBnd: m[5] } : {}),
    cmd: m[6]!,
  };
}

function parseIpt(s: Section | undefined): IptablesBackendRead {
  if (!s) return { available: false, rc: 127, rules: [], warnings: [] };
  const rules: string[] = [];
  const warnings: string[] = [];
  let table = '';
  for (const line of s.body.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    else if (line.startsWith('-A ')) rules.push(`${table}: ${line}`);
    else if (line.startsWith('# Warning')) warnings.push(line);
  }
  return { available: s.rc !== 127, rc: s.rc, rules, warnings };
}

/** Parses the stdout of buildDoctorScript's script. Throws FactsParseError naming the section. */
export function parseDoctorOutput(stdout: string): DoctorOutput {
  const sections = splitSections(stdout);
  const get = (name: string) => sections.find((s) => s.name === name);
  const head = sections[0];
  if (head?.name !== 'doctor' || !head.body.split('\n').includes(`format=${DOCTOR_FORMAT_VERSION}`))
    throw new FactsParseError('doctor', 'output does not start with the doctor header (format 1)', stdout.split('\n')[0] ?? '');
  if (!get('done')) throw new FactsParseError('done', 'section missing (output truncated?)');
  const role = /^role=(\S+)$/m.exec(head.body)?.[1];

  const kv = (s: Section | undefined): [string, string][] =>
    (s?.body ?? '')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        const i = l.indexOf('=');
        if (i <= 0) throw new FactsParseError(s!.name, 'expected key=value', l);
        return [l.slice(0, i), l.slice(i + 1)];
      });

  const sysctl = Object.fromEntries(kv(get('sysctl')));
  const rpFilter: Record<string, number> = {};
  for (const [k, v] of kv(get('rp-filter'))) if (/^\d+$/.test(v)) rpFilter[k] = Number(v);

  const out: DoctorOutput = { sysctl, rpFilter, iptables: { legacy: parseIpt(get('ipt-legacy')), nft: parseIpt(get('ipt-nft')) }, pings: [] };
  const lastStatus = /^status=(\S+)$/m.exec(get('last-run')?.body ?? '')?.[1];
  if (lastStatus) out.lastRunStatus = lastStatus;

  if (role === 'proxy') {
    let master: ProcInfo | null = null;
    const workers: ProcInfo[] = [];
    for (const line of (get('workers')?.body ?? '').split('\n')) {
      if (line === '') continue;
      const p = procLine('workers', line);
      if (line.startsWith('master ')) master = p;
      else workers.push(p);
    }
    const transparentLines = (get('nginx-transparent')?.body ?? '').split('\n').filter((l) => l !== '');
    const errorLogs: ErrorLogRead[] = [];
    for (const [k, v] of kv(get('error-log'))) {
      if (k === 'file') errorLogs.push({ path: v, status: 'missing', lines: [] });
      else if (errorLogs.length === 0) throw new FactsParseError('error-log', `"${k}=" before any file=`, `${k}=${v}`);
      else if (k === 'status') errorLogs.at(-1)!.status = v === 'ok' || v === 'unreadable' ? v : 'missing';
      else if (k === 'line') errorLogs.at(-1)!.lines.push(v);
    }
    out.nginx = { master, workers, transparentLines, errorLogs };
  }
  for (const line of (get('ping')?.body ?? '').split('\n')) {
    const m = /^ping (\S+) (ok|fail) ?(\S*)$/.exec(line);
    if (!m) continue;
    out.pings.push({ address: m[1]!, what: '', ok: m[2] === 'ok', ...(m[3] ? { rttMs: Number(m[3]) } : {}) });
  }
  return out;
}

/** Runs the doctor script on one host (one exec) and parses it; `what` of each ping from the request. */
export async function collectDoctor(session: HostSession, req: DoctorRequest): Promise<DoctorOutput> {
  const res = await session.exec(buildDoctorScript(req), { timeoutMs: 30_000 });
  if (res.code !== 0) throw new Error(`${session.name}: doctor's read-only checks failed (exit ${res.code}): ${res.stderr.trim()}`);
  const out = parseDoctorOutput(res.stdout);
  return withPingLabels(out, req);
}

export function withPingLabels(out: DoctorOutput, req: DoctorRequest): DoctorOutput {
  const what = new Map((req.pingTargets ?? []).map((t) => [t.address, t.what]));
  const pings = (req.pingTargets ?? []).map((t) => out.pings.find((p) => p.address === t.address) ?? { address: t.address, what: t.what, ok: false });
  return { ...out, pings: pings.map((p) => ({ ...p, what: what.get(p.address) ?? p.what })) };
}
