import { FACTS_FORMAT_VERSION, FactsParseError, parseKeyValues, splitSections, type Section } from './format.js';
import { parseFileSection } from './parsers/files.js';
import { parseIpAddr, parseIpRoutes, parseIpRules } from './parsers/ip-json.js';
import { parseIptablesSave, parseIptablesVariant } from './parsers/iptables-save.js';
import { parseNginx } from './parsers/nginx.js';
import { parseSysctl } from './parsers/sysctl.js';
import { parseNft, parseNatProbe, parseTc } from './parsers/nat.js';
import type { FileFact, HealthProcessFacts, HostFacts, IptablesFacts, NginxConfigFacts } from './types.js';

export { FactsParseError } from './format.js';

const SINGLE = [
  'facts', 'hostname', 'kernel', 'uid', 'systemd', 'ip-addr', 'ip-rule', 'ip-route', 'iptables-version',
  'iptables-save', 'nft', 'nat-probe', 'nginx-version', 'nginx-modules', 'nginx-pid', 'dsrctl-journal', 'dsrctl-lock',
  'dsrctl-reverted', 'done',
] as const;
type SingleName = (typeof SINGLE)[number];

const reason = (rc: number) => (rc === 127 ? 'command not found' : `exit status ${rc}`);

/** Parses the stdout of the script from `buildFactsScript`. Throws FactsParseError naming the section. */
export function parseFacts(stdout: string): HostFacts {
  const sections = splitSections(stdout);
  const single = new Map<SingleName, Section>();
  const optional = new Map<string, Section>();
  const repeated: Record<'sysctl' | 'file' | 'tc' | 'rt-tables' | 'journal-file' | 'journal-change', Section[]> = { sysctl: [], file: [], tc: [], 'rt-tables': [], 'journal-file': [], 'journal-change': [] };
  for (const s of sections) {
    if (s.name === 'sysctl' || s.name === 'file' || s.name === 'tc' || s.name === 'rt-tables' || s.name === 'journal-file' || s.name === 'journal-change') repeated[s.name].push(s);
    else if ((SINGLE as readonly string[]).includes(s.name)) {
      if (single.has(s.name as SingleName)) throw new FactsParseError(s.name, `section appears twice (line ${s.line})`);
      single.set(s.name as SingleName, s);
    }
    else if (s.name === 'nginx-config' || s.name === 'nginx-links') optional.set(s.name, s);
    // unknown sections (a newer script) are ignored
  }
  const first = sections[0];
  if (first?.name !== 'facts') {
    throw new FactsParseError('facts', 'output does not start with the facts header: not produced by the dsrctl facts script', stdout.split('\n')[0] ?? '');
  }
  const format = parseKeyValues('facts', first.body).get('format');
  if (format !== String(FACTS_FORMAT_VERSION)) throw new FactsParseError('facts', `unsupported format (expected ${FACTS_FORMAT_VERSION})`, first.body);
  for (const name of SINGLE) {
    if (!single.has(name)) throw new FactsParseError(name, 'section missing (output truncated?)');
  }
  const get = (name: SingleName) => single.get(name)!;

  const incomplete: { section: string; reason: string }[] = [];
  /** body of a section whose command must succeed; a failure is recorded, the body is then "" */
  const ok = (name: SingleName): string => {
    const s = get(name);
    if (s.rc === 0) return s.body;
    incomplete.push({ section: name, reason: reason(s.rc) });
    return '';
  };
  /** ip is what dsrctl plans from: without it there are no facts worth planning on */
  const must = (name: SingleName): string => {
    const s = get(name);
    if (s.rc !== 0) throw new FactsParseError(name, `command failed (${reason(s.rc)})`, s.body.split('\n')[0] ?? '');
    return s.body;
  };

  const tableNumbers = parseRtTables(repeated['rt-tables'].map((t) => t.body).join('\n'));
  const hostname = must('hostname').trim();
  const kernel = must('kernel').trim();
  const uidText = must('uid').trim();
  if (!/^\d+$/.test(uidText)) throw new FactsParseError('uid', 'not a number', uidText);
  const systemd = get('systemd').body.trim();
  if (systemd !== 'yes' && systemd !== 'no') throw new FactsParseError('systemd', 'expected yes or no', systemd);

  // sysctl
  const sysctl: Record<string, string> = {};
  const sysctlMissing: string[] = [];
  for (const s of repeated.sysctl) {
    const entry = parseSysctl(s.body);
    if (entry.status === 'ok') sysctl[entry.key] = entry.value;
    else if (entry.status === 'missing') sysctlMissing.push(entry.key);
    else incomplete.push({ section: 'sysctl', reason: `${entry.key}: unreadable` });
  }

  // iptables
  const ver = get('iptables-version');
  const iptables: IptablesFacts = { variant: null, save: '', tables: {} };
  if (ver.rc !== 127) {
    if (ver.rc !== 0) incomplete.push({ section: 'iptables-version', reason: reason(ver.rc) });
    iptables.variant = parseIptablesVariant(ver.body);
    const save = get('iptables-save');
    if (save.rc === 0) {
      iptables.save = save.body === '' ? '' : `${save.body}\n`;
      iptables.tables = parseIptablesSave(save.body);
    } else {
      iptables.error = `iptables-save failed (${reason(save.rc)})`;
      incomplete.push({ section: 'iptables-save', reason: reason(save.rc) });
    }
  }

  // files
  const files: Record<string, FileFact> = {};
  const unreadable = (f: FileFact, section: string) => {
    if (f.exists && f.type === 'file' && f.readable === false) incomplete.push({ section, reason: `${f.path}: unreadable` });
  };
  // from a facts script that reads it (an optional section: older fixtures lack it)
  const stateSection = sections.find((s) => s.name === 'dsrctl-state');
  const stateDir = stateSection ? parseFileSection(stateSection.body, 'dsrctl-state') : null;
  for (const s of repeated.file) {
    const f = parseFileSection(s.body);
    files[f.path] = f;
    unreadable(f, 'file');
  }
  const state = (name: 'dsrctl-journal' | 'dsrctl-lock' | 'dsrctl-reverted'): string | null => {
    const f = parseFileSection(get(name).body, name);
    unreadable(f, name);
    return f.content ?? null;
  };

  return {
    hostname,
    kernel,
    uid: Number(uidText),
    hasSystemd: systemd === 'yes',
    interfaces: parseIpAddr(must('ip-addr')),
    rules: numericTables(parseIpRules(must('ip-rule')), tableNumbers),
    routes: numericTables(parseIpRoutes(must('ip-route')), tableNumbers),
    sysctl,
    sysctlMissing,
    iptables,
    nginx: parseNginx(get('nginx-version'), ok('nginx-modules'), ok('nginx-pid')),
    ...(optional.has('nginx-config') ? { nginxConfig: parseNginxConfigSection(optional.get('nginx-config')!, optional.get('nginx-links')?.body ?? '') } : {}),
    files,
    nft: parseNft(get('nft')),
    nat: parseNatProbe(get('nat-probe').body),
    tc: Object.fromEntries(repeated.tc.map((t) => parseTc(t.body))),
    stateDir,
    journalBackups: Object.fromEntries(repeated['journal-file'].flatMap((s) => parseJournalFile(s.body))),
    journalUndos: Object.fromEntries(repeated['journal-change'].flatMap((s) => parseJournalChange(s.body))),
    dsrctl: { journal: state('dsrctl-journal'), lock: state('dsrctl-lock'), reverted: state('dsrctl-reverted') },
    ...(sections.some((s) => s.name === 'read') ? { reads: parseReads(sections.filter((s) => s.name === 'read')) } : {}),
    ...(sections.some((s) => s.name === 'health') ? { health: parseHealthProcess(sections.find((s) => s.name === 'health')!.body) } : {}),
    incomplete,
  };
}

