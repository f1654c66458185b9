/**
 * Data-driven resource tests (pyinfra's tests/operations/<op>/<case>.json): every
 * test/fixtures/operations/<kind>/<case>.json gives facts, a spec and the exact shell lines the
 * change would run (and undo). See test/fixtures/operations/README.md for the format.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { quote } from 'shell-quote';
import { describe, expect, it } from 'vitest';
import { parseFacts } from '../facts/parse.js';
import type { FileFact, HostFacts } from '../facts/types.js';
import { inventorySchema, type Inventory } from '../inventory/schema.js';
import { loadPlaybook } from '../playbook/load.js';
import { planContext, type HostTarget } from '../plan/desired.js';
import type { Change } from '../plan/types.js';
import { renderStep } from '../apply/render-step.js';
import { RESOURCE_KINDS } from './index.js';
import { PlanError } from './types.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OPS = join(ROOT, 'test/fixtures/operations');
const FACTS = join(ROOT, 'test/fixtures/facts');
const RUN = '/var/lib/dsrctl/runs/RUN';

type Expected = string | { write: string; contentFile: string };
interface Case {
  description: string;
  facts: string | { fixture: string; replace?: Record<string, unknown> };
  inventory?: Record<string, unknown>;
  host?: string;
  before?: unknown[];
  spec: unknown;
  expect:
    | { change: null }
    | { error: string; message: string }
    | { action: Change['action']; do: Expected[]; undo: Expected[]; notify?: string[]; diff?: string[] };
  bug?: string;
}

/** The lab's inventory (the guide's addresses); the managed file is the one the proxy fixtures read. */
const LAB_INVENTORY = {
  mode: 'ip-transparency',
  service: { protocol: 'http', listen_port: 80, upstream_port: 8080 },
  proxy: {
    ssh_host: '10.211.0.10',
    public_ip: '192.168.99.10',
    public_interface: 'pub0',
    private_ip: '172.16.0.1',
    private_interface: 'priv0',
    masquerade: false,
    managed_config: '/etc/nginx/conf.d/dsrctl-does-not-exist.conf',
  },
  upstreams: [1, 2, 3, 4].map((n) => ({ name: `dev${n}`, ssh_host: `10.211.0.1${n}`, ip: `172.16.0.1${n}`, interface: 'priv0' })),
};

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
function merge(base: unknown, over: unknown): unknown {
  if (!isObj(base) || !isObj(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = merge(base[k], v);
  return out;
}

const factsCache = new Map<string, HostFacts>();
function fixtureFacts(name: string): HostFacts {
  if (!factsCache.has(name)) factsCache.set(name, parseFacts(readFileSync(join(FACTS, `${name}.txt`), 'utf8')));
  return structuredClone(factsCache.get(name)!);
}

function buildFacts(c: Case, dir: string): HostFacts {
  if (typeof c.facts === 'string') return fixtureFacts(c.facts);
  const facts = { ...fixtureFacts(c.facts.fixture), ...structuredClone(c.facts.replace ?? {}) } as HostFacts;
  for (const f of Object.values(facts.files) as (FileFact & { contentFile?: string })[]) {
    if (f.contentFile) {
      f.content = readFileSync(join(dir, f.contentFile), 'latin1');
      delete f.contentFile;
    }
  }
  return facts;
}

function expectedLine(e: Expected, dir: string): string {
  if (typeof e === 'string') return e;
  const b64 = readFileSync(join(dir, e.contentFile)).toString('base64');
  return `( umask 022 && printf '%s' ${quote([b64])} | base64 -d > ${quote([e.write])} )`;
}

function planCase(kind: string, c: Case, dir: string): Change | null {
  const inv: Inventory = inventorySchema.parse(merge(LAB_INVENTORY, c.inventory ?? {}));
  const pb = loadPlaybook(inv.mode);
  const host = c.host ?? 'proxy';
  const upstream = inv.upstreams.find((u) => u.name === host);
  const target: HostTarget = { name: host, role: upstream ? 'upstream' : 'proxy', upstream, desired: [] };
  const ctx = planContext(inv, pb, target);
  const facts = buildFacts(c, dir);
  const resource = RESOURCE_KINDS[kind]!;
  // the same kind planned earlier on this host, sharing the plan's scratch (ctx.shared)
  for (const spec of c.before ?? []) resource.plan(resource.schema.parse(spec), facts, ctx);
  return resource.plan(resource.schema.parse(c.spec), facts, ctx);
}

function check(kind: string, c: Case, dir: string): void {
  const want = c.expect;
  if ('error' in want) {
    let err: unknown;
    try {
      planCase(kind, c, dir);
    } catch (e) {
      err = e;
    }
    expect(err, 'the plan should have been refused').toBeInstanceOf(PlanError);
    expect((err as Error).name).toBe(want.error);
    expect((err as Error).message).toContain(want.message);
    return;
  }
  const change = planCase(kind, c, dir);
  if ('change' in want) {
    expect(change).toBeNull();
    return;
  }
  expect(change, 'a change was expected').not.toBeNull();
  expect(change!.kind).toBe(kind);
  expect(change!.action).toBe(want.action);
  expect(change!.summary).toMatch(/\S/);
  expect(change!.do.map((s) => renderStep(s, RUN))).toEqual(want.do.map((e) => expectedLine(e, dir)));
  expect(change!.undo.map((s) => renderStep(s, RUN))).toEqual(want.undo.map((e) => expectedLine(e, dir)));
  expect(change!.notify ?? []).toEqual(want.notify ?? []);
  if (want.diff) expect(change!.diff).toBe(want.diff.join('\n') + '\n');
}

const kinds = readdirSync(OPS, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

it('has a case folder for every resource kind the ip-transparency playbook uses', () => {
  expect(kinds).toEqual(expect.arrayContaining(['default-route', 'ip-route', 'ip-rule', 'iptables-rule', 'nginx-main-directive', 'nginx-managed-config', 'sysctl']));
  for (const k of kinds) expect(RESOURCE_KINDS[k], `folder ${k} names no resource kind`).toBeDefined();
});

describe.each(kinds)('%s', (kind) => {
  const dir = join(OPS, kind);
  const cases = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ file: f, c: JSON.parse(readFileSync(join(dir, f), 'utf8')) as Case }));

  it('has cases', () => expect(cases.length).toBeGreaterThan(0));

  for (const { file, c } of cases) {
    const name = `${file.replace(/\.json$/, '')}: ${c.description}`;
    if (c.bug && !process.env.DSRCTL_SHOW_BUGS) it.fails(`${name} [known bug: ${c.bug}]`, () => check(kind, c, dir));
    else it(name, () => check(kind, c, dir));
  }
});
