import { FactsParseError, parseKeyValues } from '../format.js';

export type SysctlEntry =
  | { key: string; status: 'ok'; value: string }
  | { key: string; status: 'missing' | 'unreadable' };

/** One `sysctl` section: key=, status=ok|missing|unreadable, then value= (rest of the section). */
export function parseSysctl(body: string, section = 'sysctl'): SysctlEntry {
  const kv = parseKeyValues(section, body, ['value']);
  const key = kv.get('key');
  const status = kv.get('status');
  if (!key) throw new FactsParseError(section, 'no key= line', body.split('\n')[0] ?? '');
  if (status === 'ok') {
    const value = kv.get('value');
    if (value === undefined) throw new FactsParseError(section, `key ${key}: status=ok without value=`, body.split('\n')[1] ?? '');
    return { key, status, value };
  }
  if (status === 'missing' || status === 'unreadable') return { key, status };
  throw new FactsParseError(section, `key ${key}: bad status`, `status=${status ?? ''}`);
}
