import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseFacts } from './parse.js';
import { FactsParseError } from './format.js';
import type { HostFacts, IpRoute } from './types.js';

// Fixtures are real output of the facts script in scratch network namespaces:
// regenerate with `sh test/fixtures/facts/generate.sh` (root).
const dir = fileURLToPath(new URL('../../test/fixtures/facts/', import.meta.url));
const fixture = (name: string) => readFileSync(`${dir}${name}.txt`, 'utf8');

const MARK_RULE = '-A PREROUTING -s 172.16.0.11/32 -p tcp -m tcp --sport 8080 -m comment --comment dsrctl -j MARK --set-xmark 0x1/0xffffffff';
const MASQ_RULE = '-A POSTROUTING -s 172.16.0.0/24 -o pub0 -m comment --comment dsrctl -j MASQUERADE';

const mainDefaults = (f: HostFacts) => f.routes.filter((r) => r.table === 'main' && r.type === 'unicast' && r.dst === 'default');

const cases = ['pristine-upstream', 'pristine-upstream-nonroot', 'upstream-applied', 'proxy-applied'] as const;

describe.each(cases)('fixture %s: common facts', (name) => {
  const facts = parseFacts(fixture(name));

  it('reads the host basics', () => {
    expect(facts.hostname).toBe(name.startsWith('proxy') ? 'proxy' : 'dev1');
    expect(facts.kernel).toMatch(/^\d+\.\d+/);
    expect(facts.uid).toBe(name.endsWith('nonroot') ? 65534 : 0);
    expect(typeof facts.hasSystemd).toBe('boolean');
  });

  it('normalizes every route (type, table, protocol, scope, metric, flags)', () => {
    expect(facts.routes.length).toBeGreaterThan(0);
    for (const r of facts.routes) {
      expect(r.type).toEqual(expect.any(String));
      expect(r.table).toEqual(expect.any(String));
      expect(r.protocol).toEqual(expect.any(String));
      expect(r.scope).toEqual(expect.any(String));
      expect(r.metric).toEqual(expect.any(Number));
      expect(Array.isArray(r.flags)).toBe(true);
    }
    // kernel routes of the local table keep what iproute2 printed
    expect(facts.routes).toContainEqual(
      expect.objectContaining({ type: 'local', dst: '127.0.0.1', dev: 'lo', table: 'local', protocol: 'kernel', scope: 'host' }),
    );
  });

  it('has the default rules and lo', () => {
    expect(facts.rules.map((r) => [r.priority, r.table])).toEqual(expect.arrayContaining([[0, 'local'], [32766, 'main'], [32767, 'default']]));
    expect(facts.interfaces.find((i) => i.name === 'lo')?.addresses).toContainEqual({ family: 'inet', address: '127.0.0.1', prefixlen: 8 });
  });

  it('reads sysctls, tabs kept, missing keys marked', () => {
    expect(facts.sysctl['net.ipv4.tcp_rmem']).toMatch(/^\d+\t\d+\t\d+$/);
    expect(facts.sysctl['net.ipv4.conf.priv0.rp_filter']).toMatch(/^[012]$/);
    expect(facts.sysctl).not.toHaveProperty('net.ipv4.conf.nosuch0.rp_filter');
    expect(facts.sysctlMissing).toEqual(['net.ipv4.conf.nosuch0.rp_filter']);
  });

  it('reads nginx from the machine binary: 1.22.1 with the stream module (dynamic, load_module)', () => {
    expect(facts.nginx).toMatchObject({ installed: true, version: '1.22.1', confPath: '/etc/nginx/nginx.conf', pidFile: '/run/nginx.pid' });
    expect(facts.nginx.modules).toEqual(expect.arrayContaining(['http', 'stream']));
    expect(facts.nginx.loadModules).toEqual(['load_module modules/ngx_stream_module.so;']);
  });

  it('sees iptables-nft', () => {
    expect(facts.iptables.variant).toBe('nft');
  });
});

describe('pristine-upstream', () => {
  const facts = parseFacts(fixture('pristine-upstream'));

  it('has its address and one default route via the router', () => {
    const priv0 = facts.interfaces.find((i) => i.name === 'priv0');
    expect(priv0).toMatchObject({ state: 'UP', linkType: 'ether' });
    expect(priv0?.flags).toContain('UP');
    expect(priv0?.addresses).toContainEqual({ family: 'inet', address: '172.16.0.11', prefixlen: 24 });
    expect(mainDefaults(facts)).toEqual([
      { type: 'unicast', dst: 'default', gateway: '172.16.0.254', dev: 'priv0', protocol: 'boot', scope: 'global', metric: 0, table: 'main', flags: [] },
    ]);
  });

  it('a fresh netns: iptables-save prints nothing (rc 0), no tables', () => {
    expect(facts.iptables).toEqual({ variant: 'nft', save: '', tables: {} });
    expect(facts.incomplete).toEqual([]);
  });

  it('no fwmark rule, no table 100, ip_forward 0', () => {
    expect(facts.rules.some((r) => r.fwmark !== undefined)).toBe(false);
    expect(facts.routes.some((r) => r.table === '100')).toBe(false);
    expect(facts.sysctl['net.ipv4.ip_forward']).toBe('0');
  });

  it('nginx not running, no dsrctl state, no requested files', () => {
    expect(facts.nginx.running).toBe(false);
    expect(facts.nginx.masterPid).toBeNull();
    expect(facts.dsrctl).toEqual({ journal: null, lock: null, reverted: null });
    expect(facts.files).toEqual({});
  });
});

