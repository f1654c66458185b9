#!/usr/bin/env node
/**
 * dsrctl apply benchmark on the lab (needs root):  npm run bench
 *
 * Brings up its own lab (test/lab/lab.sh, prefix "dsrbench", management net 10.211.213.0/24,
 * state in /var/lib/dsrctl-lab/dsrbench/), so it never tears down a lab someone else is using; then times
 *   (a) the first `apply --yes --json`, (b) a no-op apply (5 runs, median), (c) `plan --json`,
 *   (d) `rollback --yes --json`
 * with process.hrtime.bigint(), reads each JSON document's per-host `execs` (SSH exec requests on
 * that host's connection) and the CLI's max RSS and CPU time (/usr/bin/time, when installed); as
 * references, bare `node -e 0` start-up and one OpenSSH connection to the proxy. The lab is always taken down (also on SIGINT/SIGTERM).
 *
 * Targets (exit 1 when one is missed): a no-op apply makes at most 3 exec requests per host, and
 * its median wall time stays under node start-up + 1000 ms.
 *
 * Environment: DSRCTL_CLI (default dist/cli.js), DSR_LAB_PREFIX / DSR_LAB_MGMT_OCTET / DSR_LAB_DIR
 * (defaults dsrbench / 213 / /var/lib/dsrctl-lab/dsrbench), BENCH_NOOP_RUNS (default 5).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
const NOOP_RUNS = Number(process.env.BENCH_NOOP_RUNS ?? 5);
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const MAX_NOOP_EXECS = 3;
const NOOP_BUDGET_MS = 1000;

const scratch = mkdtempSync(join(tmpdir(), 'dsrctl-bench-'));
let child = null;
let labUp = false;

function labDown() {
  if (!labUp) return;
  labUp = false;
  const r = spawnSync('bash', [join(REPO, 'test/lab/lab.sh'), 'down'], { env: LAB_ENV, encoding: 'utf8' });
  if (r.status !== 0) process.stderr.write(`lab down failed:\n${r.stderr}`);
}

function cleanup() {
  if (child && child.exitCode === null) child.kill('SIGTERM');
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

/** Runs argv, timing it; resolves { ms, code, stdout, stderr, rssKb }. */
function run(argv, { rss = false } = {}) {
  const rssFile = join(scratch, 'rss');
  rmSync(rssFile, { force: true });
  const full = rss && TIME ? [TIME, '-f', '%M %U %S', '-o', rssFile, ...argv] : argv;
  return new Promise((done, fail) => {
    const t0 = process.hrtime.bigint();
    child = spawn(full[0], full.slice(1), { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      child = null;
      let rssKb = null;
      let cpuMs = null;
      if (rss && TIME && existsSync(rssFile)) {
        const m = /^(\d+) ([\d.]+) ([\d.]+)$/.exec(readFileSync(rssFile, 'utf8').trim().split('\n').pop() ?? '');
        if (m) {
          rssKb = Number(m[1]);
          cpuMs = (Number(m[2]) + Number(m[3])) * 1000;
        }
      }
      done({ ms, code, stdout, stderr, rssKb, cpuMs });
    });
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** JSON of a CLI run; per-host execs (null when the document has none). */
function parse(name, r) {
  let doc;
  try {
    doc = JSON.parse(r.stdout);
  } catch {
    throw new Error(`${name}: exit ${r.code}, stdout is not JSON:\n${r.stdout.slice(0, 2000)}\n${r.stderr.slice(-2000)}`);
  }
  const hosts = Array.isArray(doc.hosts) ? doc.hosts : [];
  const execs = hosts.map((h) => (typeof h.execs === 'number' ? h.execs : null));
  const changes = hosts.reduce((n, h) => n + (Array.isArray(h.changes) ? h.changes.length : 0), 0);
  return { doc, execs: execs.length && execs.every((e) => e !== null) ? execs : null, hostNames: hosts.map((h) => h.host), changes };
}

const cli = (...args) => ['node', CLI, ...args];

async function main() {
  if (process.getuid?.() !== 0) {
    console.error('bench: must run as root (the lab uses network namespaces)');
    return 2;
  }
  if (!existsSync(CLI)) {
    console.error(`bench: ${CLI} not found; run npm run build`);
    return 2;
  }

  process.stderr.write(`bench: lab up (prefix ${LAB_ENV.DSR_LAB_PREFIX}, state ${LAB_DIR}) ... `);
  labUp = true; // lab.sh tears down on a failed up, but a signal in between must still bring it down
  const up = spawnSync('bash', [join(REPO, 'test/lab/lab.sh'), 'up'], { env: LAB_ENV, encoding: 'utf8' });
  if (up.status !== 0) throw new Error(`lab.sh up failed (exit ${up.status}):\n${up.stderr.slice(-3000)}`);
  process.stderr.write('ok\n');

  const nodeStart = [];
  for (let i = 0; i < 5; i++) nodeStart.push((await run(['node', '-e', '0'])).ms);
  const nodeMs = median(nodeStart);
  // the floor of one SSH connection on this machine: OpenSSH connect + auth + one exec to the proxy
  const inv = readFileSync(INVENTORY, 'utf8');
  const proxyHost = /^proxy:\n(?:[ \t].*\n)*?[ \t]+ssh_host: (\S+)/m.exec(inv)?.[1];
  const sshMs = [];
  if (proxyHost)
    for (let i = 0; i < 3; i++) {
      const r = await run(['ssh', '-i', join(LAB_DIR, 'id_ed25519'), '-o', `UserKnownHostsFile=${join(LAB_DIR, 'known_hosts')}`, '-o', 'BatchMode=yes', `root@${proxyHost}`, 'true']);
      if (r.code === 0) sshMs.push(r.ms);
    }
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

  const rows = [];
  const failures = [];
  const phase = async (name, argv, expectCode = 0) => {
    const r = await run(argv, { rss: true });
    const p = parse(name, r);
    if (r.code !== expectCode) failures.push(`${name}: exit ${r.code} (expected ${expectCode}); ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return { ...r, ...p };
  };

  const first = await phase('apply (first)', cli('apply', '-i', INVENTORY, '--yes', '--json'));
  if (first.changes === 0) failures.push('apply (first): planned no changes on a fresh lab');
  rows.push({ name: 'apply (first)', ms: first.ms, cpuMs: first.cpuMs, execs: first.execs, rssKb: first.rssKb, note: `${first.changes} changes, ${first.doc.result ?? ''}` });

  const noops = [];
  for (let i = 0; i < NOOP_RUNS; i++) noops.push(await phase(`apply (no-op #${i + 1})`, cli('apply', '-i', INVENTORY, '--yes', '--json')));
  for (const [i, n] of noops.entries()) if (n.changes !== 0) failures.push(`apply (no-op #${i + 1}): ${n.changes} changes planned, expected 0`);
  const noopMs = median(noops.map((n) => n.ms));
  const noopExecs = noops.every((n) => n.execs) ? noops[0].execs.map((_, h) => Math.max(...noops.map((n) => n.execs[h]))) : null;
  rows.push({
    name: `apply (no-op, median of ${NOOP_RUNS})`,
    ms: noopMs,
    cpuMs: median(noops.map((n) => n.cpuMs ?? 0)) || null,
    execs: noopExecs,
    rssKb: Math.max(...noops.map((n) => n.rssKb ?? 0)) || null,
    note: `min ${Math.min(...noops.map((n) => n.ms)).toFixed(0)} / max ${Math.max(...noops.map((n) => n.ms)).toFixed(0)} ms, ${noops[0].doc.result ?? ''}`,
  });

  const plan = await phase('plan', cli('plan', '-i', INVENTORY, '--json'));
  rows.push({ name: 'plan', ms: plan.ms, cpuMs: plan.cpuMs, execs: plan.execs, rssKb: plan.rssKb, note: `${plan.changes} changes` });

  const rb = await phase('rollback', cli('rollback', '-i', INVENTORY, '--yes', '--json'));
  rows.push({ name: 'rollback', ms: rb.ms, cpuMs: rb.cpuMs, execs: rb.execs, rssKb: rb.rssKb, note: rb.doc.ok === undefined ? '' : `ok=${rb.doc.ok}` });

  // after rollback the lab must plan exactly what the first apply did
  const again = await phase('plan (after rollback)', cli('plan', '-i', INVENTORY, '--json'));
  if (again.changes !== first.changes) failures.push(`plan after rollback: ${again.changes} changes, the first apply had ${first.changes}`);

  rows.push({ name: 'node -e 0 (median of 5)', ms: nodeMs, execs: undefined, rssKb: null, note: 'reference' });
  if (sshMs.length) rows.push({ name: `ssh proxy true (median of ${sshMs.length})`, ms: median(sshMs), execs: undefined, rssKb: null, note: 'reference: OpenSSH, one connection' });

  const hosts = first.hostNames.join(',');
  const fmtExecs = (e) => (e === undefined ? '' : e === null ? 'n/a' : `${Math.max(...e)} (${e.join(' ')})`);
  const table = [
    ['phase', 'wall ms', 'cpu ms', 'execs/host max (per host)', 'max RSS MB', 'note'],
    ...rows.map((r) => [r.name, r.ms.toFixed(0), r.cpuMs ? r.cpuMs.toFixed(0) : '', fmtExecs(r.execs), r.rssKb ? (r.rssKb / 1024).toFixed(1) : TIME || r.execs === undefined ? '' : 'n/a', r.note]),
  ];
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => String(row[c]).length)));
  console.log(`dsrctl apply bench: ${first.hostNames.length} hosts (${hosts}), node ${process.version}, load average ${load}, CLI ${CLI}`);
  for (const row of table) console.log(row.map((v, c) => String(v).padEnd(widths[c])).join('  ').trimEnd());

  const budget = nodeMs + NOOP_BUDGET_MS;
  const execOk = noopExecs !== null && Math.max(...noopExecs) <= MAX_NOOP_EXECS;
  const timeOk = noopMs <= budget;
  if (!execOk) failures.push(`no-op apply: ${noopExecs ? Math.max(...noopExecs) : 'unknown'} exec requests on a host (target <= ${MAX_NOOP_EXECS})`);
  if (!timeOk) failures.push(`no-op apply: median ${noopMs.toFixed(0)} ms (target <= ${budget.toFixed(0)} ms = node start-up + ${NOOP_BUDGET_MS})`);
  console.log(
    `verdict: no-op apply execs/host ${noopExecs ? Math.max(...noopExecs) : 'n/a'} (target <= ${MAX_NOOP_EXECS}) ${execOk ? 'OK' : 'MISSED'}; ` +
      `median ${noopMs.toFixed(0)} ms (target <= ${budget.toFixed(0)} ms) ${timeOk ? 'OK' : 'MISSED'}` +
      (failures.length ? ` -> FAIL` : ' -> PASS'),
  );
  for (const f of failures) console.log(`  - ${f}`);
  return failures.length ? 1 : 0;
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
