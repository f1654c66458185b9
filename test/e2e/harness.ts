/**
 * End-to-end harness: the real CLI (dist/cli.js) against the lab (test/lab/lab.sh).
 * Every e2e file runs alone (vitest.config.ts: fileParallelism false) because they share the lab.
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(ROOT, 'dist/cli.js');
export const LAB = join(ROOT, 'test/lab/lab.sh');
/**
 * The e2e lab has its own prefix, state dir, inventory and management net, so it never collides
 * with a lab a person (or the demo, or the benchmark) has up with the defaults.
 */
/**
 * Each e2e file runs in a worker of its own and gets a lab of its own (prefix, state dir,
 * management net), so files run in parallel without sharing namespaces or addresses.
 * VITEST_WORKER_ID is unique per file run; VITEST_POOL_ID is not (with several projects vitest
 * gave every concurrent e2e file pool 1). DSR_E2E_PREFIX / DSR_E2E_OCTET override it.
 */
const WORKER = Number(process.env.VITEST_WORKER_ID ?? '1');
/**
 * DSR_E2E_TAG and DSR_E2E_OCTET_BASE let two test runs (two checkouts) share the machine: each
 * run's labs get prefixes e2e<tag><worker> and management nets 10.211.<base+worker>.0/24.
 */
const TAG = process.env.DSR_E2E_TAG ?? '';
const PREFIX = process.env.DSR_E2E_PREFIX ?? `e2e${TAG}${WORKER}`;
// worker ids count every test file of the run (unit ones too): the octets stay within base..base+119,
// and checkout-anywhere's demos use base+130.. (they run beside another file's lab)
const OCTET = process.env.DSR_E2E_OCTET ?? String((Number(process.env.DSR_E2E_OCTET_BASE ?? '100') + (WORKER % 120)) % 250);
/** Lab state lives outside the checkout: each lab host mounts its own /root and /tmp over it. */
export const LAB_DIR = `/var/lib/dsrctl-lab/${PREFIX}`;
export const LAB_INVENTORY = join(LAB_DIR, 'lab.yaml');
export const LAB_ENV: NodeJS.ProcessEnv = { DSR_LAB_PREFIX: PREFIX, DSR_LAB_DIR: LAB_DIR, DSR_LAB_INVENTORY: LAB_INVENTORY, DSR_LAB_MGMT_OCTET: OCTET };
/** The hosts dsrctl manages in a lab built with the default four upstreams (DSR_LAB_UPSTREAMS unset). */
export const HOSTS = ['proxy', 'dev1', 'dev2', 'dev3', 'dev4'] as const;
export const UPSTREAMS: readonly string[] = ['dev1', 'dev2', 'dev3', 'dev4'];
/** The upstreams of a lab built with DSR_LAB_UPSTREAMS=n: dev1..devN. */
export const upstreamNames = (n: number): string[] => Array.from({ length: n }, (_, i) => `dev${i + 1}`);

export function lab(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync('bash', [LAB, ...args], { encoding: 'utf8', env: { ...process.env, ...LAB_ENV, ...env }, maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Builds the file's lab: the guide's four upstreams unless env says DSR_LAB_UPSTREAMS. */
export function labUp(env: NodeJS.ProcessEnv = {}): void {
  const r = lab(['up'], { DSR_LAB_UPSTREAMS: '4', ...env });
  if (r.code !== 0) throw new Error(`lab up failed:\n${r.stdout}\n${r.stderr}`);
}

export function labDown(): void {
  lab(['down']);
}

/** Run a command inside a lab host. */
export function onHost(host: string, cmd: string[] | string): { code: number; stdout: string; stderr: string } {
  return lab(['exec', host, '--', ...(typeof cmd === 'string' ? ['sh', '-c', cmd] : cmd)]);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed, when --json was given */
  json?: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** The built CLI, as a user runs it (no TTY). */
export function dsrctl(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 170_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const res: CliResult = { code: code ?? -1, stdout, stderr };
      if (args.includes('--json')) {
        try {
          res.json = JSON.parse(stdout);
        } catch {
          /* left undefined: the test will say so */
        }
      }
      resolve(res);
    });
  });
}

/** `dsrctl ARGS -i INVENTORY` (the lab's by default). */
export function run(args: string[], inventory = LAB_INVENTORY, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return dsrctl([...args, '-i', inventory], { env });
}

/**
 * Everything dsrctl may touch on a host, as text: compared byte for byte before and after a
 * rollback. Counters are zeroed; nothing else is normalised.
 */
