#!/usr/bin/env node
/**
 * dsrctl scale bench on the lab (needs root):  npm run bench -- --upstreams 3,30,100
 *
 * For each upstream count N it builds its own lab (test/lab/lab.sh with DSR_LAB_UPSTREAMS=N, prefix
 * "dsrbench", management net 10.211.213.0/24, state in /var/lib/dsrctl-lab/dsrbench/, so it never
 * touches a lab someone else is using), then measures in the same run:
 *   - the SSH floor: a program that connects with ssh2 to every host of the inventory at once and
 *     runs `true` on each (bench/ssh-floor.mjs: node's start-up, loading ssh2, reading the key, the
 *     connections and the execs), timed as a whole process like every dsrctl run (median of 3);
 *     beside it, for reference, the same connections from inside the bench's own process
 *   - the first `apply --yes --json`, a no-op apply (median of --noop-runs, default 5), `plan --json`,
 *     `rollback --yes --json`, and a plan after the rollback (it must plan what the first apply did)
 * and prints per phase: wall time; the controller's CPU (the CLI child's rusage, /usr/bin/time); the
 * hosts' CPU (every lab host's sshd, nginx and dnsmasq with their reaped descendants, from
 * /proc/PID/stat: all that dsrctl made the hosts do, whatever else loads the machine); their sum
 * per host, which is the run's whole-machine CPU; the raw /proc/stat delta beside it (everything
 * the machine did meanwhile, other load included); SSH exec requests per host (each --json
 * document's hosts[].execs); processes started per host by a no-op, per role (proxy, an upstream,
 * the probe), counted exactly by `strace -f` on that host's sshd during one extra, untimed no-op;
 * and how each grows with N (the slope between the two largest N). The lab is always taken down
 * (also on SIGINT/SIGTERM). Times need a quiet machine: the bench prints the load average at the
 * start and the end and warns when the machine is busy.
 *
 * Targets (issue 10; exit 1 when one is missed, or when any run fails or leaves the lab changed):
 *   - 3 upstreams: no-op median <= 700 ms + node's start-up (`node -e 0`, median of 5)
 *   - 30 upstreams: no-op median <= 5 s, first apply <= 7 s
 *   - 100 upstreams: first apply, no-op and rollback succeed, no-op median <= 15 s
 *   - whole-machine CPU (controller + hosts) per upstream per no-op <= 0.2 CPU-s at 30 upstreams
 *   - controller CPU of a no-op grows by <= 15 ms per added host (slope between the two largest N)
 *   - a no-op apply makes <= 1 exec request per host (every N)
 *   - no-op median <= 1.5 x the SSH floor (N >= 30; at 3 the start-up dominates). Both are whole
 *     processes: the issue's floor is "N parallel ssh2 connections each running true", a program
 *     that starts and loads ssh2 as dsrctl does (see bench/ssh-floor.mjs)
 * Targets whose N was not run are reported as not checked.
 *
 * Options: --upstreams LIST (default 3,30), --noop-runs N (default 5; env BENCH_NOOP_RUNS).
 * Environment: DSRCTL_CLI (default dist/cli.js), DSR_LAB_PREFIX / DSR_LAB_MGMT_OCTET / DSR_LAB_DIR
 * (defaults dsrbench / 213 / /var/lib/dsrctl-lab/dsrbench), BENCH_RUN_TIMEOUT_S (default 300).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connectAllRunTrue } from './ssh-floor.mjs';
import { parse as parseYaml } from 'yaml';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = resolve(REPO, process.env.DSRCTL_CLI ?? 'dist/cli.js');
const LAB_DIR = resolve(REPO, process.env.DSR_LAB_DIR ?? '/var/lib/dsrctl-lab/dsrbench');
const INVENTORY = join(LAB_DIR, 'inventory.yaml');
const LAB_ENV = {
  ...process.env,
  DSR_LAB_PREFIX: process.env.DSR_LAB_PREFIX ?? 'dsrbench',
  DSR_LAB_MGMT_OCTET: process.env.DSR_LAB_MGMT_OCTET ?? '213',
  DSR_LAB_DIR: LAB_DIR,
  DSR_LAB_INVENTORY: INVENTORY,
};
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const RUN_TIMEOUT_MS = Number(process.env.BENCH_RUN_TIMEOUT_S ?? 300) * 1000;
const CORES = cpus().length;

const TARGET = {
  noop3ms: 700, // + node start-up
  noop30ms: 5000,
  first30ms: 7000,
  noop100ms: 15000,
  cpuPerUpstream30: 0.2, // CPU-s, whole machine, per no-op
  slopeMsPerHost: 15, // controller CPU of a no-op
  noopExecs: 1,
  floorFactor: 1.5,
};

const { values: opts } = parseArgs({
  options: {
    upstreams: { type: 'string', default: '3,30' },
    'noop-runs': { type: 'string', default: process.env.BENCH_NOOP_RUNS ?? '5' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (opts.help) {
  console.log('usage: npm run bench -- [--upstreams 3,30,100] [--noop-runs 5]');
  process.exit(0);
}
const COUNTS = opts.upstreams.split(',').map((s) => Number(s.trim()));
const NOOP_RUNS = Number(opts['noop-runs']);
if (!COUNTS.length || COUNTS.some((n) => !Number.isInteger(n) || n < 1 || n > 200) || !Number.isInteger(NOOP_RUNS) || NOOP_RUNS < 1) {
  console.error('bench: --upstreams takes counts 1-200 separated by commas (e.g. 3,30,100); --noop-runs a count >= 1');
  process.exit(2);
}

const scratch = mkdtempSync(join(tmpdir(), 'dsrctl-bench-'));
let child = null;
let labUp = false;

function lab(args, n) {
  return spawnSync('bash', [join(REPO, 'test/lab/lab.sh'), ...args], { env: { ...LAB_ENV, ...(n ? { DSR_LAB_UPSTREAMS: String(n) } : {}) }, encoding: 'utf8', maxBuffer: 64 << 20 });
}

function labDown() {
  if (!labUp) return;
  labUp = false;
  const r = lab(['down']);
  if (r.status !== 0) process.stderr.write(`lab down failed:\n${r.stderr}`);
}

function cleanup() {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  labDown();
  rmSync(scratch, { recursive: true, force: true });
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: taking the lab down\n`);
    cleanup();
    process.exit(130);
  });
}

/** Whole-machine counters: busy CPU seconds (all but idle and iowait) and processes forked since boot. */
function machine() {
  const stat = readFileSync('/proc/stat', 'utf8');
  const cpu = stat.match(/^cpu +(.*)$/m)[1].trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const busy = cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + (cpu[7] ?? 0);
  return { cpuS: busy / 100, processes: Number(stat.match(/^processes (\d+)$/m)[1]), t: performance.now() };
}
const delta = (a, b) => ({ cpuS: b.cpuS - a.cpuS, processes: b.processes - a.processes, ms: b.t - a.t });

