import { describe, expect, it } from 'vitest';
import { FactsParseError, splitSections } from '../format.js';
import { parseFileSection } from './files.js';
import { parseIpAddr, parseIpRoutes, parseIpRules } from './ip-json.js';
import { parseIptablesSave, parseIptablesVariant } from './iptables-save.js';
import { parseNginx } from './nginx.js';
import { parseSysctl } from './sysctl.js';

describe('ip-json', () => {
  it('fills in what iproute2 leaves out and keeps extra keys', () => {
    const [r] = parseIpRoutes('[{"dst":"10.0.0.0/8","nexthops":[{"gateway":"10.0.0.1"}],"flags":[]}]');
    expect(r).toEqual({ type: 'unicast', dst: '10.0.0.0/8', protocol: 'boot', scope: 'global', metric: 0, table: 'main', flags: [], nexthops: [{ gateway: '10.0.0.1' }] });
    expect(parseIpRoutes('[{"dst":"default","gateway":"1.2.3.4"}]')[0]?.flags).toEqual([]);
  });

  it('empty output is an empty list', () => {
    expect(parseIpRules('')).toEqual([]);
  });

  it('a rule without lookup gets table ""', () => {
    expect(parseIpRules('[{"priority":100,"src":"10.0.0.0","srclen":8,"action":"blackhole"}]')[0]).toMatchObject({ table: '', action: 'blackhole' });
  });

  it('errors name the section and show the offending line, not a stack', () => {
    expect(() => parseIpRoutes('[{"dst":"default"},\n{"dst":}]')).toThrowError(/^facts section "ip-route": not JSON \(.*\); offending line: "\{\\"dst\\":\}\]"$/);
    expect(() => parseIpRoutes('[{"gateway":"1.2.3.4"}]')).toThrowError('facts section "ip-route": entry without string "dst"; offending line: "{\\"gateway\\":\\"1.2.3.4\\"}"');
    expect(() => parseIpAddr('{"ifname":"lo"}')).toThrowError(FactsParseError);
    expect(() => parseIpRoutes('[{"dst":"default","metric":"100"}]')).toThrowError(/"metric" is not a number/);
  });

  it('addresses: skips entries without local', () => {
    const [lo] = parseIpAddr('[{"ifname":"x","operstate":"DOWN","addr_info":[{},{"family":"inet","local":"10.1.1.1","prefixlen":32}]}]');
    expect(lo).toEqual({ name: 'x', state: 'DOWN', flags: [], addresses: [{ family: 'inet', address: '10.1.1.1', prefixlen: 32 }] });
  });
});

describe('iptables', () => {
  it.each([
    ['iptables v1.8.9 (nf_tables)', 'nft'],
    ['iptables v1.8.7 (legacy)', 'legacy'],
    ['iptables v1.6.1', 'legacy'],
  ])('variant of %j is %s', (v, want) => expect(parseIptablesVariant(v)).toBe(want));

  it('keeps -A lines exactly, chains in order', () => {
    const t = parseIptablesSave('# Generated\n*filter\n:INPUT DROP [0:0]\n:MYCHAIN - [0:0]\n-A INPUT -m comment --comment "a  b" -j MYCHAIN\nCOMMIT\n# Completed\n');
    expect(t).toEqual({ filter: { chains: ['INPUT', 'MYCHAIN'], rules: ['-A INPUT -m comment --comment "a  b" -j MYCHAIN'] } });
  });

  it('rejects truncated or odd output', () => {
    expect(() => parseIptablesSave('*nat\n:PREROUTING ACCEPT [0:0]')).toThrowError(/no COMMIT/);
    expect(() => parseIptablesSave('-A INPUT -j ACCEPT')).toThrowError('facts section "iptables-save": rule outside a table; offending line: "-A INPUT -j ACCEPT"');
    expect(() => parseIptablesVariant('iptables: command not found')).toThrowError(/iptables-version/);
  });
});