export const SNAPSHOT_SCRIPT = String.raw`
echo '## ip rule'; ip rule show
echo '## ip route (all tables)'; ip route show table all
echo '## ip -6 route (all tables)'; ip -6 route show table all
echo '## iptables-save'; iptables-save | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[0:0]/'
echo '## nft list ruleset'; nft list ruleset | sed 's/counter packets [0-9]* bytes [0-9]*/counter packets 0 bytes 0/'
echo '## tc'; for d in $(ls /sys/class/net); do echo "# $d"; tc qdisc show dev "$d" | sed 's/direct_packets_stat [0-9]*/direct_packets_stat 0/'; tc filter show dev "$d"; tc filter show dev "$d" egress 2>/dev/null; done
echo '## sysctl'; sysctl net.ipv4.ip_forward net.ipv4.udp_early_demux net.ipv4.conf.all.rp_filter net.ipv4.conf.default.rp_filter
echo '## /etc/nginx'; find /etc/nginx -type f -o -type l | sort | while read -r f; do echo "# $f $(stat -c '%a %U %G %s' "$f") $(sha256sum < "$f" | cut -c1-64)"; done
`;

export function snapshot(host: string): string {
  const r = onHost(host, SNAPSHOT_SCRIPT);
  if (r.code !== 0) throw new Error(`snapshot of ${host} failed: ${r.stderr}`);
  return r.stdout;
}

/**
 * Wait until no host has a tentative IPv6 address: right after `lab up` duplicate address
 * detection is still running, and each finished DAD adds a `local fe80::...` route, so a
 * snapshot taken too early differs from any later one for reasons that are not dsrctl's.
 */
export function waitForIpv6Settled(hosts: readonly string[] = HOSTS, timeoutMs = 10_000): void {
  const tries = Math.ceil(timeoutMs / 100);
  for (const h of hosts) {
    const r = onHost(h, `for i in $(seq ${tries}); do [ -z "$(ip -6 addr show tentative)" ] && exit 0; sleep 0.1; done; ip -6 addr show tentative; exit 1`);
    if (r.code !== 0) throw new Error(`${h}: IPv6 addresses still tentative after ${timeoutMs} ms:\n${r.stdout}${r.stderr}`);
  }
}

export function snapshotAll(hosts: readonly string[] = HOSTS): Record<string, string> {
  return Object.fromEntries(hosts.map((h) => [h, snapshot(h)]));
}

/** The guide's test: four curls from the client; returns the addresses the upstreams saw. */
export function curlSources(times = 4, url = 'http://192.168.99.10/'): string[] {
  const out: string[] = [];
  for (let i = 0; i < times; i++) {
    const r = onHost('client', ['curl', '-sS', '--max-time', '3', url]);
    out.push(/You connected from ([0-9.]+):/.exec(r.stdout)?.[1] ?? `no answer: ${r.stdout}${r.stderr}`.trim());
  }
  return out;
}

/** A copy of the lab inventory with a change, written to a temp file. */
export function inventoryVariant(edit: (yaml: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'dsrctl-inv-'));
  const file = join(dir, 'inventory.yaml');
  writeFileSync(file, edit(readFileSync(LAB_INVENTORY, 'utf8')));
  return file;
}