/** One `journal-file` section: path=, and run= content= (base64) when a run still in place has a copy. */
function parseJournalFile(body: string): [string, { run: string; content: string }][] {
  const kv = parseKeyValues('journal-file', body);
  const path = kv.get('path');
  if (!path) throw new FactsParseError('journal-file', 'no path= line', body.split('\n')[0] ?? '');
  const run = kv.get('run');
  const b64 = kv.get('content');
  if (run === undefined || b64 === undefined) return [];
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) throw new FactsParseError('journal-file', `${path}: content= is not base64`, b64.slice(0, 80));
  // latin1, like every file's content in the facts: one char per byte
  return [[path, { run, content: Buffer.from(b64, 'base64').toString('latin1') }]];
}

/** One `journal-change` section: id=, and run= undo= (base64) when a run still in place made that change. */
function parseJournalChange(body: string): [string, { run: string; undo: string }][] {
  const kv = parseKeyValues('journal-change', body);
  const id = kv.get('id');
  if (!id) throw new FactsParseError('journal-change', 'no id= line', body.split('\n')[0] ?? '');
  const run = kv.get('run');
  const b64 = kv.get('undo');
  if (run === undefined || b64 === undefined) return [];
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) throw new FactsParseError('journal-change', `${id}: undo= is not base64`, b64.slice(0, 80));
  return [[id, { run, undo: Buffer.from(b64, 'base64').toString('utf8') }]];
}