/**
 * CPU ms the lab's hosts have spent: each host's listening sshd, nginx master and dnsmasq with
 * their reaped descendants (utime + stime + cutime + cstime): every SSH session and every command
 * dsrctl ran on a host, whatever else loads the machine.
 */
function hostsCpuMs() {
  let ticks = 0;
  for (const pid of labPids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      /* gone: counted as nothing */
    }
  }
  return ticks * 10;
}
let labPids = [];
function readLabPids() {
  const dir = join(LAB_DIR, 'pids');
  labPids = readdirSync(dir)
    .filter((f) => /\.(sshd|nginx|dns)$/.test(f))
    .map((f) => readFileSync(join(dir, f), 'utf8').trim())
    .filter((p) => /^\d+$/.test(p));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
/** Three measurements one after another; the one with the median wall time (all its numbers). */
async function medianOf3(measure) {
  const rs = [];
  for (let i = 0; i < 3; i++) rs.push(await measure());
  return rs.sort((a, b) => a.ms - b.ms)[1];
}
const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/**
 * Runs argv (under /usr/bin/time for the child's CPU), timing it; resolves wall ms, exit code,
 * output, the child's CPU ms and the machine's counters over the run.
 */
function run(argv) {
  const timeFile = join(scratch, 'time');
  rmSync(timeFile, { force: true });
  const full = TIME ? [TIME, '-f', '%U %S', '-o', timeFile, ...argv] : argv;
  return new Promise((done, fail) => {
    const m0 = machine();
    const h0 = hostsCpuMs();
    const t0 = process.hrtime.bigint();
    child = spawn(full[0], full.slice(1), { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child?.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('error', fail);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const m = delta(m0, machine());
      child = null;
      let cpuMs = null;
      if (TIME && existsSync(timeFile)) {
        const t = /^([\d.]+) ([\d.]+)$/m.exec(readFileSync(timeFile, 'utf8'));
        if (t) cpuMs = (Number(t[1]) + Number(t[2])) * 1000;
      }
      // the hosts' sshd reap a closed session a moment after the CLI has gone
      setTimeout(() => {
        const hostsMs = hostsCpuMs() - h0;
        done({ ms, code: code ?? (signal === 'SIGKILL' ? 137 : 128), timedOut: signal === 'SIGKILL', stdout, stderr, cpuMs, hostsMs, machine: m });
      }, 300);
    });
  });
}

/** ssh2 connect + exec `true` on every host at once, inside this process: wall ms and the machine's counters. */
async function sshFloor(hosts, privateKey) {
  const m0 = machine();
  const h0 = hostsCpuMs();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await connectAllRunTrue(hosts, privateKey);
  const ms = performance.now() - t0;
  const m = delta(m0, machine());
  const c = process.cpuUsage(c0);
  await sleep(300);
  return { ms, cpuMs: (c.user + c.system) / 1000, hostsMs: hostsCpuMs() - h0, machine: m };
}

/** Per-host numbers of a document: execs (null when absent), changes. */
function parse(name, r) {
  let doc;
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    throw new Error(`${name}: exit ${r.code}${r.timedOut ? ' (killed after the run timeout)' : ''}, stdout is not JSON:\n${r.stdout.slice(0, 2000)}\n${r.stderr.slice(-2000)}`);
  }
  const hosts = Array.isArray(doc.hosts) ? doc.hosts : [];
  const execs = hosts.map((h) => (typeof h.execs === 'number' ? h.execs : null));
  const changes = hosts.reduce((n, h) => n + (Array.isArray(h.changes) ? h.changes.length : 0), 0);
  return { doc, execs: execs.length && execs.every((e) => e !== null) ? execs : null, changes };
}