/** A lab inventory variant made by replacing text that must be there (so a changed lab.sh fails loudly here). */
export function inventoryReplacing(from: string | RegExp, to: string): string {
  return inventoryVariant((y) => {
    const out = y.replace(from, to);
    if (out === y) throw new Error(`inventory variant: ${String(from)} not found in ${LAB_INVENTORY}`);
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Fault-injection helpers (rollback.test.ts, faults.test.ts)

export interface LiveRun {
  child: ReturnType<typeof spawn>;
  /** stdout + stderr so far, interleaved as they arrived */
  output(): string;
  /** Resolves when a line of stdout or stderr matches `re` (rejects when the run ends first or after `timeoutMs`). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves when the process has exited. */
  done: Promise<CliResult>;
}

/**
 * The built CLI, spawned so that a test can watch its output line by line and act at a given
 * moment (kill it, break a link). Resolves `done` on exit, like dsrctl().
 */
export function dsrctlLive(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): LiveRun {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let all = '';
  // progress lines come on stderr, results on stdout: a test waits for a line of either
  const bufs = { out: '', err: '' };
  const waiters: { re: RegExp; resolve: (l: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  const seenLines: string[] = [];
  const onLine = (line: string) => {
    seenLines.push(line);
    for (const w of [...waiters])
      if (w.re.test(line)) {
        clearTimeout(w.timer);
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
  };
  const feed = (which: 'out' | 'err', s: string) => {
    all += s;
    bufs[which] += s;
    let i: number;
    while ((i = bufs[which].indexOf('\n')) >= 0) {
      onLine(bufs[which].slice(0, i));
      bufs[which] = bufs[which].slice(i + 1);
    }
  };
  // decoded as streams: a multi-byte character ("✔") split across two chunks stays whole
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    stdout += d;
    feed('out', d);
  });
  child.stderr!.on('data', (d: string) => {
    stderr += d;
    feed('err', d);
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 170_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      for (const b of [bufs.out, bufs.err]) if (b) onLine(b);
      for (const w of waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error(`dsrctl ended (exit ${code ?? signal}) before a line matched ${w.re}:\n${all}`));
      }
      resolve({ code: code ?? (signal ? 128 + (signal === 'SIGKILL' ? 9 : 15) : -1), stdout, stderr });
    });
  });
  return {
    child,
    output: () => all,
    done,
    waitFor(re, timeoutMs = 60_000) {
      const hit = seenLines.find((l) => re.test(l));
      if (hit !== undefined) return Promise.resolve(hit);
      if (child.exitCode !== null || child.signalCode !== null) return Promise.reject(new Error(`dsrctl already ended before a line matched ${re}:\n${all}`));
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => {
          waiters.splice(waiters.findIndex((w) => w.timer === t), 1);
          reject(new Error(`no line matched ${re} within ${timeoutMs} ms:\n${all}`));
        }, timeoutMs);
        waiters.push({ re, resolve, reject, timer: t });
      });
    },
  };
}

/** PID of a lab host's listening sshd (lab.sh pids HOST). */
export function sshdPid(host: string): number {
  const r = lab(['pids', host]);
  const pid = Number(r.stdout.trim());
  if (r.code !== 0 || !Number.isInteger(pid) || pid <= 0) throw new Error(`lab.sh pids ${host} failed: ${r.stdout}${r.stderr}`);
  return pid;
}

/** The SSH session processes of a host: the children of its listening sshd (not the sshd itself). */
export function sshSessionPids(host: string): number[] {
  const parent = sshdPid(host);
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(parent)], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((p) => Number.isInteger(p) && p > 0 && p !== parent);
}

/** SIGKILL every SSH session of a host (never its listening sshd). Returns the PIDs killed. */
export function killSshSessions(host: string): number[] {
  const pids = sshSessionPids(host);
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  return pids;
}

/** The content of /var/lib/dsrctl/lock on each host ('' when there is none). */
export function locks(hosts: readonly string[] = HOSTS): Record<string, string> {
  return Object.fromEntries(hosts.map((h) => [h, onHost(h, 'cat /var/lib/dsrctl/lock 2>/dev/null || true').stdout.trim()]));
}

/** Hosts whose snapshot differs from `before` (empty when every host is as it was). */
export function changedHosts(before: Record<string, string>, hosts: readonly string[] = Object.keys(before)): string[] {
  return hosts.filter((h) => snapshot(h) !== before[h]);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `fn` until it returns true or `timeoutMs` passes; returns its last answer. */
export async function waitUntil(fn: () => boolean, timeoutMs: number, stepMs = 500): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (fn()) return true;
    if (Date.now() >= end) return false;
    await sleep(stepMs);
  }
}

/**
 * snapshotAll() once the lab has settled. Right after `lab.sh up` the hosts' IPv6 link-local
 * addresses are still tentative (duplicate address detection, ~1-2 s); their `local fe80::...`
 * routes (in SNAPSHOT_SCRIPT's `ip -6 route show table all`) appear only when it ends. A "before"
 * snapshot taken earlier differs from every later one although dsrctl touched nothing.
 */
export async function settledSnapshotAll(hosts: readonly string[] = HOSTS, timeoutMs = 15_000): Promise<Record<string, string>> {
  const end = Date.now() + timeoutMs;
  let prev: Record<string, string> | undefined;
  for (;;) {
    const tentative = hosts.filter((h) => onHost(h, 'ip -6 addr show tentative').stdout.trim() !== '');
    if (!tentative.length) {
      const now = snapshotAll(hosts);
      if (prev && hosts.every((h) => prev![h] === now[h])) return now;
      prev = now;
    } else prev = undefined;
    if (Date.now() > end) throw new Error(`lab did not settle within ${timeoutMs} ms (tentative IPv6 addresses on: ${tentative.join(', ') || 'none'}; snapshots still changing)`);
    await sleep(500);
  }
}
