import { readFileSync, existsSync } from 'node:fs';
import { dirname, resolve, isAbsolute } from 'node:path';
import { parseDocument } from 'yaml';
import { parse as parseDotenv } from 'dotenv';
import type { z } from 'zod';
import { inventorySchema, type Inventory } from './schema.js';
import { UserError } from '../util/errors.js';

export interface LoadedInventory {
  path: string;
  inventory: Inventory;
}

/**
 * Environment for `${VAR}` references: the process environment wins over `.env`
 * (the `.env` beside the inventory, then the one in the working directory), as dotenv does.
 */
export function loadEnv(inventoryPath: string, base: NodeJS.ProcessEnv = process.env): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const file of [resolve(process.cwd(), '.env'), resolve(dirname(inventoryPath), '.env')]) {
    if (existsSync(file)) Object.assign(env, parseDotenv(readFileSync(file)));
  }
  return { ...env, ...base };
}

const VAR_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Where `${VAR}` expansions put values: field path -> the variables used there. */
export type Expansions = Map<string, string[]>;
/** Variable values by variable name, so a message that quotes one can name the variable instead. */
const expandedValues = new WeakMap<Expansions, Map<string, string>>();

/**
 * Replace `${VAR}` in every string value; an undefined variable is an error naming the field.
 * `expansions` (optional) records which fields hold expanded values, so messages never print them.
 * A YAML alias that contains itself (`a: &a [*a]`) is an error, not an endless recursion.
 */
export function expandVars(
  value: unknown,
  env: Record<string, string | undefined>,
  path: (string | number)[] = [],
  expansions?: Expansions,
  ancestors: Set<object> = new Set(),
): unknown {
  if (typeof value === 'string') {
    const used: string[] = [];
    const out = value.replace(VAR_REF, (_, name: string) => {
      const v = env[name];
      if (v === undefined) throw new UserError(`${fieldPath(path)}: \${${name}} is not set (define it in the environment or in .env)`);
      used.push(name);
      if (expansions) {
        let values = expandedValues.get(expansions);
        if (!values) expandedValues.set(expansions, (values = new Map()));
        if (v !== '') values.set(v, name);
      }
      return v;
    });
    if (used.length && expansions) expansions.set(fieldPath(path), used);
    return out;
  }
  if (value && typeof value === 'object') {
    if (ancestors.has(value)) throw new UserError(`${fieldPath(path)}: a YAML alias refers to a node that contains it (a cycle such as \`a: &a [*a]\`); dsrctl cannot expand it`);
    ancestors.add(value);
    try {
      if (Array.isArray(value)) return value.map((v, i) => expandVars(v, env, [...path, i], expansions, ancestors));
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandVars(v, env, [...path, k], expansions, ancestors)]));
    } finally {
      ancestors.delete(value);
    }
  }
  return value;
}

export function fieldPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

/** Fields whose values never appear in a message. */
const SECRET_FIELDS = new Set(['password', 'passphrase', 'sudo_password']);

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const p of path) {
    if (cur && typeof cur === 'object') cur = (cur as Record<PropertyKey, unknown>)[p];
    else return undefined;
  }
  return cur;
}

const varList = (names: string[]) => [...new Set(names)].map((n) => `\${${n}}`).join(', ');

function describeValue(root: unknown, path: readonly PropertyKey[], expansions?: Expansions): string {
  const cur = valueAt(root, path);
  if (cur === undefined) return '';
  if (path.some((p) => typeof p === 'string' && SECRET_FIELDS.has(p))) return ' (value hidden)';
  const here = fieldPath(path);
  if (expansions) {
    // a value that came from the environment may be a secret in the wrong field: name the variable only
    const own = expansions.get(here);
    if (own) return ` (got the value of ${varList(own)})`;
    const inside = [...expansions].filter(([k]) => k.startsWith(`${here}.`) || k.startsWith(`${here}[`) || path.length === 0);
    if (inside.length) return ` (contains the value of ${varList(inside.flatMap(([, v]) => v))})`;
  }
  const text = JSON.stringify(cur, (k, v: unknown) => (SECRET_FIELDS.has(k) ? '***' : v));
  return text && text.length <= 60 ? ` (got ${text})` : '';
}

