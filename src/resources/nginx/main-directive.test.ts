import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureStreamContext, getMainDirective, setMainDirective } from './main-directive.js';
import { NginxParseError, formatArg, parseNginx } from './parse.js';
import { renderManagedConfig } from './render.js';

const FIXTURE = new URL('../../../test/fixtures/nginx/debian-nginx.conf', import.meta.url);
const debian = readFileSync(FIXTURE, 'utf8');

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

function nginxTest(confPath: string): { status: number | null; output: string } {
  const r = spawnSync('/usr/sbin/nginx', ['-t', '-c', confPath], { encoding: 'utf8' });
  if (r.error) throw r.error; // nginx missing: the test fails, it is not skipped
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('setMainDirective on the real Debian nginx.conf', () => {
  it('changes exactly the bytes of `user www-data;`', () => {
    const at = debian.indexOf('user www-data;');
    expect(at).toBe(0);
    const r = setMainDirective(debian, 'user', ['root']);
    expect(r.changed).toBe(true);
    expect(r.before).toBe('user www-data;');
    const oldLen = 'user www-data;'.length;
    const newText = 'user root;';
    expect(r.content.slice(0, at)).toBe(debian.slice(0, at));
    expect(r.content.slice(at, at + newText.length)).toBe(newText);
    expect(r.content.slice(at + newText.length)).toBe(debian.slice(at + oldLen));
    expect(Buffer.from(r.content.slice(at + newText.length)).equals(Buffer.from(debian.slice(at + oldLen)))).toBe(true);
    expect(getMainDirective(r.content, 'user')).toEqual(['root']);
  });

  it('is idempotent', () => {
    const once = setMainDirective(debian, 'user', ['root']);
    const twice = setMainDirective(once.content, 'user', ['root']);
    expect(twice).toEqual({ content: once.content, changed: false, before: 'user root;' });
  });

  it('reads the other top-level directives', () => {
    expect(getMainDirective(debian, 'user')).toEqual(['www-data']);
    expect(getMainDirective(debian, 'worker_processes')).toEqual(['auto']);
    expect(getMainDirective(debian, 'pid')).toEqual(['/run/nginx.pid']);
    expect(getMainDirective(debian, 'include')).toEqual(['/etc/nginx/modules-enabled/*.conf']);
    // only inside blocks or comments
    expect(getMainDirective(debian, 'sendfile')).toBeNull();
    expect(getMainDirective(debian, 'worker_connections')).toBeNull();
    expect(getMainDirective(debian, 'mail')).toBeNull();
  });

  it('inserts user when absent, as its own line before the first statement', () => {
    const without = debian.replace('user www-data;\n', '');
    const r = setMainDirective(without, 'user', ['root']);
    expect(r).toEqual({ content: 'user root;\n' + without, changed: true, before: null });
  });
});

describe('setMainDirective on hand-written files', () => {
  it('never touches `user` in comments or inside blocks, and keeps same-line comments', () => {
    const conf = [
      '# user nobody;',
      'http {',
      '    user inside_http;',
      '    server { user deeper; }',
      '}',
      'mail { user inside_mail; }',
      '\tuser   www-data  ;   # keep this comment; user x;',
      'events {}',
      '',
    ].join('\n');
    const r = setMainDirective(conf, 'user', ['root']);
    expect(r.before).toBe('user   www-data  ;');
    expect(r.content).toBe(conf.replace('user   www-data  ;', 'user root;'));
  });

  it('finds a directive after a comment inside the statement and quoted args with specials', () => {
    const conf = 'events {}\nuser # the user\n  "www-data" \'a;b{c}\'; # tail\n';
    expect(getMainDirective(conf, 'user')).toEqual(['www-data', 'a;b{c}']);
    const r = setMainDirective(conf, 'user', ['root']);
    expect(r.before).toBe('user # the user\n  "www-data" \'a;b{c}\';');
    expect(r.content).toBe('events {}\nuser root; # tail\n');
  });

  it('compares unescaped args: `user "root";` is already root', () => {
    const conf = 'user "root";\n';
    expect(setMainDirective(conf, 'user', ['root'])).toEqual({ content: conf, changed: false, before: 'user "root";' });
    const esc = 'env "A=\\"x;}\\"" \'it\\\'s\';\n';
    expect(getMainDirective(esc, 'env')).toEqual(['A="x;}"', "it's"]);
  });

  it('quotes args that need it and writes two args', () => {
    const r = setMainDirective('user www-data;\n', 'user', ['root', 'my group']);
    expect(r.content).toBe('user root "my group";\n');
    expect(getMainDirective(r.content, 'user')).toEqual(['root', 'my group']);
  });

  it('inserts after a leading comment block', () => {
    const conf = '# header\n# more\n\nworker_processes 2;\nevents {}\n';
    expect(setMainDirective(conf, 'user', ['root']).content).toBe('# header\n# more\n\nuser root;\nworker_processes 2;\nevents {}\n');
    const indented = '# c\n   events {}\n';
    expect(setMainDirective(indented, 'user', ['root']).content).toBe('# c\nuser root;\n   events {}\n');
  });

  it('inserts into files without statements', () => {
    expect(setMainDirective('', 'user', ['root']).content).toBe('user root;\n');
    expect(setMainDirective('# only a comment', 'user', ['root']).content).toBe('# only a comment\nuser root;\n');
    expect(setMainDirective('# c\n', 'user', ['root']).content).toBe('# c\nuser root;\n');
  });

  it('throws on a duplicate top-level directive', () => {
    const conf = 'user a;\nevents {}\nuser b;\n';
    expect(() => setMainDirective(conf, 'user', ['root'])).toThrow(NginxParseError);
    expect(() => setMainDirective(conf, 'user', ['root'])).toThrow(/2 times/);
    expect(() => getMainDirective(conf, 'user')).toThrow(/2 times/);
    // but one at top level and one nested is fine
    expect(setMainDirective('user a;\nhttp { user b; }\n', 'user', ['root']).content).toBe('user root;\nhttp { user b; }\n');
  });

  it('refuses files nginx would reject and bad names', () => {
    expect(() => setMainDirective('http {\n', 'user', ['root'])).toThrow(/expecting "}"/);
    expect(() => setMainDirective('}\n', 'user', ['root'])).toThrow(/unexpected "}"/);
    expect(() => setMainDirective('user root\n', 'user', ['root'])).toThrow(/expecting ";"/);
    expect(() => setMainDirective('user "root;\n', 'user', ['root'])).toThrow(/unterminated/);
    expect(() => setMainDirective(';\n', 'user', ['root'])).toThrow(/unexpected ";"/);
    expect(() => setMainDirective('user "a"b;\n', 'user', ['root'])).toThrow(/after a quoted string/);
    expect(() => setMainDirective('user root;', 'us er', ['x'])).toThrow(/directive name/);
  });
});

describe('parser details', () => {
  it('follows nginx word rules: ${var}, # inside a word, backslashes', () => {
    const conf = 'a ${x}y b#c \\;d;\nhttp { map $a $b { default ${x}; } }\n';
    const [a, http] = parseNginx(conf);
    // `\;` escapes the terminator but nginx keeps the backslash (only \" \' \\ \t \r \n are unescaped)
    expect(a!.args).toEqual(['${x}y', 'b#c', '\\;d']);
    expect(http!.block![0]!.block![0]!.args).toEqual(['${x}']);
    expect(conf.slice(http!.start, http!.end)).toBe('http { map $a $b { default ${x}; } }');
  });

  it('formatArg round-trips through the parser', () => {
    const samples = ['root', '', 'a b', 'x;y', '{', '}', '#c', '"q"', "it's", 'back\\slash', 'tab\t', '\\n', 'new\nline', '$remote_addr', '${x}', 'a\\"b', 'é'];
    let seed = 7;
    const chars = 'ab;{}#"\'\\ \t\n$xyz/.';
    for (let k = 0; k < 300; k++) {
      let s = '';
      const len = (seed = (seed * 1103515245 + 12345) % 2 ** 31) % 8;
      for (let i = 0; i < len; i++) s += chars[(seed = (seed * 1103515245 + 12345) % 2 ** 31) % chars.length];
      samples.push(s);
    }
    for (const s of samples) expect(parseNginx(`d ${formatArg(s)};`)[0]!.args).toEqual([s]);
  });
});

describe('ensureStreamContext', () => {
  const glob = '/etc/nginx/dsrctl-stream.d/*.conf';

  it('appends a stream block to the Debian file and is idempotent', () => {
    const r = ensureStreamContext(debian, glob);
    expect(r).toEqual({
      content: `${debian}\nstream {\n\tinclude ${glob};\n}\n`,
      changed: true,
      hadStream: false,
      includePresent: true,
    });
    const again = ensureStreamContext(r.content, glob);
    expect(again).toEqual({ content: r.content, changed: false, hadStream: true, includePresent: true });
  });

  it('adds the include inside an existing stream block (only there; a nested include does not count)', () => {
    const conf = 'events {}\nstream {\n    server { listen 53 udp; proxy_pass x; include /etc/nginx/dsrctl-stream.d/*.conf; }\n}\n';
    expect(ensureStreamContext(conf, glob)).toEqual({
      content: 'events {}\nstream {\n    server { listen 53 udp; proxy_pass x; include /etc/nginx/dsrctl-stream.d/*.conf; }\n\tinclude /etc/nginx/dsrctl-stream.d/*.conf;\n}\n',
      changed: true,
      hadStream: true,
      includePresent: true,
    });
    const oneLine = 'stream { upstream u { server 1.2.3.4:53; } }\n';
    expect(ensureStreamContext(oneLine, glob).content).toBe('stream { upstream u { server 1.2.3.4:53; } \n\tinclude /etc/nginx/dsrctl-stream.d/*.conf;\n}\n');
  });

  it('leaves a stream block that has the include alone', () => {
    const withIt = 'stream { include "/etc/nginx/dsrctl-stream.d/*.conf"; }\n';
    expect(ensureStreamContext(withIt, glob)).toEqual({ content: withIt, changed: false, hadStream: true, includePresent: true });
  });

  it('ignores stream in comments and nested blocks', () => {
    const conf = '#stream {\n#}\nhttp { stream { } }\n';
    expect(ensureStreamContext(conf, glob).changed).toBe(true);
  });

  it('rejects unsafe include paths', () => {
    for (const bad of ['relative/*.conf', '/a b', '/a;b', '/a}', '/x\n', '/$x', '/a"b'])
      expect(() => ensureStreamContext(debian, bad)).toThrow(/include path/);
  });
});

describe('nginx -t accepts the edited Debian nginx.conf', () => {
  it('user root + stream block including a rendered udp config', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dsrctl-nginx-main-'));
    tmpDirs.push(dir);
    mkdirSync(join(dir, 'stream.d'));
    writeFileSync(
      join(dir, 'stream.d', 'dsrctl.conf'),
      renderManagedConfig({
        mode: 'dsr-router-nat',
        protocol: 'udp',
        listenPort: 53,
        upstreamPort: 53,
        upstreams: [
          { name: 'dev1', ip: '172.16.0.11' },
          { name: 'dev2', ip: '172.16.0.12' },
        ],
        proxyBind: '$remote_addr:$remote_port transparent',
        extra: ['proxy_responses 0;'],
      }),
    );
    let conf = setMainDirective(debian, 'user', ['root']).content;
    // keep the system's pid and error log alone: the same edit function points them at the temp dir
    conf = setMainDirective(conf, 'pid', [join(dir, 'nginx.pid')]).content;
    conf = setMainDirective(conf, 'error_log', [join(dir, 'error.log')]).content;
    const s = ensureStreamContext(conf, join(dir, 'stream.d', '*.conf'));
    expect(s.changed).toBe(true);
    const confPath = join(dir, 'nginx.conf');
    writeFileSync(confPath, s.content);
    const r = nginxTest(confPath);
    expect(r.output).toContain('test is successful');
    expect(r.status).toBe(0);
  });

  it('really reads the included stream file (a bad one fails)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dsrctl-nginx-main-'));
    tmpDirs.push(dir);
    writeFileSync(join(dir, 'bad.conf'), 'this_is_not_a_directive;\n');
    let conf = setMainDirective(debian, 'pid', [join(dir, 'nginx.pid')]).content;
    conf = setMainDirective(conf, 'error_log', [join(dir, 'error.log')]).content;
    writeFileSync(join(dir, 'nginx.conf'), ensureStreamContext(conf, join(dir, 'bad.conf')).content);
    const r = nginxTest(join(dir, 'nginx.conf'));
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/unknown directive "this_is_not_a_directive"/);
  });
});
