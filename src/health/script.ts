/**
 * The health checker dsrctl installs on the proxy: one self-contained POSIX sh script (no Node on
 * the hosts) that runs verify's own per-upstream service check every interval and keeps the
 * upstream group's `server` lines (an included file) in step with what it finds. Pure: inventory
 * in, text out; every value in it is validated by the inventory schema and shell-quoted.
 */
import { quote } from 'shell-quote';
import type { Inventory } from '../inventory/schema.js';
import { serviceAliveTest, serviceProbeCommand, describeServiceCheck } from '../verify/service-check.js';
import { HANDLER_FUNCTIONS } from '../apply/render-step.js';
import { LOCK_FILE } from '../apply/lock.js';
import { REMOTE_PATH } from '../util/remote-env.js';
import { HEALTH_DIR, HEALTH_EVENTS, HEALTH_SCRIPT, HEALTH_STATE, HEALTH_UNIT, serversFile, type HealthSettings } from './settings.js';

type On = Extract<HealthSettings, { enabled: true }>;
const q = (s: string) => quote([s]);

const SERVERS_HEADER = '# Managed by the dsrctl health checker: the upstreams of dsrctl_upstreams, "down" while their service fails its check.';

export interface ServerEntry {
  name: string;
  /** ip:port */
  addr: string;
  down: boolean;
}

export const upstreamEntries = (inv: Inventory, down: ReadonlySet<string> = new Set()): ServerEntry[] =>
  inv.upstreams.map((u) => {
    const addr = `${u.ip}:${inv.service.upstream_port}`;
    return { name: u.name, addr, down: down.has(addr) };
  });

/** The included file, as apply first writes it and as the checker rewrites it (same bytes for the same states). */
export function renderServers(entries: ServerEntry[]): string {
  return [SERVERS_HEADER, ...entries.map((e) => `server ${e.addr}${e.down ? ' down' : ''}; # ${e.name}`)].join('\n') + '\n';
}