const cli = (...args) => ['node', CLI, ...args];

/**
 * Processes a run starts on the proxy, an upstream (dev1) and the probe (client): `strace -f`
 * attached to each one's listening sshd follows every session and command; each process that ends
 * leaves one "+++ exited/killed" line. Resolves { proxy, upstream, probe } (null: not counted).
 */
async function countProcesses(runIt) {
  const roles = { proxy: 'proxy', upstream: 'dev1', probe: 'client' };
  if (spawnSync('strace', ['-V']).status !== 0) return Object.fromEntries(Object.keys(roles).map((r) => [r, null]));
  const tracers = Object.entries(roles).map(([role, host]) => {
    const pid = lab(['pids', host]).stdout.trim();
    const file = join(scratch, `strace-${role}`);
    const p = spawn('strace', ['-f', '-q', '-e', 'trace=none', '-e', 'signal=none', '-o', file, '-p', pid], { stdio: 'ignore' });
    return { role, file, p, closed: new Promise((r) => p.on('close', r)) };
  });
  await sleep(1000); // attached
  const r = await runIt();
  await sleep(300);
  for (const t of tracers) t.p.kill('SIGINT'); // detaches
  await Promise.all(tracers.map((t) => t.closed));
  const counts = {};
  for (const t of tracers) {
    const text = existsSync(t.file) ? readFileSync(t.file, 'utf8') : '';
    counts[t.role] = new Set([...text.matchAll(/^(\d+) +\+\+\+ (?:exited|killed)/gm)].map((m) => m[1])).size;
  }
  if (r.code !== 0) counts.error = `the counted no-op exited ${r.code}`;
  return counts;
}

