/** Small helpers of the wizard: validators, paths, writing the file. */
import { existsSync, mkdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { validateAt, type Choice, type Draft, type Mode, type Path } from './questions.js';
import { OTHER, type Validate, type WizardIo } from './state.js';

// ---------------------------------------------------------------------------------------------

export function validator(draft: () => Draft, path: Path, parse: (s: string) => unknown = (s) => s.trim()): Validate {
  return (s: string) => validateAt(draft(), path, parse(s));
}

export function expandHome(p: string): string {
  return p === '~' ? homedir() : p.startsWith('~/') ? join(homedir(), p.slice(2)) : p;
}

export function displayPath(cwd: string, p: string): string {
  const rel = relative(cwd, p);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : p;
}

export function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

export function suggestName(hostname: string | undefined, mode: Mode): string {
  const h = hostname?.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '');
  return h ? `${h}-${mode}` : mode;
}

export function checkTargetPath(p: string): true | string {
  if (existsSync(p) && statSync(p).isDirectory()) return `${p} is a directory`;
  let dir = dirname(p);
  while (!existsSync(dir)) dir = dirname(dir);
  if (!statSync(dir).isDirectory()) return `${dir} is not a directory`;
  return true;
}

/** Write through a temp file in the same directory and rename: a reader never sees half a file. */
export function writeAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, text, { mode: 0o644, flag: 'wx' });
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* not there */
    }
    throw e;
  }
}

/** Pick from what the facts show, or type it; either way the schema checks it. */
export async function pickOrType(
  io: WizardIo,
  draft: () => Draft,
  path: Path,
  message: string,
  choices: Choice<string>[],
  def?: string,
  more?: (value: string) => true | string,
): Promise<string> {
  const schema = validator(draft, path);
  const check = (s: string) => {
    const r = schema(s);
    return r === true && more ? more(s.trim()) : r;
  };
  for (;;) {
    let value: string;
    if (choices.length) {
      value = await io.ask.select<string>({
        message,
        choices: [...choices, { value: OTHER, name: 'type another' }],
        ...(def && choices.some((c) => c.value === def) ? { default: def } : {}),
      });
      if (value === OTHER) value = (await io.ask.input({ message, validate: check })).trim();
    } else value = (await io.ask.input({ message, ...(def ? { default: def } : {}), validate: check })).trim();
    const ok = check(value);
    if (ok === true) return value;
    io.say(`  ${ok}`); // a picked choice the schema refuses (e.g. the public address again)
  }
}
