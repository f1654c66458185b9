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
const PREFIX = process.env.DSR_E2E_PREFIX ?? 'e2e';
export const LAB_DIR = join(ROOT, `.lab-${PREFIX}`);
export const LAB_INVENTORY = join(LAB_DIR, 'lab.yaml');
/** Two people (or agents) running e2e files at once: give each DSR_E2E_PREFIX and DSR_E2E_OCTET of its own. */
export const LAB_ENV: NodeJS.ProcessEnv = { DSR_LAB_PREFIX: PREFIX, DSR_LAB_DIR: LAB_DIR, DSR_LAB_INVENTORY: LAB_INVENTORY, DSR_LAB_MGMT_OCTET: process.env.DSR_E2E_OCTET ?? '1' };
export const HOSTS = ['proxy', 'dev1', 'dev2', 'dev3', 'dev4'] as const;

export function lab(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync('bash', [LAB, ...args], { encoding: 'utf8', env: { ...process.env, ...LAB_ENV, ...env }, maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function labUp(env: NodeJS.ProcessEnv = {}): void {
  const r = lab(['up'], env);
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

/**
 * Everything dsrctl may touch on a host, as text: compared byte for byte before and after a
 * rollback. Counters are zeroed; nothing else is normalised.
 */
export const SNAPSHOT_SCRIPT = String.raw`
echo '## ip rule'; ip rule show
echo '## ip route (all tables)'; ip route show table all
echo '## ip -6 route (all tables)'; ip -6 route show table all
echo '## iptables-save'; iptables-save | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[0:0]/'
echo '## nft list ruleset'; nft list ruleset
echo '## tc'; for d in $(ls /sys/class/net); do echo "# $d"; tc qdisc show dev "$d"; tc filter show dev "$d"; tc filter show dev "$d" egress 2>/dev/null; done
echo '## sysctl'; sysctl net.ipv4.ip_forward net.ipv4.udp_early_demux net.ipv4.conf.all.rp_filter net.ipv4.conf.default.rp_filter
echo '## /etc/nginx'; find /etc/nginx -type f -o -type l | sort | while read -r f; do echo "# $f $(stat -c '%a %U %G %s' "$f") $(sha256sum < "$f" | cut -c1-64)"; done
`;

export function snapshot(host: string): string {
  const r = onHost(host, SNAPSHOT_SCRIPT);
  if (r.code !== 0) throw new Error(`snapshot of ${host} failed: ${r.stderr}`);
  return r.stdout;
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