/** One upstream count: lab up, floor, phases, lab down. */
async function benchOne(n) {
  const failures = [];
  process.stderr.write(`bench: ${n} upstreams: lab up ... `);
  labUp = true; // lab.sh tears down on a failed up, but a signal in between must still bring it down
  const t0 = performance.now();
  const up = lab(['up'], n);
  if (up.status !== 0) throw new Error(`lab.sh up (${n} upstreams) failed (exit ${up.status}):\n${up.stderr.slice(-3000)}`);
  const labS = (performance.now() - t0) / 1000;
  process.stderr.write(`${labS.toFixed(1)} s; `);

  const inv = parseYaml(readFileSync(INVENTORY, 'utf8'));
  const sshHosts = [inv.proxy.ssh_host, ...inv.upstreams.map((u) => u.ssh_host), inv.verify?.probe?.ssh_host].filter(Boolean);
  const key = readFileSync(join(LAB_DIR, 'id_ed25519'));
  readLabPids();
  process.stderr.write('ssh floor ... ');
  const floor = await medianOf3(async () => {
    const r = await run(['node', join(REPO, 'bench/ssh-floor.mjs'), join(LAB_DIR, 'id_ed25519'), ...sshHosts]);
    if (r.code !== 0) throw new Error(`ssh floor (${n} upstreams) failed (exit ${r.code}): ${r.stderr.trim()}`);
    return r;
  });
  const floorInProcess = await medianOf3(() => sshFloor(sshHosts, key));

  const phases = [];
  const phase = async (name, argv, expectCode = 0) => {
    process.stderr.write(`${name} ... `);
    const r = await run(argv);
    const p = parse(name, r);
    if (r.code !== expectCode) failures.push(`${n} upstreams, ${name}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''} (expected ${expectCode}); ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return { ...r, ...p };
  };

  const first = await phase('apply (first)', cli('apply', '-i', INVENTORY, '--yes', '--json'));
  if (first.changes === 0) failures.push(`${n} upstreams, apply (first): planned no changes on a fresh lab`);
  phases.push({ name: 'apply (first)', ...first, note: `${first.changes} changes` });

  const noops = [];
  for (let i = 0; i < NOOP_RUNS; i++) noops.push(await phase(`no-op #${i + 1}`, cli('apply', '-i', INVENTORY, '--yes', '--json')));
  for (const [i, r] of noops.entries()) if (r.changes !== 0) failures.push(`${n} upstreams, no-op #${i + 1}: ${r.changes} changes planned, expected 0`);
  const mid = [...noops].sort((a, b) => a.ms - b.ms)[noops.length >> 1];
  const noop = {
    name: `no-op (median of ${NOOP_RUNS})`,
    ms: median(noops.map((r) => r.ms)),
    cpuMs: noops.every((r) => r.cpuMs !== null) ? median(noops.map((r) => r.cpuMs)) : null,
    hostsMs: median(noops.map((r) => r.hostsMs)),
    machine: { cpuS: median(noops.map((r) => r.machine.cpuS)) },
    execs: noops.every((r) => r.execs) ? noops[0].execs.map((_, h) => Math.max(...noops.map((r) => r.execs[h]))) : null,
    note: `min ${Math.min(...noops.map((r) => r.ms)).toFixed(0)} / max ${Math.max(...noops.map((r) => r.ms)).toFixed(0)} ms`,
    doc: mid.doc,
  };
  phases.push(noop);

  // processes started per host, per role: strace -f on the sshd of the proxy, dev1 and the probe
  process.stderr.write('counted no-op ... ');
  const procs = await countProcesses(() => run(cli('apply', '-i', INVENTORY, '--yes', '--json')));

  const plan = await phase('plan', cli('plan', '-i', INVENTORY, '--json'));
  if (plan.changes !== 0) failures.push(`${n} upstreams, plan after the applies: ${plan.changes} changes, expected 0`);
  phases.push({ name: 'plan', ...plan, note: `${plan.changes} changes` });

  const rb = await phase('rollback', cli('rollback', '-i', INVENTORY, '--yes', '--json'));
  phases.push({ name: 'rollback', ...rb, note: `ok=${rb.doc.ok}` });

  // after the rollback the lab must plan exactly what the first apply did
  const again = await phase('plan again', cli('plan', '-i', INVENTORY, '--json'));
  if (again.changes !== first.changes) failures.push(`${n} upstreams, plan after rollback: ${again.changes} changes, the first apply had ${first.changes}`);
  process.stderr.write('lab down\n');
  labDown();

  const hosts = sshHosts.length;
  return { n, hosts, labS, floor, floorInProcess, phases, noop, first, rollback: rb, procs, failures };
}

const total = (p) => (p.cpuMs ?? 0) + (p.hostsMs ?? 0);

function printTable(results, ctx) {
  const head = ['N', 'phase', 'wall ms', 'CLI cpu ms', 'hosts cpu ms', 'cpu-s/upstream', '/proc/stat cpu-s', 'execs/host max', 'note'];
  const rows = [];
  for (const r of results) {
    const ph = (p) => [
      String(r.n),
      p.name,
      p.ms.toFixed(0),
      p.cpuMs === null || p.cpuMs === undefined ? 'n/a' : p.cpuMs.toFixed(0),
      p.hostsMs.toFixed(0),
      (total(p) / 1000 / r.n).toFixed(3),
      p.machine.cpuS.toFixed(2),
      p.execs === undefined ? '' : p.execs === null ? 'n/a' : String(Math.max(...p.execs)),
      p.note ?? '',
    ];
    rows.push(
      ph({ ...r.floor, name: 'ssh floor (a process: connect+true, all hosts)', note: `median of 3; ${r.hosts} hosts; lab built in ${r.labS.toFixed(1)} s` }),
      ph({ ...r.floorInProcess, name: 'ssh floor (inside the bench, for reference)', note: 'median of 3; no start-up, ssh2 loaded' }),
      ...r.phases.map(ph),
    );
  }
  const table = [head, ...rows];
  const widths = head.map((_, c) => Math.max(...table.map((row) => row[c].length)));
  for (const row of table) console.log(row.map((v, c) => (c >= 2 && c <= 7 ? v.padStart(widths[c]) : v.padEnd(widths[c]))).join('  ').trimEnd());
  console.log(`(hosts = proxy + upstreams + the probe. CLI cpu: the dsrctl process (for the floor: bench/ssh-floor.mjs; inside the bench: its own ssh2 client); hosts cpu: every lab host's sshd, nginx, dnsmasq and all they started; cpu-s/upstream: their sum / N; /proc/stat: the whole machine meanwhile, other load included. node -e 0: ${ctx.nodeMs.toFixed(0)} ms)`);
  for (const r of results) {
    const p = r.procs;
    const f = (v) => (v === null ? 'n/a (no strace)' : String(v));
    console.log(`processes started by a no-op (strace -f on the host's sshd), ${r.n} upstreams: proxy ${f(p.proxy)}, upstream (dev1) ${f(p.upstream)}, probe ${f(p.probe)}${p.error ? ` (${p.error})` : ''}`);
  }
}

/** Slope per added host between the two largest N (null with one N). */
function growth(results) {
  if (results.length < 2) return null;
  const [a, b] = [...results].sort((x, y) => x.n - y.n).slice(-2);
  const per = (f) => (f(b) - f(a)) / (b.hosts - a.hosts);
  return {
    between: `${a.n} -> ${b.n}`,
    wallMs: per((r) => r.noop.ms),
    cliCpuMs: a.noop.cpuMs !== null && b.noop.cpuMs !== null ? per((r) => r.noop.cpuMs) : null,
    hostsCpuMs: per((r) => r.noop.hostsMs),
    floorMs: per((r) => r.floor.ms),
    firstMs: per((r) => r.first.ms),
  };
}

function verdicts(results, g, ctx) {
  const out = [];
  const at = (n) => results.find((r) => r.n === n);
  const check = (name, ok, detail) => out.push({ name, ok, detail });
  const r3 = at(3);
  const r30 = at(30);
  const r100 = at(100);
  if (r3) check('3 upstreams: no-op median <= 700 ms + node start-up', r3.noop.ms <= TARGET.noop3ms + ctx.nodeMs, `${r3.noop.ms.toFixed(0)} ms (target ${(TARGET.noop3ms + ctx.nodeMs).toFixed(0)})`);
  else check('3 upstreams: no-op median <= 700 ms + node start-up', null, 'not run');
  if (r30) {
    check('30 upstreams: no-op median <= 5 s', r30.noop.ms <= TARGET.noop30ms, `${r30.noop.ms.toFixed(0)} ms`);
    check('30 upstreams: first apply <= 7 s', r30.first.ms <= TARGET.first30ms, `${r30.first.ms.toFixed(0)} ms`);
    const per = total(r30.noop) / 1000 / 30;
    check('30 upstreams: whole-machine CPU (controller + hosts) per upstream per no-op <= 0.2 CPU-s', per <= TARGET.cpuPerUpstream30, `${per.toFixed(3)} CPU-s`);
  } else check('30 upstreams: no-op <= 5 s, first apply <= 7 s, CPU <= 0.2 CPU-s/upstream', null, 'not run');
  if (r100) {
    const ok = r100.first.code === 0 && r100.noop.doc?.ok !== false && r100.rollback.code === 0 && !r100.failures.length;
    check('100 upstreams: first apply, no-op and rollback succeed', ok, ok ? 'yes' : r100.failures.join('; ') || 'a run failed');
    check('100 upstreams: no-op median <= 15 s', r100.noop.ms <= TARGET.noop100ms, `${r100.noop.ms.toFixed(0)} ms`);
  } else check('100 upstreams: first apply, no-op, rollback succeed; no-op <= 15 s', null, 'not run');
  if (g?.cliCpuMs !== null && g?.cliCpuMs !== undefined) check(`controller CPU slope (${g.between}) <= 15 ms/host`, g.cliCpuMs <= TARGET.slopeMsPerHost, `${g.cliCpuMs.toFixed(1)} ms/host`);
  else check('controller CPU slope <= 15 ms/host', null, 'needs two upstream counts (and /usr/bin/time)');
  for (const r of results) {
    const e = r.noop.execs ? Math.max(...r.noop.execs) : null;
    check(`${r.n} upstreams: no-op <= 1 exec per host`, e !== null && e <= TARGET.noopExecs, e === null ? 'no execs in --json' : `${e} max`);
  }
  for (const r of results.filter((x) => x.n >= 30)) {
    const budget = TARGET.floorFactor * r.floor.ms;
    check(`${r.n} upstreams: no-op <= 1.5 x SSH floor`, r.noop.ms <= budget, `${r.noop.ms.toFixed(0)} ms (floor ${r.floor.ms.toFixed(0)} ms as a process, ${r.floorInProcess.ms.toFixed(0)} ms inside the bench; target ${budget.toFixed(0)})`);
  }
  return out;
}

async function main() {
  if (process.getuid?.() !== 0) {
    console.error('bench: must run as root (the lab uses network namespaces)');
    return 2;
  }
  if (!existsSync(CLI)) {
    console.error(`bench: ${CLI} not found; run npm run build`);
    return 2;
  }
  const loadStart = load();
  const quiet = Number(loadStart.split(' ')[0]) <= CORES / 2;
  const starts = [];
  for (let i = 0; i < 5; i++) starts.push((await run(['node', '-e', '0'])).ms);
  const nodeMs = median(starts);
  const ctx = { nodeMs };

  console.log(`dsrctl scale bench: upstreams ${COUNTS.join(', ')}; node ${process.version}; ${CORES} CPUs (${cpus()[0]?.model ?? '?'}); CLI ${CLI}`);
  console.log(`load average at start: ${loadStart}${quiet ? '' : `  WARNING: the machine is not quiet (more than ${CORES / 2} runnable on ${CORES} CPUs): times and whole-machine CPU are inflated`}`);

  const results = [];
  const failures = [];
  for (const n of COUNTS) {
    const r = await benchOne(n);
    results.push(r);
    failures.push(...r.failures);
  }
  printTable(results, ctx);
  const g = growth(results);
  if (g)
    console.log(
      `growth per added host (${g.between}): no-op wall ${g.wallMs.toFixed(1)} ms, controller CPU ${g.cliCpuMs === null ? 'n/a' : g.cliCpuMs.toFixed(1) + ' ms'}, hosts CPU ${g.hostsCpuMs.toFixed(1)} ms; ssh floor wall ${g.floorMs.toFixed(1)} ms; first apply wall ${g.firstMs.toFixed(1)} ms`,
    );
  console.log(`load average at end: ${load()}`);
  const vs2 = verdicts(results, g, ctx);
  for (const v of vs2) console.log(`  ${v.ok === null ? 'not checked' : v.ok ? 'OK    ' : 'MISSED'}  ${v.name}: ${v.detail}`);
  for (const f of failures) console.log(`  FAILED  ${f}`);
  const missed = vs2.filter((v) => v.ok === false).length + failures.length;
  console.log(missed ? `verdict: FAIL (${missed} target(s) missed or run(s) failed)` : 'verdict: PASS');
  return missed ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  console.error(`bench: ${e instanceof Error ? e.message : e}`);
  code = 1;
} finally {
  cleanup();
}
process.exit(code);
