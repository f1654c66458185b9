/**
 * The e2e files' shared expectations about a CLI run and the hosts, and what they print when one
 * fails: the run's exit code and output (show), the hosts' snapshots with a line diff, the locks.
 * Built on harness.ts; file-specific checks stay in their files.
 */
import { expect } from 'vitest';
import { HOSTS, snapshotAll, locks, type CliResult } from './harness.js';

/** Everything a person needs when a CLI expectation fails: `what`, the exit code, stdout and stderr (their last 8000 characters each). */
export function show(r: CliResult, what = ''): string {
  const cut = (s: string) => (s.length > 8000 ? `[... ${s.length - 8000} chars]\n${s.slice(-8000)}` : s);
  return `${what}\nexit ${r.code}\n--- stdout ---\n${cut(r.stdout)}\n--- stderr ---\n${cut(r.stderr)}`;
}

/** stdout and stderr together, for text a run may print on either. */
export const output = (r: CliResult): string => r.stdout + r.stderr;

export function expectCode(r: CliResult, code: number, what: string): void {
  expect(r.code, show(r, `${what}: expected exit ${code}`)).toBe(code);
}

/** The run's --json document (stdout parsed); fails when stdout was not one JSON document. */
export function expectJson(r: CliResult, what: string): any {
  expect(r.json, show(r, `${what}: stdout is not one JSON document`)).toBeDefined();
  return r.json;
}

/** No stack trace reached the user (on stderr). */
export const noStack = (r: CliResult, what: string) => expect(r.stderr, show(r, `${what}: a stack trace reached the user`)).not.toMatch(/^\s+at \S/m);

/**
 * Per host of `hosts` whose snapshot differs from `ref`: its name, the lines only in `ref` (`-`)
 * and the lines only in `now` (`+`), in their order. `now` defaults to the hosts as they are.
 */
export function snapshotDiff(ref: Record<string, string>, hosts: readonly string[] = HOSTS, now: Record<string, string> = snapshotAll(hosts)): string {
  return hosts
    .filter((h) => now[h] !== ref[h])
    .map((h) => {
      const a = (ref[h] ?? '').split('\n');
      const b = (now[h] ?? '').split('\n');
      const inA = new Set(a);
      const inB = new Set(b);
      const lines = [...a.filter((l) => !inB.has(l)).map((l) => `  - ${l}`), ...b.filter((l) => !inA.has(l)).map((l) => `  + ${l}`)];
      return `${h}:\n${lines.length ? lines.join('\n') : '  (the same lines in another order or number)'}`;
    })
    .join('\n');
}

/** Every host of `hosts` byte for byte as in `ref`; the message names all the hosts that differ and shows their line diff. */
export function expectSnapshots(ref: Record<string, string>, what: string, hosts: readonly string[] = HOSTS): void {
  const now = snapshotAll(hosts);
  const differ = hosts.filter((h) => now[h] !== ref[h]);
  expect(differ, `${what}: hosts that differ from the reference snapshot\n${snapshotDiff(ref, differ, now)}`).toEqual([]);
}

export function expectNoLocks(what: string): void {
  expect(locks(), `${what}: no host may keep a lock`).toEqual(Object.fromEntries(HOSTS.map((h) => [h, ''])));
}

// ---------------------------------------------------------------------------------------------
// reading a --json document (plan, apply)

/** One host's entry in the document's `hosts` (undefined when the host is not listed). */
export function hostJson(j: any, host: string): any {
  if (!Array.isArray(j?.hosts)) throw new Error(`no "hosts" list in the JSON document: ${JSON.stringify(j)?.slice(0, 2000)}`);
  return (j.hosts as any[]).find((h) => h.host === host);
}

/** Per host: how many changes the document lists. */
export const changeCounts = (j: any): Record<string, number> => Object.fromEntries((j.hosts as any[]).map((h) => [h.host, h.changes.length]));
