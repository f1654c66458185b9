/** `{{ a.b }}` lookups in a plain context object. Values were validated by the inventory schema. */
const REF = /\{\{\s*([A-Za-z_][\w.]*)\s*\}\}/g;

export function lookup(ctx: unknown, path: string): unknown {
  let cur: unknown = ctx;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

export function interpolate(value: unknown, ctx: unknown, where: string): unknown {
  if (typeof value === 'string') {
    return value.replace(REF, (_, path: string) => {
      const v = lookup(ctx, path);
      if (v === undefined || v === null || typeof v === 'object') throw new Error(`${where}: {{${path}}} has no value`);
      return String(v);
    });
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, ctx, where));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, ctx, where)]));
  return value;
}
