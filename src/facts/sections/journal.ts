import { quote } from 'shell-quote';
import { FactsParseError, parseKeyValues } from '../format.js';
import { parseFileSection } from '../parsers/files.js';
import { ACTIVE_RUN_STATUSES } from '../../apply/paths.js';
import { encodePath } from '../../resources/nginx-files.js';
import { checkFactsPath, fileFacts } from './files.js';
import type { FactSection } from './section.js';
import type { FileFact } from '../types.js';

/** Its part of HostFacts. */
export interface JournalFacts {
  /** /var/lib/dsrctl itself (owner, mode, its parent); null from an older facts script */
  stateDir?: FileFact | null;
  /**
   * Requested files as the oldest run of dsrctl still in place found them: that run's byte copy
   * (runs/<run>/files/<key>), i.e. the file before dsrctl changed it. Absent: no such copy.
   */
  journalBackups?: Record<string, { run: string; content: string }>;
  /**
   * Requested change ids (e.g. "sysctl net.ipv4.ip_forward") as the oldest run still in place that
   * made one (done) recorded them: that change's undo script, i.e. how to put the original back.
   */
  journalUndos?: Record<string, { run: string; undo: string }>;
  /** dead-man's switch / journal state under /var/lib/dsrctl, raw */
  dsrctl: { journal: string | null; lock: string | null; reverted: string | null };
}

/** Files under /var/lib/dsrctl that the facts always read (dead-man's switch / journal state). */
export const DSRCTL_STATE_FILES = {
  /** id of the last run applied on this host (its journal is runs/<id>/) */
  journal: '/var/lib/dsrctl/last-run',
  lock: '/var/lib/dsrctl/lock',
  reverted: '/var/lib/dsrctl/reverted',
} as const;

/** dsrctl's journal directory: root's alone, or backups and undo scripts could be redirected or read. */
export const DSRCTL_STATE_DIR = '/var/lib/dsrctl';

/**
 * dsrctl's own state on the host: the last run, the lock, a revert by the dead-man's switch, the
 * journal directory's owner and mode; and from the journal, what the oldest run still in place
 * found (its backups of files, its undo of changes) for plans that put things back.
 */