describe('pristine-upstream-nonroot', () => {
  const facts = parseFacts(fixture('pristine-upstream-nonroot'));
  it('iptables-save fails without root: tables unknown, marked incomplete, rest intact', () => {
    expect(facts.iptables.error).toBe('iptables-save failed (exit status 4)');
    expect(facts.incomplete).toEqual([{ section: 'iptables-save', reason: 'exit status 4' }]);
    expect(mainDefaults(facts)[0]?.gateway).toBe('172.16.0.254');
  });
});

describe('upstream-applied', () => {
  const facts = parseFacts(fixture('upstream-applied'));
  it('default via the proxy (metric 0) and the old default kept with metric 100', () => {
    const defaults = mainDefaults(facts);
    expect(defaults.map((r: IpRoute) => [r.gateway, r.dev, r.metric])).toEqual([
      ['172.16.0.1', 'priv0', 0],
      ['172.16.0.254', 'priv0', 100],
    ]);
  });
});

describe('proxy-applied', () => {
  const text = fixture('proxy-applied');
  const facts = parseFacts(text);

  it('has the fwmark rule: fwmark "0x1", table "100", no fwmask printed', () => {
    const rule = facts.rules.find((r) => r.fwmark !== undefined);
    expect(rule).toEqual({ priority: 32765, src: 'all', fwmark: '0x1', table: '100' });
  });

  it('has the local route in table 100 (0.0.0.0/0 prints as "default")', () => {
    const t100 = facts.routes.filter((r) => r.table === '100');
    expect(t100).toEqual([
      { type: 'local', dst: 'default', dev: 'lo', table: '100', scope: 'host', protocol: 'boot', metric: 0, flags: [] },
    ]);
  });

  it('default route via 192.168.99.254 on pub0, both interfaces addressed', () => {
    expect(mainDefaults(facts).map((r) => [r.gateway, r.dev])).toEqual([['192.168.99.254', 'pub0']]);
    const addr = (n: string) => facts.interfaces.find((i) => i.name === n)?.addresses.filter((a) => a.family === 'inet');
    expect(addr('pub0')).toEqual([{ family: 'inet', address: '192.168.99.10', prefixlen: 24 }]);
    expect(addr('priv0')).toEqual([{ family: 'inet', address: '172.16.0.1', prefixlen: 24 }]);
  });

  it('ip_forward is 1', () => {
    expect(facts.sysctl['net.ipv4.ip_forward']).toBe('1');
  });

  it('iptables-save lines in their canonical form (-m tcp added after -p tcp, -s before -p)', () => {
    expect(facts.iptables.variant).toBe('nft');
    expect(facts.iptables.tables['mangle']).toEqual({
      chains: ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'],
      rules: [MARK_RULE],
    });
    expect(facts.iptables.tables['nat']).toEqual({ chains: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'], rules: [MASQ_RULE] });
    expect(Object.keys(facts.iptables.tables)).toEqual(['mangle', 'nat']); // nft: no filter table until used
    expect(facts.iptables.save).toContain(`\n${MARK_RULE}\n`);
    expect(facts.iptables.save.endsWith('\n')).toBe(true);
  });

  it('nginx runs (own /run in the fixture), master pid from the pid file', () => {
    expect(facts.nginx.running).toBe(true);
    expect(facts.nginx.masterPid).toEqual(expect.any(Number));
  });

  it('reads the requested file byte-exact with matching sha256, and the missing one as absent', () => {
    const conf = facts.files['/etc/nginx/nginx.conf'];
    expect(conf).toMatchObject({ exists: true, type: 'file', mode: '644', readable: true });
    const bytes = Buffer.from(conf!.contentBase64!, 'base64');
    expect(Buffer.from(conf!.content!, 'utf8').equals(bytes)).toBe(true);
    expect(createHash('sha256').update(conf!.content!).digest('hex')).toBe(conf!.sha256);
    expect(text).toContain(`sha256=${conf!.sha256}\n`); // as sha256sum printed it on the host
    expect(conf!.content).toMatch(/^user www-data;\n/);
    expect(conf!.content).toContain('include /etc/nginx/modules-enabled/*.conf;');
    expect(facts.files['/etc/nginx/conf.d/dsrctl-does-not-exist.conf']).toEqual({
      path: '/etc/nginx/conf.d/dsrctl-does-not-exist.conf',
      exists: false,
    });
  });

  it('reads the dsrctl state files raw', () => {
    expect(facts.dsrctl).toEqual({
      journal: '20261126T040000Z-abc123\n',
      lock: 'fixture-lock\n',
      reverted: null,
    });
  });
});

describe('parseFacts errors', () => {
  const good = fixture('pristine-upstream');

  it('names the section and shows the offending line for broken JSON', () => {
    const broken = good.replace(/(@@dsrctl-facts:begin ip-route@@\n)\[/, '$1oops[');
    expect(() => parseFacts(broken)).toThrowError(FactsParseError);
    expect(() => parseFacts(broken)).toThrowError(/facts section "ip-route": not JSON .*offending line: "oops\[/);
  });

  it('rejects truncated output', () => {
    const cut = good.slice(0, good.indexOf('@@dsrctl-facts:begin nginx-pid@@'));
    expect(() => parseFacts(cut)).toThrowError(/facts section "nginx-pid": section missing/);
    const midSection = good.slice(0, good.indexOf('@@dsrctl-facts:end iptables-version'));
    expect(() => parseFacts(midSection)).toThrowError(/"iptables-version": output ends inside this section/);
  });

  it('rejects output that is not from the facts script', () => {
    expect(() => parseFacts('bash: sh: command not found\n')).toThrowError(/not produced by the dsrctl facts script/);
  });

  it('a bad iptables-save line names the section and the line', () => {
    const bad = good.replace('@@dsrctl-facts:end iptables-save rc=0@@', '*filter\n-X weird\nCOMMIT\n@@dsrctl-facts:end iptables-save rc=0@@');
    expect(() => parseFacts(bad)).toThrowError('facts section "iptables-save": unexpected line; offending line: "-X weird"');
  });

  it('a failing ip command is an error, a missing iptables/nginx is not', () => {
    const noIp = good.replace('@@dsrctl-facts:end ip-rule rc=0@@', '@@dsrctl-facts:end ip-rule rc=255@@');
    expect(() => parseFacts(noIp)).toThrowError(/"ip-rule": command failed \(exit status 255\)/);
    const bare = good
      .replace(/@@dsrctl-facts:begin iptables-version@@\n[^@]*@@dsrctl-facts:end iptables-version rc=0@@/, '@@dsrctl-facts:begin iptables-version@@\n@@dsrctl-facts:end iptables-version rc=127@@')
      .replace('@@dsrctl-facts:end iptables-save rc=0@@', '@@dsrctl-facts:end iptables-save rc=127@@')
      .replace(/@@dsrctl-facts:begin nginx-version@@\n[\s\S]*?@@dsrctl-facts:end nginx-version rc=0@@/, '@@dsrctl-facts:begin nginx-version@@\n@@dsrctl-facts:end nginx-version rc=127@@');
    const facts = parseFacts(bare);
    expect(facts.iptables).toEqual({ variant: null, save: '', tables: {} });
    expect(facts.nginx).toMatchObject({ installed: false, version: null, modules: [], running: false });
  });

  it('a content/sha256 mismatch is an error', () => {
    const text = fixture('proxy-applied').replace(/sha256=dd5ecd[0-9a-f]+/, `sha256=${'0'.repeat(64)}`);
    expect(() => parseFacts(text)).toThrowError(/"dsrctl-journal": \/var\/lib\/dsrctl\/last-run: sha256 of the content does not match/);
  });
});

describe("dsrctl's state files as stateinfo prints them (text=, each line behind a |)", () => {
  const withLock = (body: string) =>
    fixture('upstream-applied').replace(/(@@dsrctl-facts:begin dsrctl-lock@@\n)[\s\S]*?(@@dsrctl-facts:end dsrctl-lock)/, `$1${body}$2`);
  it('reads the lines back with their newlines', () => {
    const f = parseFacts(withLock('path=/var/lib/dsrctl/lock\nexists=1\ntype=file\ntext=\n|run=r1 command=apply agent=a pid=1 time=t\n'));
    expect(f.dsrctl.lock).toBe('run=r1 command=apply agent=a pid=1 time=t\n');
  });
  it('an absent or unreadable file is null (unreadable: incomplete)', () => {
    expect(parseFacts(withLock('path=/var/lib/dsrctl/lock\nexists=0\n')).dsrctl.lock).toBeNull();
    const f = parseFacts(withLock('path=/var/lib/dsrctl/lock\nexists=1\ntype=file\nreadable=0\n'));
    expect(f.dsrctl.lock).toBeNull();
    expect(f.incomplete).toContainEqual({ section: 'dsrctl-lock', reason: '/var/lib/dsrctl/lock: unreadable' });
  });
  it('refuses a line without its |', () => {
    expect(() => parseFacts(withLock('path=/var/lib/dsrctl/lock\nexists=1\ntype=file\ntext=\nrun=r1\n'))).toThrow(/line without the "\|" prefix/);
  });
});
