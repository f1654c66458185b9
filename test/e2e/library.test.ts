/**
 * dsrctl as a library (the package's `exports`: dist/index.js, as another Node program gets it):
 * plan, apply, verify and rollback against the lab, with their reports checked against the schema.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { LAB_INVENTORY, ROOT, labUp, labDown, settledSnapshotAll, snapshotAll, curlSources, locks, HOSTS } from './harness.js';
import { reportSchemaErrors } from '../support/report-schema.js';

type Lib = typeof import('../../src/index.js');
let lib: Lib;
let total = 0;
let onProxy = 0;

describe('the library API against the lab', () => {
  let before: Record<string, string>;
  beforeAll(async () => {
    lib = (await import(join(ROOT, 'dist/index.js'))) as Lib;
    labUp();
    before = await settledSnapshotAll();
  });
  afterAll(() => labDown());

  it('plan: typed plans for every host, nothing changed', async () => {
    const r = await lib.plan(LAB_INVENTORY);
    expect(r.exitCode).toBe(0);
    expect(r.plans.map((p) => p.host)).toEqual([...HOSTS]);
    total = r.changes;
    onProxy = r.plans.find((p) => p.host === 'proxy')!.changes.length;
    // every upstream's default route, and the proxy's Method 1 setup
    expect(r.plans.filter((p) => p.role === 'upstream').map((p) => p.changes.length)).toEqual([1, 1, 1, 1]);
    expect(onProxy).toBeGreaterThan(4);
    expect(r.plans.find((p) => p.host === 'proxy')!.changes.map((c) => c.kind)).toContain('ip-rule');
    expect(reportSchemaErrors(lib.reportDocument(lib.planReport(r)))).toBe('');
    expect(snapshotAll()).toEqual(before);
  });

  it('apply: progress as events, the client address at every upstream, a valid report', async () => {
    const events: import('../../src/index.js').ProgressEvent[] = [];
    const seen: string[] = [];
    const r = await lib.apply(LAB_INVENTORY, { runner: lib.eventRunner((e) => events.push(e)), onEvent: (e) => seen.push(e.type) });
    expect([r.exitCode, r.result], r.failure).toEqual([0, 'applied']);
    expect(r.message).toBe(`Applied run ${r.runId} and verified it.`);
    expect(events.some((e) => e.type === 'step-done' && e.title.startsWith(`proxy: ${onProxy} changes planned (proxy, kernel `))).toBe(true);
    expect(events.some((e) => e.type === 'step-done' && /^dev1: 1 change planned/.test(e.title))).toBe(true);
    expect(seen).toEqual(['plan', 'host-output', 'host-output', 'host-output', 'host-output', 'host-output', 'checks']);
    expect(r.checks.every((c) => c.ok)).toBe(true);
    expect(reportSchemaErrors(lib.reportDocument(lib.applyReport(r)))).toBe('');
    expect(curlSources()).toEqual(['192.168.99.1', '192.168.99.1', '192.168.99.1', '192.168.99.1']);
    expect(Object.values(locks()).every((l) => l === '')).toBe(true);
  });

  it('verify, then rollback: every host byte for byte as before', async () => {
    const v = await lib.verify(LAB_INVENTORY);
    expect(v.ok).toBe(true);
    expect(reportSchemaErrors(lib.reportDocument(lib.verifyReport(v)))).toBe('');
    const r = await lib.rollback(LAB_INVENTORY);
    expect([r.exitCode, r.result]).toEqual([0, 'rolled-back']);
    expect(r.changes).toBe(total);
    expect([...r.pending.keys()]).toEqual(['dev1', 'dev2', 'dev3', 'dev4', 'proxy']);
    expect(reportSchemaErrors(lib.reportDocument(lib.rollbackReport(r)))).toBe('');
    expect(snapshotAll()).toEqual(before);
  });

  it('bad input throws a UserError (exit code 2) before any host is touched', async () => {
    await expect(lib.apply('/nonexistent/inventory.yaml')).rejects.toMatchObject({ name: 'UserError', exitCode: 2 });
  });
});