/** A message that quotes an expanded value (say "x is listed twice") names its variable instead. */
function hideExpanded(message: string, expansions?: Expansions): string {
  const values = expansions && expandedValues.get(expansions);
  if (!values) return message;
  let out = message;
  // longest first, so a value containing another is replaced whole
  for (const [v, name] of [...values].sort((a, b) => b[0].length - a[0].length)) out = out.split(v).join(`<the value of \${${name}}>`);
  return out;
}

/** One line per problem: `field.path: what was wrong (got value)`. */
export function formatIssues(issues: z.core.$ZodIssue[], raw: unknown, expansions?: Expansions): string[] {
  return issues.map((issue) => {
    let message = issue.message;
    if (issue.code === 'invalid_type' && valueAt(raw, issue.path) === undefined) message = 'is required';
    if (issue.code === 'unrecognized_keys') message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    return `${fieldPath(issue.path)}: ${hideExpanded(message, expansions)}${issue.code === 'unrecognized_keys' ? '' : describeValue(raw, issue.path, expansions)}`;
  });
}

/** Validate already-parsed data (the wizard uses this too). */
export function validateInventory(raw: unknown, source = 'inventory', expansions?: Expansions): Inventory {
  const result = inventorySchema.safeParse(raw);
  if (!result.success) {
    const lines = formatIssues(result.error.issues, raw, expansions);
    throw new UserError(`${source} is not valid:\n  - ${lines.join('\n  - ')}`);
  }
  return result.data;
}

function resolvePaths(inv: Inventory, baseDir: string): Inventory {
  const fix = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : resolve(baseDir, p));
  const fixSsh = <T extends { private_key?: string; known_hosts?: string; jump?: unknown } | undefined>(s: T): T =>
    s
      ? {
          ...s,
          private_key: fix(s.private_key),
          known_hosts: fix(s.known_hosts),
          ...(s.jump && typeof s.jump === 'object' ? { jump: fixSsh(s.jump as { private_key?: string; known_hosts?: string }) } : {}),
        }
      : s;
  return {
    ...inv,
    ssh: fixSsh(inv.ssh),
    proxy: { ...inv.proxy, ssh: fixSsh(inv.proxy.ssh) },
    upstreams: inv.upstreams.map((u) => ({ ...u, ssh: fixSsh(u.ssh) })),
    verify: inv.verify.probe ? { ...inv.verify, probe: { ...inv.verify.probe, ssh: fixSsh(inv.verify.probe.ssh) } } : inv.verify,
  };
}

export function parseInventoryText(text: string, path: string, env: Record<string, string | undefined>): Inventory {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const where = e.linePos?.[0] ? ` (line ${e.linePos[0].line}, column ${e.linePos[0].col})` : '';
    const what = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    const frame = e.message.split('\n').slice(1).filter((l) => l.trim()).join('\n');
    throw new UserError(`${path}: YAML does not parse${where}: ${what}${frame ? `\n${frame}` : ''}`);
  }
  let js: unknown;
  try {
    js = doc.toJS();
  } catch (e) {
    // the yaml library's own limit on alias expansion ("excessive alias count")
    throw new UserError(`${path}: YAML does not load: ${(e as Error).message}`);
  }
  const expansions: Expansions = new Map();
  let raw: unknown;
  try {
    raw = expandVars(js, env, [], expansions);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${path}: ${e.message}`);
    throw e;
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new UserError(`${path}: must be a YAML mapping (mode:, service:, proxy:, upstreams: ...)`);
  return resolvePaths(validateInventory(raw, path, expansions), dirname(resolve(path)));
}

export function loadInventory(path: string): LoadedInventory {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read inventory ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return { path, inventory: parseInventoryText(text, path, loadEnv(path)) };
}
