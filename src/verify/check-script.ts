import { quote } from 'shell-quote';
import { randomBytes } from 'node:crypto';
import type { Inventory } from '../inventory/schema.js';
import type { Check } from './checks.js';
import { digCommand, pathCheckPath, serviceProbeCommand, tcpCommand, type ServiceCheckKind } from './service-check.js';
import { HEALTH_PID, HEALTH_STATE } from '../health/settings.js';

/*
 * A host's checks as one shell script, printing the lines check-output.ts reads. Every check
 * costs as few processes as the tools allow (the proxy runs its checks for every upstream, on
 * every run, in the exec the no-op's time depends on):
 * - all HTTP requests of a host in ONE curl (`--parallel`, curl 7.68+; the probe's in order),
 *   one `@@http` line per request from its `-w` (%{exitcode} and %{errormsg}: 7.75+), so no
 *   shell, head or base64 per request. An older curl prints no such line: then each request
 *   runs as before, one curl each (the first line says which, no `curl --version` needed);
 * - a ping is one background process; the main shell reads its status with `wait`;
 * - tools whose output is arbitrary text (dig, curl's telnet, the bodies a judge compares) write
 *   a file each in one private directory, and ONE `head -v -c N` piped to ONE `base64` prints
 *   them all at the end, when nothing else writes (check-output.ts splitHeads);
 * - one-line token answers (the health checker's pid) are printed as they are (`@@val`).
 */

/** curl refuses a --parallel-max above 300 (it falls back to 50) */
const CURL_PARALLEL_MAX = 300;

/** One HTTP request of a curl batch. */
interface HttpRequest {
  id: string;
  url: string;
  /** keep the body's start (in "$ck"/ID) for a judge that compares bodies */
  body: boolean;
  /**
   * the probe's request: -f as before (an HTTP error is curl's error, exit 22, no body), and a
   * connection of its own as each curl had: `Connection: close`, or curl would send every request
   * over its first connection, which a TCP (stream) proxy hands to one upstream only
   */
  probe?: boolean;
  /** the same request run alone, for a curl without --parallel or these -w variables */
  fallback?: string;
}

const dirFile = (id: string) => `"$ck"/${quote([id])}`;

/**
 * One curl for all `reqs`: `--parallel` (every request at once, each within `t` seconds) or in
 * order. Prints `@@http` lines and sets hb=1; if curl printed none of them, runs `fallback`
 * (else each request's) instead.
 */
function curlBatch(reqs: HttpRequest[], t: number, parallel: boolean, fallback?: string): string[] {
  const lines: string[] = [];
  for (let i = 0; i < reqs.length; i += CURL_PARALLEL_MAX) {
    const chunk = reqs.slice(i, i + CURL_PARALLEL_MAX);
    const one = (r: HttpRequest) =>
      [...(r.probe ? ['-f', '-H', quote(['Connection: close'])] : []), '--max-time', String(t), '-w', quote([`%{stdout}@@http %{exitcode} %{http_code} ${r.id} %{errormsg}\\n`]), '-o', r.body ? dirFile(r.id) : '/dev/null', quote([r.url])].join(' ');
    const global = ['-s', '--no-progress-meter', ...(parallel ? ['--parallel', '--parallel-immediate', '--parallel-max', String(Math.min(chunk.length, CURL_PARALLEL_MAX))] : [])];
    lines.push(
      `h=$(curl ${global.join(' ')} ${chunk.map(one).join(' --next ')} 2>/dev/null)`,
      `case $h in`,
      `'@@http '[0-9]*) printf '%s\\n' "$h"; hb=1 ;;`,
      `*) ${fallback ?? [RAW_FN, ...chunk.map((r) => r.fallback)].join('\n')} ;;`,
      `esac`,
    );
  }
  return lines;
}

/** raw ID: "$out" as one `@@raw ID BASE64` line, for the one-request fallbacks (old systems only) */
const RAW_FN = String.raw`raw() { printf '@@raw %s %s\n' "$1" "$(printf '%s' "$out" | base64 | tr -d '\n')"; }`;

