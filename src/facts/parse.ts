import { FACTS_FORMAT_VERSION, FactsParseError, parseKeyValues, splitSections, type Section } from './format.js';
import type { HostFacts } from './types.js';
import { FACT_SECTIONS, type ParseContext } from './sections/index.js';
import { reason } from './sections/section.js';

export { FactsParseError } from './format.js';
export { parseRtTables } from './sections/ip.js';
export { parseNginxConfigSection } from './sections/nginx.js';
export { parseReads } from './sections/reads.js';
export { parseHealthProcess } from './sections/health.js';

/** Sections a facts output has at most once: the header, each fact's own, `done`. */
const SINGLE = ['facts', ...FACT_SECTIONS.flatMap((s) => s.single ?? []), 'done'];

/**
 * Parses the stdout of the script from `buildFactsScript`: checks the frame (header first, format,
 * every single section once), then lets each fact of the registry read its sections. Throws
 * FactsParseError naming the section. Unknown sections (a newer script) are ignored.
 */
export function parseFacts(stdout: string): HostFacts {
  const sections = splitSections(stdout);
  const single = new Map<string, Section>();
  for (const s of sections) {
    if (!SINGLE.includes(s.name)) continue;
    if (single.has(s.name)) throw new FactsParseError(s.name, `section appears twice (line ${s.line})`);
    single.set(s.name, s);
  }
  const first = sections[0];
  if (first?.name !== 'facts') {
    throw new FactsParseError('facts', 'output does not start with the facts header: not produced by the dsrctl facts script', stdout.split('\n')[0] ?? '');
  }
  const format = parseKeyValues('facts', first.body).get('format');
  if (format !== String(FACTS_FORMAT_VERSION)) throw new FactsParseError('facts', `unsupported format (expected ${FACTS_FORMAT_VERSION})`, first.body);
  // an optional fact that was not asked for prints none of its sections; one that printed any
  // printed all (the output ends with `done`, so it was not cut in between)
  const notRead = FACT_SECTIONS.filter((s) => s.optional && !sections.some((x) => [...(s.single ?? []), ...(s.repeated ?? [])].includes(x.name)));
  const skipped = new Set(notRead.flatMap((s) => s.single ?? []));
  for (const name of SINGLE) if (!single.has(name) && !skipped.has(name)) throw new FactsParseError(name, 'section missing (output truncated?)');

  const incomplete: { section: string; reason: string }[] = [];
  const one = (name: string) => {
    const s = single.get(name);
    if (!s) throw new Error(`facts section "${name}" is not declared single by any fact`);
    return s;
  };
  const ctx: ParseContext = {
    sections,
    one,
    all: (name) => sections.filter((s) => s.name === name),
    maybe: (name) => sections.find((s) => s.name === name),
    ok(name) {
      const s = one(name);
      if (s.rc === 0) return s.body;
      incomplete.push({ section: name, reason: reason(s.rc) });
      return '';
    },
    // ip is what dsrctl plans from: without it there are no facts worth planning on
    must(name) {
      const s = one(name);
      if (s.rc !== 0) throw new FactsParseError(name, `command failed (${reason(s.rc)})`, s.body.split('\n')[0] ?? '');
      return s.body;
    },
    incomplete,
  };
  const facts = Object.assign({}, ...FACT_SECTIONS.map((s) => (notRead.includes(s) ? s.optional!.notRead() : s.parse(ctx)))) as HostFacts;
  facts.incomplete = incomplete;
  if (notRead.length) facts.notRead = notRead.map((s) => s.id);
  return facts;
}