export const journal: FactSection<JournalFacts> = {
  id: 'journal',
  single: ['dsrctl-journal', 'dsrctl-lock', 'dsrctl-reverted'],
  repeated: ['journal-file', 'journal-change'],
  helpers: String.raw`# stateinfo NAME PATH: one of dsrctl's small text files, read by the shell itself (no process):
# exists=, and text= followed by its lines, each behind a "|" (no line can look like a marker)
stateinfo() {
  b "$1"
  printf 'path=%s\n' "$2"
  if [ -f "$2" ]; then
    printf 'exists=1\ntype=file\n'
    if { : <"$2"; } 2>/dev/null; then
      printf 'text=\n'
      while IFS= read -r _l || [ -n "$_l" ]; do printf '|%s\n' "$_l"; done <"$2"
    else printf 'readable=0\n'; fi
  elif [ -e "$2" ] || [ -L "$2" ]; then printf 'exists=1\ntype=other\n'
  else printf 'exists=0\n'; fi
  e "$1" 0
}
# journal_file PATH ENCODED: PATH as the oldest run whose changes are still in place found it: that
# run's first backup of it (files/NNN-ENCODED, the lowest NNN). Runs oldest first: a glob is sorted
# by byte (dash calls no setlocale), as ls | sort in the C locale was; statuses read by the shell.
journal_file() {
  b journal-file
  printf 'path=%s\n' "$1"
  for _r in /var/lib/dsrctl/runs/*/; do
    _r=${'$'}{_r%/}; _r=${'$'}{_r##*/}
    slurp "/var/lib/dsrctl/runs/$_r/status" || _t=
    case $_t in
      ${ACTIVE_RUN_STATUSES.join('|')}) ;;
      *) continue ;;
    esac
    _jf=
    for _c in "/var/lib/dsrctl/runs/$_r/files/"[0-9][0-9][0-9]-"$2"; do [ -f "$_c" ] && { _jf=$_c; break; }; done
    if [ -n "$_jf" ] && [ -r "$_jf" ] && have base64; then b64_probe; printf 'run=%s\n' "$_r"; printf 'content=%s\n' "$(b64 <"$_jf")"; break; fi
  done
  e journal-file 0
}
# journal_change ID: the undo of change ID (done) in the oldest run still in place that made one
journal_change() {
  b journal-change
  printf 'id=%s\n' "$1"
  _jc=
  for _r in /var/lib/dsrctl/runs/*/; do
    _r=${'$'}{_r%/}; _r=${'$'}{_r##*/}
    slurp "/var/lib/dsrctl/runs/$_r/status" || _t=
    case $_t in
      ${ACTIVE_RUN_STATUSES.join('|')}) ;;
      *) continue ;;
    esac
    for _i in "/var/lib/dsrctl/runs/$_r/changes/"*.id; do
      [ -f "$_i" ] && slurp "$_i" && [ "$_t" = "$1" ] && slurp "${'$'}{_i%.id}.state" && [ "$_t" = done ] && [ -r "${'$'}{_i%.id}.undo" ] || continue
      _jc=${'$'}{_i%.id}.undo; break
    done
    if [ -n "$_jc" ] && have base64; then b64_probe; printf 'run=%s\n' "$_r"; printf 'undo=%s\n' "$(b64 <"$_jc")"; break; fi
  done
  e journal-change 0
}
`,
  shell: (req) => [
    ...[...new Set(req.journalChanges ?? [])].map((id) => {
      if (!/^[A-Za-z0-9 ._\/:-]{1,200}$/.test(id)) throw new Error(`invalid change id ${JSON.stringify(id)}`);
      return `  journal_change ${quote([id])}`;
    }),
    ...[...new Set(req.journalFiles ?? [])].map(checkFactsPath).map((p) => `  journal_file ${quote([p])} ${quote([encodePath(p)])}`),
    `  stateinfo dsrctl-journal ${quote([DSRCTL_STATE_FILES.journal])}`,
    `  stateinfo dsrctl-lock ${quote([DSRCTL_STATE_FILES.lock])}`,
    `  stateinfo dsrctl-reverted ${quote([DSRCTL_STATE_FILES.reverted])}`,
  ],
  files: () => [['dsrctl-state', DSRCTL_STATE_DIR]],
  parse(ctx) {
    const state = (name: 'dsrctl-journal' | 'dsrctl-lock' | 'dsrctl-reverted'): string | null => {
      const body = ctx.one(name).body;
      // stateinfo's text= (older scripts: fileinfo's base64 content=)
      const text = parseKeyValues(name, body, ['text']).get('text');
      if (text !== undefined) return stateText(name, text);
      const f = parseFileSection(body, name);
      if (f.exists && f.type === 'file' && f.readable === false) ctx.incomplete.push({ section: name, reason: `${f.path}: unreadable` });
      return f.content ?? null;
    };
    // from a facts script that reads it (older fixtures lack it)
    const stateSection = ctx.maybe('dsrctl-state');
    return {
      stateDir: stateSection ? fileFacts(ctx, 'dsrctl-state')[0]! : null,
      // file copies as latin1, like every file's content in the facts: one char per byte
      journalBackups: Object.fromEntries(ctx.all('journal-file').flatMap((s) => parseJournalEntry('journal-file', s.body, 'path', 'content', 'latin1'))),
      journalUndos: Object.fromEntries(ctx.all('journal-change').flatMap((s) => parseJournalEntry('journal-change', s.body, 'id', 'undo', 'utf8'))),
      dsrctl: { journal: state('dsrctl-journal'), lock: state('dsrctl-lock'), reverted: state('dsrctl-reverted') },
    };
  },
};

/** stateinfo's text=: its lines after "|", each with its newline back. */
function stateText(section: string, text: string): string {
  const lines = text.split('\n').slice(1);
  if (lines.at(-1) === '') lines.pop();
  return lines.map((l) => {
    if (!l.startsWith('|')) throw new FactsParseError(section, 'line without the "|" prefix', l);
    return `${l.slice(1)}\n`;
  }).join('');
}

/**
 * One `journal-file` (key path=, base64 content=) or `journal-change` (key id=, base64 undo=)
 * section: the key, and run= with the decoded value when a run still in place has one.
 */
function parseJournalEntry<V extends string>(section: 'journal-file' | 'journal-change', body: string, keyName: string, valueName: V, encoding: BufferEncoding): [string, { run: string } & Record<V, string>][] {
  const kv = parseKeyValues(section, body);
  const key = kv.get(keyName);
  if (!key) throw new FactsParseError(section, `no ${keyName}= line`, body.split('\n')[0] ?? '');
  const run = kv.get('run');
  const b64 = kv.get(valueName);
  if (run === undefined || b64 === undefined) return [];
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) throw new FactsParseError(section, `${key}: ${valueName}= is not base64`, b64.slice(0, 80));
  return [[key, { run, [valueName]: Buffer.from(b64, 'base64').toString(encoding) } as { run: string } & Record<V, string>]];
}
