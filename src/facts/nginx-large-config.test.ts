/**
 * The nginx facts of a proxy whose configuration includes a large file (a generated map, a
 * blocklist): read within the facts exec's own 30 s limit. A shell loop that cut the `nginx -T`
 * dump from one "# configuration file" line to the next cost dash the square of the text between
 * them (288 KB: 108 s), so such a proxy could not be read at all.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFactsScript } from './script.js';
import { parseFacts } from './parse.js';

describe('nginx facts with a large included file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsrctl-nginx-large-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('lists the config files that are symlinks, after 300 KB of one file, within 30 s', () => {
    const big = join(dir, 'blocklist.conf');
    const site = join(dir, 'site.conf');
    const link = join(dir, 'sites-enabled-app');
    writeFileSync(big, Array.from({ length: 15_000 }, (_, i) => `    10.${(i >> 8) & 255}.${i & 255}.0/24 1;`).join('\n') + '\n');
    writeFileSync(site, 'server { listen 80; }\n');
    symlinkSync(site, link);
    // a stand-in nginx: -V on stderr, -T prints the dump as nginx does, file by file
    const bin = join(dir, 'bin');
    spawnSync('mkdir', [bin]);
    writeFileSync(
      join(bin, 'nginx'),
      `#!/bin/sh
case "$1" in
  -V) echo 'nginx version: nginx/1.22.1' >&2; echo 'configure arguments: --prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf' >&2 ;;
  -T) echo '# configuration file /etc/nginx/nginx.conf:'; echo 'http { include ${big}; include ${link}; }'; echo
      echo '# configuration file ${big}:'; cat '${big}'; echo
      echo '# configuration file ${link}:'; cat '${link}' ;;
esac
`,
    );
    chmodSync(join(bin, 'nginx'), 0o755);
    // the script sets its own PATH: the stand-in goes first in it
    const script = buildFactsScript({ sysctls: [], files: [], sections: ['nginx'] }).replace(/^PATH=/m, `PATH=${bin}:`);
    const r = spawnSync('sh', ['-s'], { input: script, encoding: 'utf8', timeout: 30_000 });
    expect(r.error).toBeUndefined(); // not killed by the timeout
    const facts = parseFacts(r.stdout);
    expect(facts.nginxConfig?.status).toBe('ok');
    const cfg = facts.nginxConfig as { status: 'ok'; dump: string; links: Record<string, { target: string }> };
    expect(Object.keys(cfg.links)).toEqual([link]);
    expect(cfg.links[link]!.target).toBe(site);
    expect(cfg.dump.length).toBeGreaterThan(300_000);
  }, 60_000);
});