/** Pure: the `server` lines of the included file: address -> marked down. */
export function parseServers(text: string): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const line of text.split('\n')) {
    const m = /^\s*server\s+(\S+?)((?:\s+[^;#\s]+)*)\s*;/.exec(line);
    if (m) out.set(m[1]!, /\sdown\b/.test(m[2] ?? ''));
  }
  return out;
}

/** The checker as a shell script. Upstream i lives in variables suffixed i (POSIX sh has no arrays). */
export function renderHealthScript(inv: Inventory, hs: On): string {
  const servers = serversFile(inv);
  const us = upstreamEntries(inv);
  const port = inv.service.upstream_port;
  const idx = us.map((_, i) => i + 1);
  const lines: string[] = [
    '#!/bin/sh',
    `# dsrctl health checker (mode ${inv.mode}): written by dsrctl apply, stopped and removed by dsrctl rollback. Do not edit.`,
    `# Every ${hs.interval} s: ${describeServiceCheck(hs.check, inv, 'each upstream')}.`,
    `# After ${hs.fails} failed check(s) in a row an upstream is marked down in ${servers}, after ${hs.passes} passed`,
    '# check(s) it is put back, and nginx reloads. The last upstream in rotation is never taken out.',
    `# No round runs while ${LOCK_FILE} exists (a dsrctl run, rollback or switch holds the host).`,
    'set -u',
    `PATH=${REMOTE_PATH}`,
    'LC_ALL=C',
    'export PATH LC_ALL',
    'umask 022',
    `D=${q(HEALTH_DIR)}`,
    `SERVERS=${q(servers)}`,
    `STATE=${q(HEALTH_STATE)}`,
    `EVENTS=${q(HEALTH_EVENTS)}`,
    `LOCK=${q(LOCK_FILE)}`,
    `INTERVAL=${hs.interval}`,
    `FAILS=${hs.fails}`,
    `PASSES=${hs.passes}`,
    HANDLER_FUNCTIONS.trim(),
    // log PRIORITY TEXT: the events file and, where there is one, syslog
    'log() {',
    '  p=$1; shift',
    '  printf \'%s %s\\n\' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >> "$EVENTS"',
    `  if command -v logger >/dev/null 2>&1; then logger -t ${HEALTH_UNIT.replace(/\.service$/, '')} -p "daemon.$p" -- "$*"; fi`,
    '}',
    'mark() { [ "$1" = down ] && printf \' down\'; }',
    'oneline() { tr -s \'\\n\\t\' \'  \' | tr -cd \'[:print:]\' | head -c 200; }',
  ];
  for (const [i, u] of us.entries()) {
    const n = i + 1;
    lines.push(
      `name${n}=${q(u.name)}; addr${n}=${q(u.addr)}; st${n}=up; fc${n}=0; pc${n}=0; since${n}=$(date +%s); last${n}=; kept${n}=`,
      // a restart keeps what the file says (apply leaves a down upstream down)
      `grep -qF ${q(`server ${u.addr} down;`)} "$SERVERS" 2>/dev/null && st${n}=down`,
      `probe${n}() {`,
      `  out=$(${serviceProbeCommand(hs.check, inv.upstreams[i]!.ip, port, inv)})`,
      `  if ${serviceAliveTest(hs.check, inv)}; then echo ok; else echo "fail $(printf '%s' "$out" | oneline)"; fi > "$D/run/${n}"`,
      '}',
    );
  }
  lines.push(
    'render_servers() {',
    `  printf '%s\\n' ${q(SERVERS_HEADER)}`,
    ...idx.map((n) => `  printf 'server %s%s; # %s\\n' "$addr${n}" "$(mark $st${n})" "$name${n}"`),
    '}',
    'write_state() {',
    '  {',
    `    printf 'updated=%s pid=%s interval=%s fails=%s passes=%s\\n' "$(date +%s)" "$$" "$INTERVAL" "$FAILS" "$PASSES"`,
    ...idx.map((n) => `    printf '%s %s %s %s %s %s %s\\n' "$name${n}" "$addr${n}" "$st${n}" "$fc${n}" "$pc${n}" "$since${n}" "$last${n}"`),
    '  } > "$STATE.tmp" && mv -f "$STATE.tmp" "$STATE"',
    '}',
    'mkdir -p "$D/run" || exit 1',
    'echo $$ > "$D/pid"',
    'trap \'rm -rf "$D/run" "$STATE.tmp" "$SERVERS.tmp"; exit 0\' TERM INT',
    `log info "started (pid $$): every ${hs.interval} s, down after ${hs.fails} failed, up after ${hs.passes} passed check(s)"`,
    'while :; do',
    '  if [ -e "$LOCK" ]; then sleep 1 & wait $!; continue; fi',
    '  rm -f "$D"/run/[0-9]*',
    `  ${idx.map((n) => `probe${n} &`).join(' ')}`,
    '  wait',
    '  now=$(date +%s); changed=; ups=0',
    ...idx.flatMap((n) => [
      `  r=$(cat "$D/run/${n}" 2>/dev/null); [ -n "$r" ] || r='fail the check printed nothing'; last${n}=$r; was${n}=$st${n}`,
      `  if [ "$r" = ok ]; then pc${n}=$((pc${n} + 1)); fc${n}=0; kept${n}=; else fc${n}=$((fc${n} + 1)); pc${n}=0; fi`,
    ]),
    // back in first, so that an upstream coming back lets another one go out in the same round
    ...idx.map(
      (n) =>
        `  if [ $st${n} = down ] && [ $pc${n} -ge $PASSES ]; then st${n}=up; since${n}=$now; changed="$changed $name${n}:up"; log notice "$name${n} ($addr${n}) back in rotation after $pc${n} passed check(s)"; fi`,
    ),
    ...idx.map((n) => `  [ $st${n} = up ] && ups=$((ups + 1))`),
    ...idx.flatMap((n) => [
      `  if [ $st${n} = up ] && [ $fc${n} -ge $FAILS ]; then`,
      `    if [ $ups -le 1 ]; then`,
      `      [ -n "$kept${n}" ] || log crit "ALERT: $name${n} ($addr${n}) fails its check (\${last${n}#fail }) but is the last upstream in rotation: left in; every upstream is failing"`,
      `      kept${n}=1`,
      '    else',
      `      st${n}=down; since${n}=$now; ups=$((ups - 1)); changed="$changed $name${n}:down"`,
      `      log warning "$name${n} ($addr${n}) out of rotation after $fc${n} failed check(s): \${last${n}#fail }"`,
      '    fi',
      '  fi',
    ]),
    '  if [ -n "$changed" ]; then',
    '    if [ -e "$LOCK" ]; then',
    // a dsrctl run started meanwhile: no reload under its feet; the counters carry the transition to the next round
    ...idx.map((n) => `      st${n}=$was${n}`),
    '      log info "dsrctl holds the lock: transitions ($changed ) wait for the next round"',
    '    else',
    '      cp -p "$SERVERS" "$D/run/servers.prev" 2>/dev/null',
    '      if render_servers > "$SERVERS.tmp" && mv -f "$SERVERS.tmp" "$SERVERS" && err=$(nginx -t -q 2>&1); then',
    '        if err=$(dsrctl_nginx_reload 2>&1); then log info "nginx reloaded:$changed"; else log err "nginx reload after$changed: $(printf \'%s\' "$err" | oneline)"; fi',
    '      else',
    `        log err "ERROR: nginx rejected ${servers} with$changed ($(printf '%s' "\${err:-cannot write}" | oneline)): put back"`,
    '        [ -f "$D/run/servers.prev" ] && mv -f "$D/run/servers.prev" "$SERVERS"',
    ...idx.map((n) => `        st${n}=$was${n}`),
    '      fi',
    '    fi',
    '  fi',
    '  write_state',
    '  sleep "$INTERVAL" & wait $!',
    'done',
    '',
  );
  return lines.join('\n');
}

/** The systemd unit on hosts that run systemd. */
export function renderHealthUnit(): string {
  return [
    '[Unit]',
    'Description=dsrctl health checker: active checks of the nginx upstreams (DSR)',
    'After=nginx.service',
    '',
    '[Service]',
    `ExecStart=/bin/sh ${HEALTH_SCRIPT}`,
    'Restart=always',
    'RestartSec=2',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

export interface HealthUpstreamState {
  name: string;
  addr: string;
  status: 'up' | 'down';
  fails: number;
  passes: number;
  /** unix seconds of the last transition (or of the checker's start) */
  since: number;
  /** "ok" or "fail" and what the check printed */
  last: string;
}

export interface HealthState {
  updated: number;
  pid: number;
  interval: number;
  upstreams: HealthUpstreamState[];
}

/** Pure: the checker's state file (written whole by one `mv`, read whole by one `cat`). null when it is not one. */
export function parseHealthState(text: string): HealthState | null {
  const [head = '', ...rest] = text.split('\n');
  const kv = Object.fromEntries(head.split(' ').map((p) => p.split('=', 2) as [string, string]));
  if (!kv.updated || !kv.pid) return null;
  const upstreams: HealthUpstreamState[] = [];
  for (const line of rest) {
    const m = /^(\S+) (\S+) (up|down) (\d+) (\d+) (\d+) ?(.*)$/.exec(line);
    if (m) upstreams.push({ name: m[1]!, addr: m[2]!, status: m[3] as 'up' | 'down', fails: Number(m[4]), passes: Number(m[5]), since: Number(m[6]), last: m[7] ?? '' });
  }
  return { updated: Number(kv.updated), pid: Number(kv.pid), interval: Number(kv.interval ?? 0), upstreams };
}

const at = (unix: number) => new Date(unix * 1000).toISOString().replace(/\.\d+Z$/, 'Z');

/** One line per upstream the checker has taken out, for plan and verify. */
export function describeDown(state: HealthState | null, servers: Map<string, boolean> | null): string[] {
  const fromState = state?.upstreams.filter((u) => u.status === 'down') ?? [];
  if (fromState.length)
    return fromState.map((u) => `${u.name} (${u.addr}) since ${at(u.since)}: ${u.fails} failed check(s) in a row, last: ${u.last.replace(/^fail ?/, '') || 'no output'}`);
  return [...(servers ?? [])].filter(([, down]) => down).map(([addr]) => `${addr} marked down in the health checker's server list`);
}
