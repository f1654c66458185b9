#!/usr/bin/env node
/**
 * `npm run bundle`: src/cli.ts and everything it imports -> the one-file CLI dist/cli.js (ssh2,
 * listr2 and @inquirer/prompts stay outside: loaded from node_modules when used). From the
 * sources, not from tsc's dist/cli.js: the file it writes, so a second run would bundle the bundle.
 *
 * Two things make the file cheaper to start, every run:
 * - zod's locales: zod imports all of its ~50 message languages (400 KB of the bundle, evaluated at
 *   start-up) to offer `z.locales`; dsrctl uses none of them (English is set by zod's schemas.js
 *   from locales/en.js directly), so the index keeps only `en`.
 * - ASCII only: esbuild escapes non-ASCII in strings, but keeps comments as written; one non-Latin-1
 *   character in a comment makes V8 hold and scan the whole 1.7 MB source as UTF-16.
 */
import { build } from 'esbuild';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist/cli.js');

const zodLocalesEnOnly = {
  name: 'zod-locales-en-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
      contents: 'export { default as en } from "./en.js";\n',
      resolveDir: dirname(args.path),
      loader: 'js',
    }));
  },
};

await build({
  entryPoints: [join(root, 'src/cli.ts')],
  outfile: out,
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
  external: ['ssh2', 'listr2', '@inquirer/prompts'],
  banner: { js: "import { createRequire as __dsrctlCreateRequire } from 'node:module'; const require = __dsrctlCreateRequire(import.meta.url);" },
  plugins: [zodLocalesEnOnly],
});

// Left over non-ASCII can only be in comments (esbuild's default charset escapes it everywhere
// else): one '?' per UTF-16 unit keeps the source map's columns.
const text = readFileSync(out, 'utf8');
const ascii = text.replace(/[^\x00-\x7f]/g, (c) => '?'.repeat(c.length));
if (ascii !== text) writeFileSync(out, ascii);
chmodSync(out, 0o755);
