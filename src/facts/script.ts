import { FACTS_FORMAT_VERSION, SHELL_PRELUDE } from './format.js';
import type { FactsRequest } from './types.js';
import { FACT_SECTIONS } from './sections/index.js';
import { fileinfoLine } from './sections/files.js';
import { ACTIVE_RUN_STATUSES, STATE_DIR } from '../apply/paths.js';
import { quote } from 'shell-quote';

export { sysctlProcPath } from './sections/sysctl.js';
export { checkFactsPath } from './sections/files.js';
export { checkIfname } from './sections/nat.js';
export { DSRCTL_STATE_FILES, DSRCTL_STATE_DIR } from './sections/journal.js';

/** Shell helpers (SHELL_PRELUDE and the facts' own); every marker line comes from `b` and `e`. */
const PRELUDE = String.raw`# dsrctl facts: read-only, POSIX sh; every section prints what it can
${SHELL_PRELUDE}# out TEXT: print a captured output with its newline back (nothing when empty)
out() { [ -z "$1" ] || printf '%s\n' "$1"; }
# run NAME CMD...: the command's stdout is the body (stderr dropped), its exit status goes in the end marker
run() {
  _n=$1; shift
  b "$_n"
  if have "$1"; then _o=$("$@" 2>/dev/null); _r=$?; out "$_o"; else _r=127; fi
  e "$_n" "$_r"
}
NL='
'
# pop: _v = the first line of _q, which loses it (every line of _q ends in a newline); no process,
# and no heredoc (dash forks for one over 4 KiB)
pop() { _v=${'$'}{_q%%"$NL"*}; _q=${'$'}{_q#*"$NL"}; }
# digits TEXT: _o = TEXT's digits (tr -cd 0-9, by the shell)
digits() { _o=; _x=$1; while [ -n "$_x" ]; do _y=${'$'}{_x#?}; case ${'$'}{_x%"$_y"} in [0-9]) _o=$_o${'$'}{_x%"$_y"} ;; esac; _x=$_y; done; }
# b64: stdin as one line of base64. b64_probe (in the script's own shell, not in a $(...), so it
# runs once) first: base64 -w0 where it exists, else base64 | tr -d '\n'
b64_probe() { [ -n "${'$'}{_b64:-}" ] || if base64 -w0 </dev/null >/dev/null 2>&1; then _b64=w0; else _b64=tr; fi; }
b64() { if [ "$_b64" = tr ]; then base64 | tr -d '\n'; else base64 -w0; fi; }
# slurp FILE: _t = FILE's text as $(cat FILE) gives it (trailing newlines cut), read by the shell
# itself; false when it cannot be opened. Not for /proc/sys: dash reads a byte at a time, and a
# sysctl read at an offset past 0 ends there (tcp_rmem would read "4")
slurp() {
  _t=; _sl=
  { while IFS= read -r _l; do _t=$_t$_sl$_l; _sl=$NL; done; _t=$_t$_sl$_l; } 2>/dev/null <"$1" || return 1
  chomp
}
# chomp: _t loses its trailing newlines, as $(...) cuts them
chomp() { while :; do case $_t in *"$NL") _t=${'$'}{_t%"$NL"} ;; *) return 0 ;; esac; done; }
# nlines TEXT: _c = how many lines TEXT has (every line ends in a newline)
nlines() { _q=$1; _c=0; while [ -n "$_q" ]; do pop; _c=$((_c + 1)); done; }
`;

/**
 * dsrctl_left PREFIX...: true when a run of dsrctl still in place (its status one of
 * ACTIVE_RUN_STATUSES) recorded a change whose id starts with one of PREFIX. Builtins only: no
 * process is started however many runs the journal keeps.
 */
export const leftHelper = (stateDir: string = STATE_DIR) => String.raw`dsrctl_left() {
  for _r in ${quote([stateDir])}/runs/*/; do
    [ -f "${'$'}{_r}status" ] || continue
    _s=; { IFS= read -r _s || :; } <"${'$'}{_r}status" 2>/dev/null
    case $_s in ${ACTIVE_RUN_STATUSES.join('|')}) ;; *) continue ;; esac
    for _i in "${'$'}{_r}changes/"*.id; do
      [ -f "$_i" ] || continue
      _c=; { IFS= read -r _c || :; } <"$_i" 2>/dev/null
      for _p in "$@"; do case $_c in "$_p"*) return 0 ;; esac; done
    done
  done
  return 1
}
`;

/**
 * The facts a request reads, in registry order: every fact that is not optional, the optional ones
 * it names (all of them without `sections`), and, behind a journal test (`when`), the optional ones
 * whose leftovers prune must see.
 */
export function factsParts(req: FactsRequest): { section: (typeof FACT_SECTIONS)[number]; when?: string }[] {
  const out: { section: (typeof FACT_SECTIONS)[number]; when?: string }[] = [];
  for (const section of FACT_SECTIONS) {
    const opt = 'optional' in section ? section.optional : undefined;
    if (!opt || !req.sections || req.sections.includes(section.id)) out.push({ section });
    else if (opt.leftBy?.length) out.push({ section, when: `dsrctl_left ${quote(opt.leftBy)}` });
  }
  return out;
}

/**
 * The read-only POSIX sh script that gathers one host's facts in a single exec (`sh -s`, script on
 * stdin): the `facts` header, every section of the registry (sections/index.ts) in order, `done`.
 * Runs under dash, as root or not; a missing tool only empties its own section. Keys and paths are
 * validated (throws on bad ones) and shell-quoted by the sections.
 * `epilogue`: more shell run after the facts in the same exec (the run lock), its output after `done`.
 */
export function buildFactsScript(req: FactsRequest, epilogue = ''): string {
  return `${factsDefinitions(req)}dsrctl_facts </dev/null\n${epilogue ? `${epilogue}\n` : ''}exit 0\n`;
}

/**
 * The facts script's definitions: the helpers and the function `dsrctl_facts`, which prints
 * every section. Call it with stdin from /dev/null (see buildFactsScript).
 */
export function factsDefinitions(req: FactsRequest): string {
  const parts = factsParts(req);
  const helpers = [...parts.map((p) => p.section.helpers ?? ''), parts.some((p) => p.when) ? leftHelper() : ''].join('');
  // every fact's files in one fileinfo call (a fact behind a journal test reads its own behind it)
  const batch = parts.flatMap(({ section, when }) => (when ? [] : (section.files?.(req) ?? [])));
  const first = parts.findIndex(({ section, when }) => !when && section.files?.(req).length);
  const body: string[] = [
    `  b facts; printf 'format=%s\\n' ${FACTS_FORMAT_VERSION}; e facts 0`,
    ...parts.flatMap(({ section, when }, i) => {
      const own = when ? fileinfoLine(section.files?.(req) ?? []) : i === first ? fileinfoLine(batch) : [];
      const lines = [...own, ...section.shell(req)];
      return when ? [`  if ${when}; then`, ...lines, '  fi'] : lines;
    }),
    '  b done; e done 0',
  ];
  // Everything runs inside one function called with stdin from /dev/null: the shell reads the whole
  // definition before running anything, and no command can eat the rest of the script from `sh -s`.
  return `${PRELUDE}${helpers}dsrctl_facts() {\n${body.join('\n')}\n}\n`;
}
