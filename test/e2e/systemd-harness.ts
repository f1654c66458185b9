/**
 * The systemd lab (test/lab/systemd-lab.sh) for e2e files: hosts that boot Debian's real systemd
 * in systemd-nspawn containers and can really reboot. Each worker gets its own prefix (sd<tag><worker>),
 * state dir and management net (the same octet harness.ts gives this worker: one lab per worker).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { LAB_ENV, ROOT } from './harness.js';

export const SYSLAB = join(ROOT, 'test/lab/systemd-lab.sh');
const WORKER = Number(process.env.VITEST_WORKER_ID ?? '1');
const PREFIX = process.env.DSR_E2E_SYS_PREFIX ?? `sd${process.env.DSR_E2E_TAG ?? ''}${WORKER}`;
export const SYS_DIR = `/var/lib/dsrctl-lab/${PREFIX}`;
export const SYS_INVENTORY = join(SYS_DIR, 'lab.yaml');
export const SYS_ENV: NodeJS.ProcessEnv = { DSR_LAB_PREFIX: PREFIX, DSR_LAB_DIR: SYS_DIR, DSR_LAB_INVENTORY: SYS_INVENTORY, DSR_LAB_MGMT_OCTET: LAB_ENV.DSR_LAB_MGMT_OCTET };
/** The hosts that boot systemd (client and router are plain namespaces that never reboot). */
export const SYS_HOSTS = ['proxy', 'dev1', 'dev2'] as const;
export type SysHost = (typeof SYS_HOSTS)[number];

export function sysLab(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync('bash', [SYSLAB, ...args], { encoding: 'utf8', env: { ...process.env, ...SYS_ENV, ...env }, maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Bring the lab up (mode and protocol as lab.sh: DSR_LAB_MODE, DSR_LAB_PROTOCOL in `env`), and
 * point harness.ts's host helpers (onHost, and net.ts's hello/digs from the client) at it: this
 * worker runs one lab, so the namespace lab's settings are replaced for the rest of the file.
 */
export function sysUp(env: NodeJS.ProcessEnv = {}): void {
  const r = sysLab(['up'], env);
  if (r.code !== 0) throw new Error(`systemd lab up failed:\n${r.stdout}\n${r.stderr}`);
  Object.assign(LAB_ENV, SYS_ENV);
}

export function sysDown(): string {
  return sysLab(['down']).stdout;
}

/** Run a command in a lab host (systemd hosts: inside the container, as its PID 1 sees it). */
export function sysExec(host: string, cmd: string[] | string) {
  return sysLab(['exec', host, '--', ...(typeof cmd === 'string' ? ['sh', '-c', cmd] : cmd)]);
}

/** `systemctl reboot` in each host, then wait until each is back; returns each host's seconds from boot start to serving. */
export function reboot(...hosts: SysHost[]): Record<string, number> {
  const r = sysLab(['reboot', ...hosts]);
  if (r.code !== 0) throw new Error(`reboot ${hosts.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return Object.fromEntries([...r.stdout.matchAll(/^(\S+) boot \d+: serving ([\d.]+)s/gm)].map((m) => [m[1]!, Number(m[2])]));
}

export function boots(host: SysHost): number {
  return Number(sysLab(['boots', host]).stdout.trim());
}

/** A copy of this lab's inventory with a change, written to a temp file. */
export function sysInventoryVariant(edit: (yaml: string) => string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'dsrctl-inv-')), 'inventory.yaml');
  writeFileSync(file, edit(readFileSync(SYS_INVENTORY, 'utf8')));
  return file;
}

/** A host's normalised network state (test/lab/net-snapshot.sh). */
export function netSnapshot(host: string): string {
  const r = sysLab(['snapshot', host]);
  if (r.code !== 0) throw new Error(`snapshot of ${host} failed: ${r.stderr}`);
  return r.stdout;
}

export function netSnapshots(hosts: readonly string[] = SYS_HOSTS): Record<string, string> {
  return Object.fromEntries(hosts.map((h) => [h, netSnapshot(h)]));
}

/** What of this lab is left on the machine after `down` (namespaces, links, mounts, processes); empty when nothing. */
export function leftovers(): string[] {
  const prefix = SYS_ENV.DSR_LAB_PREFIX!;
  const out: string[] = [];
  const sh = (c: string) => spawnSync('sh', ['-c', c], { encoding: 'utf8' }).stdout;
  for (const l of sh('ip netns list').split('\n')) if (l.startsWith(`${prefix}-`)) out.push(`netns ${l}`);
  for (const l of sh('ip -o link show').split('\n')) if (l.includes(` ${prefix}-`)) out.push(`link ${l}`);
  for (const l of sh('findmnt -rn -o TARGET').split('\n')) if (l.startsWith(`${SYS_DIR}/`)) out.push(`mount ${l}`);
  for (const l of sh('ps -eo pid=,args=').split('\n')) if (l.includes(`-M ${prefix}-`) || l.includes(`${SYS_DIR}/sd/`)) out.push(`process ${l.trim()}`);
  return out;
}
