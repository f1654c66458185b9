import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { unifiedDiff } from './diff.js';
import { setMainDirective, ensureStreamContext } from './main-directive.js';

const debian = readFileSync(new URL('../../../test/fixtures/nginx/debian-nginx.conf', import.meta.url), 'utf8');

/** Apply a unified diff produced by unifiedDiff, strictly (context must match). */
function applyPatch(before: string, patch: string): string {
  const src = before === '' ? [] : before.match(/[^\n]*\n|[^\n]+$/g)!;
  const lines = patch.split('\n');
  lines.pop(); // the final ''
  let k = 2;
  const out: string[] = [];
  let pos = 0;
  while (k < lines.length) {
    const m = /^@@ -(\d+),(\d+) \+(\d+),(\d+) @@$/.exec(lines[k]!);
    if (!m) throw new Error(`bad hunk header ${lines[k]}`);
    const oldStart = Number(m[1]);
    const oldCount = Number(m[2]);
    const startIdx = oldCount === 0 ? oldStart : oldStart - 1;
    while (pos < startIdx) out.push(src[pos++]!);
    k++;
    let seenOld = 0;
    let seenNew = 0;
    while (k < lines.length && !lines[k]!.startsWith('@@')) {
      const l = lines[k]!;
      const noNl = lines[k + 1] === '\\ No newline at end of file';
      const text = l.slice(1) + (noNl ? '' : '\n');
      if (l[0] === ' ' || l[0] === '-') {
        if (src[pos] !== text) throw new Error(`context mismatch at old line ${pos + 1}`);
        pos++;
        seenOld++;
      }
      if (l[0] === ' ' || l[0] === '+') {
        out.push(text);
        seenNew++;
      }
      k += noNl ? 2 : 1;
    }
    expect(seenOld).toBe(oldCount);
    expect(seenNew).toBe(Number(m[4]));
  }
  while (pos < src.length) out.push(src[pos++]!);
  return out.join('');
}

describe('unifiedDiff', () => {
  it('is empty for equal texts', () => {
    expect(unifiedDiff('/etc/nginx/nginx.conf', debian, debian)).toBe('');
    expect(unifiedDiff('/x', '', '')).toBe('');
  });

  it('shows user www-data -> root with 3 lines of context', () => {
    const after = setMainDirective(debian, 'user', ['root']).content;
    expect(unifiedDiff('/etc/nginx/nginx.conf', debian, after)).toBe(
      [
        '--- /etc/nginx/nginx.conf (current)',
        '+++ /etc/nginx/nginx.conf (planned)',
        '@@ -1,4 +1,4 @@',
        '-user www-data;',
        '+user root;',
        ' worker_processes auto;',
        ' pid /run/nginx.pid;',
        ' error_log /var/log/nginx/error.log;',
        '',
      ].join('\n'),
    );
  });

  it('shows the appended stream block at the end of the Debian file', () => {
    const after = ensureStreamContext(debian, '/etc/nginx/dsrctl-stream.d/*.conf').content;
    const d = unifiedDiff('/etc/nginx/nginx.conf', debian, after);
    const n = debian.split('\n').length - 1;
    expect(d).toBe(
      [
        '--- /etc/nginx/nginx.conf (current)',
        '+++ /etc/nginx/nginx.conf (planned)',
        `@@ -${n - 2},3 +${n - 2},7 @@`,
        ' #\t\tproxy      on;',
        ' #\t}',
        ' #}',
        '+',
        '+stream {',
        '+\tinclude /etc/nginx/dsrctl-stream.d/*.conf;',
        '+}',
        '',
      ].join('\n'),
    );
    expect(applyPatch(debian, d)).toBe(after);
  });

  it('handles a new file (before = null)', () => {
    expect(unifiedDiff('/etc/nginx/conf.d/dsrctl.conf', null, 'a\nb\n')).toBe(
      '--- /dev/null\n+++ /etc/nginx/conf.d/dsrctl.conf (planned)\n@@ -0,0 +1,2 @@\n+a\n+b\n',
    );
    expect(unifiedDiff('/f', 'a\n', '')).toBe('--- /f (current)\n+++ /f (planned)\n@@ -1,1 +0,0 @@\n-a\n');
  });

  it('marks a missing final newline', () => {
    expect(unifiedDiff('/f', 'a\nb', 'a\nb\n')).toBe(
      '--- /f (current)\n+++ /f (planned)\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n',
    );
  });

  it('splits distant changes into hunks and merges near ones', () => {
    const base = Array.from({ length: 30 }, (_, i) => `line ${i + 1}`);
    const far = [...base];
    far[1] = 'X';
    far[20] = 'Y';
    const d = unifiedDiff('/f', base.join('\n') + '\n', far.join('\n') + '\n');
    expect(d.match(/^@@.*$/gm)).toEqual(['@@ -1,5 +1,5 @@', '@@ -18,7 +18,7 @@']);
    const near = [...base];
    near[5] = 'X';
    near[12] = 'Y'; // 6 unchanged lines between: one hunk
    const d2 = unifiedDiff('/f', base.join('\n') + '\n', near.join('\n') + '\n');
    expect(d2.match(/^@@.*$/gm)).toEqual(['@@ -3,14 +3,14 @@']);
    const apart = [...base];
    apart[5] = 'X';
    apart[13] = 'Y'; // 7 unchanged lines between: two hunks
    expect(unifiedDiff('/f', base.join('\n') + '\n', apart.join('\n') + '\n').match(/^@@.*$/gm)).toHaveLength(2);
  });

  it('round-trips random edits through its own applier and GNU patch', () => {
    let seed = 42;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const dir = mkdtempSync(join(tmpdir(), 'dsrctl-diff-'));
    try {
      for (let t = 0; t < 200; t++) {
        const a = Array.from({ length: rnd(25) }, () => `l${rnd(6)}`);
        const b = a.filter(() => rnd(5) !== 0).flatMap((l) => (rnd(6) === 0 ? [l, `n${rnd(6)}`] : [l]));
        if (rnd(4) === 0) b.unshift('top');
        const before = a.join('\n') + (a.length && rnd(3) ? '\n' : '');
        const after = b.join('\n') + (b.length && rnd(3) ? '\n' : '');
        const d = unifiedDiff('/f', before, after);
        if (before === after) {
          expect(d).toBe('');
          continue;
        }
        expect(applyPatch(before, d)).toBe(after);
        if (t % 10 === 0) {
          writeFileSync(join(dir, 'f'), before);
          writeFileSync(join(dir, 'p'), d);
          const r = spawnSync('patch', ['-s', '-f', '-u', join(dir, 'f'), '-i', join(dir, 'p')], { encoding: 'utf8' });
          expect(r.status, `${r.stdout}${r.stderr}\n${d}`).toBe(0);
          expect(readFileSync(join(dir, 'f'), 'utf8')).toBe(after);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

