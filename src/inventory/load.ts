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

/** Replace `${VAR}` in every string value; an undefined variable is an error naming the field. */
export function expandVars(value: unknown, env: Record<string, string | undefined>, path: (string | number)[] = []): unknown {
  if (typeof value === 'string') {
    return value.replace(VAR_REF, (_, name: string) => {
      const v = env[name];
      if (v === undefined) throw new UserError(`${fieldPath(path)}: \${${name}} is not set (define it in the environment or in .env)`);
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandVars(v, env, [...path, i]));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandVars(v, env, [...path, k])]));
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

function describeValue(root: unknown, path: readonly PropertyKey[]): string {
  const cur = valueAt(root, path);
  if (cur === undefined) return '';
  if (path.some((p) => typeof p === 'string' && SECRET_FIELDS.has(p))) return ' (value hidden)';
  const text = JSON.stringify(cur, (k, v: unknown) => (SECRET_FIELDS.has(k) ? '***' : v));
  return text && text.length <= 60 ? ` (got ${text})` : '';
}

/** One line per problem: `field.path: what was wrong (got value)`. */
export function formatIssues(issues: z.core.$ZodIssue[], raw: unknown): string[] {
  return issues.map((issue) => {
    let message = issue.message;
    if (issue.code === 'invalid_type' && valueAt(raw, issue.path) === undefined) message = 'is required';
    if (issue.code === 'unrecognized_keys') message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    return `${fieldPath(issue.path)}: ${message}${issue.code === 'unrecognized_keys' ? '' : describeValue(raw, issue.path)}`;
  });
}

/** Validate already-parsed data (the wizard uses this too). */
export function validateInventory(raw: unknown, source = 'inventory'): Inventory {
  const result = inventorySchema.safeParse(raw);
  if (!result.success) {
    const lines = formatIssues(result.error.issues, raw);
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
  const raw = expandVars(doc.toJS(), env);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new UserError(`${path}: must be a YAML mapping (mode:, service:, proxy:, upstreams: ...)`);
  return resolvePaths(validateInventory(raw, path), dirname(resolve(path)));
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