/** One script per host: its checks in parallel where they may be. */
/**
 * Shell for one check against ip:port run alone: runs the tool and prints `@@raw ID BASE64` with
 * everything the tool said (judged by the pure functions below, not by shell patterns). Check
 * scripts use it where curl cannot batch (check-script.ts), with `raw` defined at their top.
 */
function renderServiceProbe(id: string, kind: Exclude<ServiceCheckKind, 'none'>, ip: string, port: number, inv: Inventory, path = '/'): string {
  return `out=$(${serviceProbeCommand(kind, ip, port, inv, path)}); raw ${quote([id])}`;
}

export function renderCheckScript(checks: Check[], inv: Inventory, nonce = randomBytes(8).toString('hex')): string {
  const t = inv.verify.timeout_seconds;
  const w = Math.max(1, Math.ceil(t));
  const probe = inv.verify.probe;
  const start: string[] = []; // background processes, started first
  const fore: string[] = []; // the main shell's work meanwhile
  const pings: Check[] = [];
  const batch: HttpRequest[] = [];
  const probeReqs: HttpRequest[] = [];
  let probeFallback = '';
  // files printed at the end: head's byte limit -> check ids
  const heads = new Map<number, string[]>();
  const keep = (limit: number, id: string) => heads.set(limit, [...(heads.get(limit) ?? []), id]);
  const blocks: string[] = [];
  const httpFallback = (id: string, ip: string, port: number, path: string) => `( ${renderServiceProbe(id, 'http', ip, port, inv, path)} ) &`;
  const url = (ip: string, port: number, path: string) => `http://${ip}:${port}${path}`;

  for (const c of checks) {
    const [ip = '', portText = ''] = c.target.split(':');
    const port = Number(portText);
    switch (c.kind) {
      case 'ping':
        pings.push(c);
        start.push(`${pingCommand(ip, w)} & p${pings.length}=$!`);
        break;
      case 'service-http':
        batch.push({ id: c.id, url: url(ip, port, '/'), body: false, fallback: httpFallback(c.id, ip, port, '/') });
        break;
      case 'path-http': {
        // the upstreams' own answers to the same request, and the one at the public address
        const path = pathCheckPath(nonce);
        for (const u of inv.upstreams) {
          const id = `${c.id}#${u.name}`;
          batch.push({ id, url: url(u.ip, inv.service.upstream_port, path), body: true, fallback: httpFallback(id, u.ip, inv.service.upstream_port, path) });
          keep(600, id);
        }
        batch.push({ id: c.id, url: url(ip, port, path), body: true, fallback: httpFallback(c.id, ip, port, path) });
        keep(600, c.id);
        fore.push(`echo ${quote([`@@nonce ${nonce}`])}`);
        break;
      }
      case 'service-dns':
      case 'path-dns':
        start.push(`${digCommand(ip, port, inv)} >${dirFile(c.id)} 2>&1 &`);
        keep(2000, c.id);
        break;
      case 'service-tcp':
        start.push(`${tcpCommand(ip, port, inv)} | head -c 300 >${dirFile(c.id)} &`);
        keep(300, c.id);
        break;
      case 'path-tcp': {
        // the upstreams' banners and the public address's, all at once
        for (const u of inv.upstreams) {
          start.push(`${tcpCommand(u.ip, inv.service.upstream_port, inv)} | head -c 300 >${dirFile(`${c.id}#${u.name}`)} &`);
          keep(300, `${c.id}#${u.name}`);
        }
        start.push(`${tcpCommand(ip, port, inv)} | head -c 300 >${dirFile(c.id)} &`);
        keep(300, c.id);
        break;
      }
      case 'probe-http': {
        // in order on purpose: round robin then visits every upstream once per pass
        for (let i = 0; i < probe!.requests; i++) {
          probeReqs.push({ id: `${c.id}#${i}`, url: url(ip, port, '/'), body: true, probe: true });
          keep(300, `${c.id}#${i}`);
        }
        probeFallback = [
          `i=0; while [ $i -lt ${probe!.requests} ]; do`,
          `  body=$(curl -sS -f --max-time ${t} ${quote([url(ip, port, '/')])} 2>&1 | head -c 300 | tr '\\n' ' ')`,
          `  echo "@@probe $body"; i=$((i+1))`,
          'done',
        ].join('\n');
        break;
      }
      case 'probe-dns':
        // in order, like the HTTP probe
        for (let i = 0; i < probe!.requests; i++) {
          fore.push(`${digCommand(ip, port, inv)} >${dirFile(`${c.id}#${i}`)} 2>&1`);
          keep(2000, `${c.id}#${i}`);
        }
        break;
      case 'health':
        // the pid file, whether that pid runs the checker (not a zombie), and its state file
        fore.push(
          `hp=; read -r hp 2>/dev/null <${quote([HEALTH_PID])}; case $hp in *[!0-9]*) hp= ;; esac`,
          `ha=0; [ -n "$hp" ] && read -r x1 x2 hs x3 2>/dev/null </proc/"$hp"/stat && [ "$hs" != Z ] && grep -q 'dsrctl/health/check\\.sh' /proc/"$hp"/cmdline 2>/dev/null && ha=1`,
          `echo "@@val ${c.id}#pid $ha $hp"`,
        );
        blocks.push(`echo '@@raw64 ${c.id}'; base64 2>/dev/null <${quote([HEALTH_STATE])}; echo @@end`);
        break;
      case 'note':
        break;
    }
  }

  const lines = ['#!/bin/sh', 'set -u', 'hb=0'];
  const files = [...heads.values()].flat();
  if (files.length) lines.push('ck=$(mktemp -d) || exit 1');
  lines.push(...start, ...fore);
  if (batch.length) lines.push(...curlBatch(batch, t, true));
  if (probeReqs.length) lines.push(...curlBatch(probeReqs, t, false, probeFallback));
  // a ping that fails is asked once more (a first packet lost to ARP)
  pings.forEach((c, i) => lines.push(`if wait $p${i + 1}; then p${i + 1}=; ${ok(c.id, 'reply')}; else ${pingCommand(c.target, w)} & p${i + 1}=$!; fi`));
  pings.forEach((c, i) => lines.push(`[ -z "$p${i + 1}" ] || if wait $p${i + 1}; then ${ok(c.id, 'reply')}; else ${fail(c.id, `no reply within ${w}s (twice)`)}; fi`));
  lines.push('wait');
  // the files of requests curl ran in a batch (hb=1); a one-request fallback printed its own
  const bodies = new Set(batch.concat(probeReqs).filter((r) => r.body).map((r) => r.id));
  for (const [limit, ids] of heads) {
    const fromCurl = ids.filter((id) => bodies.has(id));
    const others = ids.filter((id) => !bodies.has(id));
    if (fromCurl.length) lines.push(`[ $hb = 0 ] || { echo @@heads64; head -v -c ${limit} -- ${fromCurl.map(dirFile).join(' ')} 2>/dev/null | base64; echo @@end; }`);
    if (others.length) lines.push(`echo @@heads64; head -v -c ${limit} -- ${others.map(dirFile).join(' ')} 2>/dev/null | base64; echo @@end`);
  }
  lines.push(...blocks);
  if (files.length) lines.push('rm -rf "$ck"');
  lines.push('');
  return lines.join('\n');
}

const pingCommand = (ip: string, w: number) => `ping -n -c 1 -W ${w} ${quote([ip])} >/dev/null 2>&1`;
const ok = (id: string, detail: string) => `echo ${quote([`@@check ${id} ok ${detail}`])}`;
const fail = (id: string, detail: string) => `echo ${quote([`@@check ${id} fail ${detail}`])}`;