/** `rt_tables`: "100 transparent" lines -> name -> number (main, local and default keep their names). */
export function parseRtTables(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(\S+)/.exec(line);
    if (m && !['main', 'local', 'default', 'unspec'].includes(m[2]!) && !map.has(m[2]!)) map.set(m[2]!, m[1]!);
  }
  return map;
}

/** A table named in rt_tables is the same table as its number: plans compare numbers. */
function numericTables<T extends { table?: string }>(entries: T[], names: Map<string, string>): T[] {
  return entries.map((e) => (e.table && names.has(e.table) ? { ...e, table: names.get(e.table)! } : e));
}

/** The `nginx-config` section (each dump line behind a "|") and the `nginx-links` lines (path TAB target TAB uid:gid TAB mtime). */
export function parseNginxConfigSection(config: { rc: number; body: string }, links: string): NginxConfigFacts {
  if (config.rc === 127) return { status: 'absent' };
  if (config.rc !== 0) return { status: 'failed', error: config.body.trim() || `nginx -T: ${reason(config.rc)}` };
  const dump = config.body === '' ? '' : config.body.split('\n').map((l) => {
    if (!l.startsWith('|')) throw new FactsParseError('nginx-config', 'line without the "|" prefix', l);
    return l.slice(1);
  }).join('\n');
  const map: Record<string, { target: string; owner: string; mtime: string }> = {};
  for (const l of links.split('\n')) {
    if (l === '') continue;
    const [path, target, owner = '', mtime = ''] = l.split('\t');
    if (!path || !target) throw new FactsParseError('nginx-links', 'expected PATH TAB TARGET TAB UID:GID TAB MTIME', l);
    map[path] = { target, owner, mtime };
  }
  return { status: 'ok', dump, links: map };
}

/** `read` sections: path, exists, content (base64 of one read) -> path -> bytes (latin1) or null. */
export function parseReads(sections: Section[]): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const s of sections) {
    const kv = parseKeyValues('read', s.body);
    const path = kv.get('path');
    if (!path) throw new FactsParseError('read', 'no path= line', s.body.split('\n')[0] ?? '');
    out[path] = kv.get('exists') === '1' ? Buffer.from(kv.get('content') ?? '', 'base64').toString('latin1') : null;
  }
  return out;
}

export function parseHealthProcess(body: string): HealthProcessFacts {
  const kv = parseKeyValues('health', body);
  const pid = kv.get('pid');
  return {
    pid: pid ? Number(pid) : null,
    alive: kv.get('alive') === '1',
    ...(kv.has('unit_active') ? { unitActive: kv.get('unit_active')!, unitEnabled: kv.get('unit_enabled') ?? '' } : {}),
  };
}
