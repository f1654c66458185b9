/**
 * A small unified diff (the format of `diff -u`, readable by `patch`) for showing planned file
 * changes. Line-based, LCS after trimming the common prefix and suffix: fine for config files of
 * a few thousand lines. Returns '' when the texts are equal.
 */

const CONTEXT = 3;
/** above this many DP cells the middle part is shown as one replacement (still correct, not minimal) */
const MAX_CELLS = 25_000_000;

type Op = { t: ' ' | '-' | '+'; line: string };

/** Split into lines that keep their '\n', so a missing final newline is a difference too. */
function splitLines(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const nl = text.indexOf('\n', start);
    if (nl < 0) break;
    out.push(text.slice(start, nl + 1));
    start = nl + 1;
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}

function diffLines(a: string[], b: string[]): Op[] {
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const ops: Op[] = a.slice(0, pre).map((line) => ({ t: ' ', line }));
  const am = a.slice(pre, a.length - suf);
  const bm = b.slice(pre, b.length - suf);
  const n = am.length;
  const m = bm.length;
  if ((n + 1) * (m + 1) > MAX_CELLS) {
    for (const line of am) ops.push({ t: '-', line });
    for (const line of bm) ops.push({ t: '+', line });
  } else {
    // lcs[i*(m+1)+j] = length of the LCS of am[i..] and bm[j..]
    const w = m + 1;
    const lcs = new Uint32Array((n + 1) * w);
    for (let i = n - 1; i >= 0; i--)
      for (let j = m - 1; j >= 0; j--)
        lcs[i * w + j] = am[i] === bm[j] ? lcs[(i + 1) * w + j + 1]! + 1 : Math.max(lcs[(i + 1) * w + j]!, lcs[i * w + j + 1]!);
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && am[i] === bm[j]) {
        ops.push({ t: ' ', line: am[i]! });
        i++;
        j++;
      } else if (j >= m || (i < n && lcs[(i + 1) * w + j]! >= lcs[i * w + j + 1]!)) {
        ops.push({ t: '-', line: am[i]! });
        i++;
      } else {
        ops.push({ t: '+', line: bm[j]! });
        j++;
      }
    }
  }
  for (const line of a.slice(a.length - suf)) ops.push({ t: ' ', line });
  return ops;
}

function range(start: number, count: number): string {
  // an empty range names the line before it (0 at the top of the file)
  return `${count === 0 ? start - 1 : start},${count}`;
}

export function unifiedDiff(path: string, before: string | null, after: string): string {
  const ops = diffLines(splitLines(before ?? ''), splitLines(after));
  const changed = ops.flatMap((op, k) => (op.t === ' ' ? [] : [k]));
  if (changed.length === 0) return '';

  // group changes whose separating context is at most 2*CONTEXT lines
  const groups: [number, number][] = [];
  for (const k of changed) {
    const last = groups[groups.length - 1];
    if (last && k - last[1] - 1 <= 2 * CONTEXT) last[1] = k;
    else groups.push([k, k]);
  }

  // line numbers (1-based) of each op in the old and new file
  const oldNo: number[] = [];
  const newNo: number[] = [];
  let o = 1;
  let nw = 1;
  for (const op of ops) {
    oldNo.push(o);
    newNo.push(nw);
    if (op.t !== '+') o++;
    if (op.t !== '-') nw++;
  }

  let out = `${before === null ? '--- /dev/null' : `--- ${path} (current)`}\n+++ ${path} (planned)\n`;
  for (const [first, last] of groups) {
    const from = Math.max(0, first - CONTEXT);
    const to = Math.min(ops.length - 1, last + CONTEXT);
    const hunk = ops.slice(from, to + 1);
    const oldCount = hunk.filter((op) => op.t !== '+').length;
    const newCount = hunk.filter((op) => op.t !== '-').length;
    out += `@@ -${range(oldNo[from]!, oldCount)} +${range(newNo[from]!, newCount)} @@\n`;
    for (const op of hunk) {
      const hasNl = op.line.endsWith('\n');
      out += op.t + (hasNl ? op.line : `${op.line}\n\\ No newline at end of file\n`);
    }
  }
  return out;
}
