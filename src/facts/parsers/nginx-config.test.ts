import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nginxListens, parseListenAddress, parseNginxFile, splitNginxDump } from './nginx-config.js';
import { parseFacts } from '../parse.js';

/** `nginx -T` stdout captured in the lab (test/lab/lab.sh, DSR_LAB_STOCK=...) */
const dump = (name: string) => readFileSync(new URL(`../../../test/fixtures/nginx/${name}.nginx-T.txt`, import.meta.url), 'utf8');
const brief = (name: string) =>
  nginxListens(splitNginxDump(dump(name))).map((l) => `${l.context} ${l.file}:${l.line} ${l.address}:${l.port}${l.udp ? ' udp' : ''}${l.defaultServer ? ' default' : ''}${l.implicit ? ' implicit' : ''} [${l.serverNames.join(' ')}]`);

describe('nginx -T on a stock Debian proxy', () => {
  it('splits the dump into the files nginx read, main file first', () => {
    const d = splitNginxDump(dump('stock-default-site'));
    expect(d.main).toBe('/etc/nginx/nginx.conf');
    expect([...d.files.keys()]).toEqual(['/etc/nginx/nginx.conf', '/etc/nginx/modules-enabled/50-mod-stream.conf', '/etc/nginx/mime.types', '/etc/nginx/sites-enabled/default']);
    // line N of a file is line N of its section (nginx adds one newline after each file)
    expect(d.files.get('/etc/nginx/sites-enabled/default')!.split('\n')[21]).toBe('\tlisten 80 default_server;');
  });

  it("finds Debian's default site with file and line of each listen, through nginx.conf's include", () => {
    const listens = nginxListens(splitNginxDump(dump('stock-default-site')));
    expect(brief('stock-default-site')).toEqual([
      'http /etc/nginx/sites-enabled/default:22 *:80 default [_]',
      'http /etc/nginx/sites-enabled/default:23 [::]:80 default [_]',
    ]);
    expect(listens[0]!.text).toBe('listen 80 default_server');
    expect(listens[1]!.ipv6).toBe(true);
    expect(listens[0]!.serverInclude).toEqual({ file: '/etc/nginx/nginx.conf', line: 60, pattern: '/etc/nginx/sites-enabled/*', glob: true });
  });

  it("finds the user's reverse proxy in sites-enabled/app", () => {
    expect(brief('stock-reverse-proxy')).toEqual(['http /etc/nginx/sites-enabled/app:3 *:80 [app.example.com]']);
  });

  it('keeps nginx order across includes; a server without listen is *:80; stream listens carry udp; relative includes resolve from the conf dir', () => {
    expect(brief('hand-made-mixed')).toEqual([
      'http /etc/nginx/conf.d/local.conf:3 127.0.0.1:80 [status.local]',
      'http /etc/nginx/conf.d/local.conf:7 *:80 implicit [noport.example.com www.noport.example.com]',
      'http /etc/nginx/conf.d/local.conf:11 *:8443 default []',
      'http /etc/nginx/conf.d/local.conf:11 [::]:8443 []',
      'http /etc/nginx/sites-enabled/app:3 *:80 [app.example.com]',
      'stream /etc/nginx/streams/dns.conf:2 *:53 udp []',
      'stream /etc/nginx/streams/dns.conf:6 192.168.99.10:8081 []',
    ]);
  });
});

describe('nginx config syntax', () => {
  it('handles quotes, comments, ${var} braces and escaped characters like nginx', () => {
    const tree = parseNginxFile('/x.conf', 'server { # a { comment\n  return 200 "a ; } { \\" b";\n  set $a "${host}x";\n  listen 8080; }\n');
    const server = tree[0]!;
    expect(server.block!.map((d) => [d.name, d.args, d.line])).toEqual([
      ['return', ['200', 'a ; } { " b'], 2],
      ['set', ['$a', '${host}x'], 3],
      ['listen', ['8080'], 4],
    ]);
  });

  it('names the file and line of unbalanced braces', () => {
    expect(() => parseNginxFile('/x.conf', 'http {\n  server {\n')).toThrow(/\/x\.conf: unexpected end of file/);
    expect(() => parseNginxFile('/x.conf', 'a;\n}\n')).toThrow('/x.conf:2: unexpected "}"');
  });

  it.each([
    ['80', 'http', { address: '*', port: 80, ipv6: false }],
    ['0.0.0.0:8080', 'http', { address: '*', port: 8080, ipv6: false }],
    ['192.168.99.10', 'http', { address: '192.168.99.10', port: 80, ipv6: false }],
    ['*:53', 'stream', { address: '*', port: 53, ipv6: false }],
    ['[::]:80', 'http', { address: '[::]', port: 80, ipv6: true }],
    ['[::1]', 'http', { address: '[::1]', port: 80, ipv6: true }],
    ['unix:/run/app.sock', 'http', { address: 'unix:/run/app.sock', port: null, ipv6: false }],
  ] as const)('listen %s (%s)', (arg, ctx, want) => {
    expect(parseListenAddress(arg, ctx)).toEqual(want);
  });

  it('rejects output that is not nginx -T', () => {
    expect(() => splitNginxDump('nginx: [emerg] unknown directive\n')).toThrow(/not the output of nginx -T/);
  });
});

describe('facts sections nginx-config and nginx-links', () => {
  const facts = (name: string) => parseFacts(readFileSync(new URL(`../../../test/fixtures/facts/${name}.txt`, import.meta.url), 'utf8'));

  it('bring back the dump exactly and the symlinks with target, owner and mtime', () => {
    const f = facts('stock-proxy-default-site');
    expect(f.nginxConfig?.status).toBe('ok');
    if (f.nginxConfig?.status !== 'ok') return;
    expect(f.nginxConfig.dump.trimEnd()).toBe(dump('stock-default-site').trimEnd());
    expect(f.nginxConfig.links['/etc/nginx/sites-enabled/default']).toEqual({ target: '/etc/nginx/sites-available/default', owner: '0:0', mtime: '1796677549.275657867' });
  });

  it("keep nginx's own error when the configuration does not parse", () => {
    const f = facts('proxy-nginx-config-broken');
    expect(f.nginxConfig).toEqual({ status: 'failed', error: expect.stringContaining('unexpected "}" in /etc/nginx/conf.d/broken.conf:3') });
  });

  it('are absent from facts of an older script', () => {
    expect(facts('pristine-upstream').nginxConfig).toBeUndefined();
  });
});