describe('nginx', () => {
  const pid = 'pidfile=/run/nginx.pid\npid=42\nalive=1\ncomm=nginx';
  const v = (args: string) => ({ rc: 0, body: `nginx version: nginx/1.25.3\nconfigure arguments: --prefix=/etc/nginx ${args}` });

  it('stream compiled in statically counts, =dynamic only with load_module', () => {
    expect(parseNginx(v('--with-stream --with-stream_ssl_module'), '', pid).modules).toEqual(['http', 'stream']);
    expect(parseNginx(v('--with-stream=dynamic --with-stream_ssl_module'), '', pid).modules).toEqual(['http']);
    expect(parseNginx(v('--with-stream=dynamic'), '  load_module /usr/lib/nginx/modules/ngx_stream_module.so;', pid).modules).toEqual(['http', 'stream']);
  });

  it('conf path, relative paths resolved against the prefix', () => {
    expect(parseNginx(v('--conf-path=/etc/nginx/nginx.conf'), '', pid).confPath).toBe('/etc/nginx/nginx.conf');
    expect(parseNginx(v('--conf-path=conf/nginx.conf'), '', pid).confPath).toBe('/etc/nginx/conf/nginx.conf');
  });

  it('running needs a live pid whose comm is nginx', () => {
    expect(parseNginx(v(''), '', pid)).toMatchObject({ running: true, masterPid: 42 });
    expect(parseNginx(v(''), '', pid.replace('alive=1', 'alive=0'))).toMatchObject({ running: false, masterPid: null });
    expect(parseNginx(v(''), '', pid.replace('comm=nginx', 'comm=bash'))).toMatchObject({ running: false, masterPid: null });
    expect(parseNginx(v(''), '', 'pidfile=/run/nginx.pid')).toMatchObject({ running: false, masterPid: null });
  });

  it('not installed (rc 127)', () => {
    expect(parseNginx({ rc: 127, body: '' }, '', 'pidfile=/run/nginx.pid')).toMatchObject({ installed: false, version: null, modules: [] });
  });

  it('other products built on nginx still give a version', () => {
    expect(parseNginx({ rc: 0, body: 'nginx version: nginx/1.18.0 (Ubuntu)' }, '', pid).version).toBe('1.18.0');
  });

  it('garbage is an error naming the section', () => {
    expect(() => parseNginx({ rc: 1, body: 'Segmentation fault' }, '', pid)).toThrowError('facts section "nginx-version": no "nginx version: nginx/X.Y.Z" line (exit status 1); offending line: "Segmentation fault"');
  });
});

describe('sysctl', () => {
  it('ok, missing, unreadable; value keeps tabs and inner newlines', () => {
    expect(parseSysctl('key=net.ipv4.tcp_rmem\nstatus=ok\nvalue=4096\t131072\t6291456')).toEqual({ key: 'net.ipv4.tcp_rmem', status: 'ok', value: '4096\t131072\t6291456' });
    expect(parseSysctl('key=a.b\nstatus=ok\nvalue=x\ny=z')).toMatchObject({ value: 'x\ny=z' });
    expect(parseSysctl('key=a.b\nstatus=missing')).toEqual({ key: 'a.b', status: 'missing' });
    expect(parseSysctl('key=a.b\nstatus=unreadable')).toEqual({ key: 'a.b', status: 'unreadable' });
    expect(() => parseSysctl('key=a.b\nstatus=ok')).toThrowError(/status=ok without value/);
  });
});

describe('files', () => {
  it('decodes content; rejects bad base64', () => {
    const f = parseFileSection('path=/x\nexists=1\ntype=file\nmode=600\ncontent=aGkK');
    expect(f).toEqual({ path: '/x', exists: true, type: 'file', mode: '600', readable: true, content: 'hi\n', contentBase64: 'aGkK', sha256: '98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4' });
    expect(() => parseFileSection('path=/x\nexists=1\ntype=file\ncontent=aGk*')).toThrowError('facts section "file": /x: content= is not base64; offending line: "content=aGk*"');
    expect(() => parseFileSection('path=/x\nexists=maybe')).toThrowError(/bad exists=/);
  });
});

describe('splitSections', () => {
  it('keeps bodies exact and repeated names; rejects nesting and stray markers', () => {
    const s = splitSections('@@dsrctl-facts:begin a@@\n x \n\n@@dsrctl-facts:end a rc=3@@\n@@dsrctl-facts:begin a@@\n@@dsrctl-facts:end a rc=0@@\n');
    expect(s.map(({ name, rc, body }) => [name, rc, body])).toEqual([['a', 3, ' x \n'], ['a', 0, '']]);
    expect(() => splitSections('@@dsrctl-facts:begin a@@\n@@dsrctl-facts:begin b@@\n')).toThrowError(/"a": section not closed/);
    expect(() => splitSections('@@dsrctl-facts:begin a@@\n@@dsrctl-facts:nope@@\n')).toThrowError(/malformed marker/);
    expect(() => splitSections('@@dsrctl-facts:end a rc=0@@\n')).toThrowError(/without matching begin/);
  });
});
