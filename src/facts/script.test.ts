import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFactsScript, checkFactsPath, leftHelper, sysctlProcPath } from './script.js';
import { parseFacts } from './parse.js';

describe('facts per role', () => {
  it('reads the optional facts a request names; iptables and nft behind the journal test otherwise', () => {
    const s = buildFactsScript({ sysctls: [], files: [], sections: [] });
    expect(s).not.toContain('nginx -V');
    expect(s).not.toContain('systemctl is-active');
    expect(s).toMatch(/ {2}if dsrctl_left 'iptables '; then\n {2}run iptables-version iptables -V\n {2}run iptables-save iptables-save\n {2}fi/);
    expect(s).toMatch(/ {2}if dsrctl_left 'nft table ' 'tc nat on '; then\n {2}run nft nft list ruleset/);
    const all = buildFactsScript({ sysctls: [], files: [], sections: ['iptables', 'nat', 'nginx', 'health'] });
    expect(all).not.toContain('dsrctl_left');
    expect(all).toContain('nginx -V');
  });

  it('dsrctl_left: true only for a change of a run still in place', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dsrctl-left-'));
    try {
      const run = (id: string, status: string, changes: string[], newline = true) => {
        mkdirSync(join(dir, 'runs', id, 'changes'), { recursive: true });
        writeFileSync(join(dir, 'runs', id, 'status'), status + (newline ? '\n' : ''));
        changes.forEach((c, i) => writeFileSync(join(dir, 'runs', id, 'changes', `00${i + 1}.id`), `${c}\n`));
      };
      const left = (...p: string[]) => spawnSync('sh', ['-c', `${leftHelper(dir)}dsrctl_left "$@"`, 'sh', ...p]).status;
      expect(left('iptables ')).toBe(1);
      run('a', 'rolled-back', ['iptables -t mangle -A PREROUTING -s 172.16.0.11/32 -j MARK']);
      run('b', 'committed', ['ip route default', 'nft table netdev dsrctl_nat_priv0'], false);
      expect(left('iptables ')).toBe(1);
      expect(left('nft table ', 'tc nat on ')).toBe(0);
      run('c', 'rollback-failed', ['iptables -t filter chain DSRCTL-FORWARD']);
      expect(left('iptables ')).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('buildFactsScript: validation and quoting', () => {
  it('maps sysctl keys to /proc/sys paths, "/" standing for a dot inside a level', () => {
    expect(sysctlProcPath('net.ipv4.ip_forward')).toBe('/proc/sys/net/ipv4/ip_forward');
    expect(sysctlProcPath('net.ipv4.conf.eth0/100.rp_filter')).toBe('/proc/sys/net/ipv4/conf/eth0.100/rp_filter');
    expect(sysctlProcPath('net.ipv4.conf.pub-0.rp_filter')).toBe('/proc/sys/net/ipv4/conf/pub-0/rp_filter');
  });

  it.each([
    'net.ipv4.ip_forward; reboot',
    'net.ipv4.ip_forward=1',
    'NET.ipv4.ip_forward',
    'net.ipv4.$(id)',
    'net ipv4',
    'net..ipv4',
    '.net.ipv4',
    'net.ipv4.',
    'net./..ipv4',
    '-w',
    'net.-w',
    '',
  ])('rejects sysctl key %j', (key) => {
    expect(() => buildFactsScript({ sysctls: [key], files: [] })).toThrowError(/invalid sysctl key/);
  });

  it.each(['relative/path', '', 'etc/nginx', '/etc/nginx\n/x', '/etc/\0nginx'])('rejects path %j', (p) => {
    expect(() => buildFactsScript({ sysctls: [], files: [p] })).toThrowError(/invalid file path/);
    expect(() => checkFactsPath(p)).toThrow();
  });

  it('quotes paths with shell-quote', () => {
    const s = buildFactsScript({ sysctls: [], files: ['/etc/nginx/nginx.conf', "/tmp/a b'$(reboot)`x`!", '/tmp/$HOME;x'] });
    // every file in one fileinfo call, with dsrctl's state directory
    expect(s).toContain(`  fileinfo file /etc/nginx/nginx.conf file '/tmp/a b'"'"'$(reboot)\`x\`!' file /tmp/\\$HOME\\;x dsrctl-state /var/lib/dsrctl\n`);
  });

  it('reads each requested key and path once, always the fixed sections', () => {
    const s = buildFactsScript({ sysctls: ['net.ipv4.ip_forward', 'net.ipv4.ip_forward'], files: ['/a', '/a'] });
    expect(s).toContain('  sysctl_values net.ipv4.ip_forward /proc/sys/net/ipv4/ip_forward\n');
    expect(s).toContain('  fileinfo file /a dsrctl-state /var/lib/dsrctl\n');
    for (const cmd of ['ip -j addr show', 'ip -j -4 rule show', 'ip -j -4 route show table all', 'iptables -V', 'iptables-save', 'nginx -V 2>&1']) {
      expect(s).toContain(cmd);
    }
    expect(s).not.toMatch(/iptables-save -c/);
  });

  it('runs everything from one function with stdin from /dev/null (nothing eats the script of `sh -s`)', () => {
    const s = buildFactsScript({ sysctls: [], files: [] });
    expect(s.trimEnd().split('\n').slice(-3)).toEqual(['}', 'dsrctl_facts </dev/null', 'exit 0']);
  });
});

const dash = ['/usr/bin/dash', '/bin/dash'].find((p) => existsSync(p));

// Runs the real script with dash in this (root or not) namespace: read-only by design.
describe.runIf(dash)('the script under dash (live, read-only)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsrctl-facts-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const run = (script: string) => spawnSync(dash!, ['-s'], { input: script, encoding: 'utf8', maxBuffer: 64 << 20 });

  it('passes `sh -n` and exits 0', () => {
    const script = buildFactsScript({ sysctls: ['net.ipv4.ip_forward'], files: ['/etc/hostname'] });
    expect(spawnSync(dash!, ['-n'], { input: script }).status).toBe(0);
    const r = run(script);
    expect(r.status).toBe(0);
    expect(() => parseFacts(r.stdout)).not.toThrow();
  });

  it('brings files back byte-exact: odd names, NUL, no final newline, marker lines inside, empty, unreadable', () => {
    const odd = join(dir, `we"ird 'name' $x \`y\` !z`);
    const bin = Buffer.from([0, 1, 2, 255, 10, 13, 10, 0x40]);
    const tricky = '@@dsrctl-facts:end file rc=0@@\n@@dsrctl-facts:begin done@@\nno final newline';
    writeFileSync(odd, tricky);
    writeFileSync(join(dir, 'bin'), bin);
    writeFileSync(join(dir, 'empty'), '');
    const files = [odd, join(dir, 'bin'), join(dir, 'empty'), join(dir, 'missing'), dir];
    const facts = parseFacts(run(buildFactsScript({ sysctls: ['net.ipv4.ip_forward', 'net.ipv4.nope_nope'], files })).stdout);
    expect(facts.files[odd]).toMatchObject({ exists: true, type: 'file', content: tricky, mode: '644' });
    expect(Buffer.from(facts.files[join(dir, 'bin')]!.contentBase64!, 'base64').equals(bin)).toBe(true);
    expect(facts.files[join(dir, 'empty')]).toMatchObject({ exists: true, content: '', sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' });
    expect(facts.files[join(dir, 'missing')]).toEqual({ path: join(dir, 'missing'), exists: false, realpath: join(dir, 'missing'), dir: { path: dir, uid: process.getuid!(), gid: process.getgid!(), mode: '700' } });
    // bytes that are not UTF-8 come back one char per byte, so an edit keeps them
    expect(Buffer.from(facts.files[join(dir, 'bin')]!.content!, 'latin1').equals(bin)).toBe(true);
    expect(facts.files[dir]).toMatchObject({ exists: true, type: 'dir', mode: '700' });
    expect(facts.files[dir]!.content).toBeUndefined();
    expect(facts.sysctl['net.ipv4.ip_forward']).toMatch(/^[01]$/);
    expect(facts.sysctlMissing).toEqual(['net.ipv4.nope_nope']);
  });

  it('resolves second spellings and symlinks, and tells a symlink to nothing, a FIFO and a directory apart', () => {
    const conf = join(dir, 'real.conf');
    writeFileSync(conf, 'user www-data;\n');
    symlinkSync(conf, join(dir, 'link.conf'));
    symlinkSync(join(dir, 'nowhere'), join(dir, 'dangling.conf'));
    spawnSync('mkfifo', [join(dir, 'fifo')]);
    const spellings = [`${dir}/./real.conf`, `/${dir}//real.conf`, join(dir, 'link.conf'), join(dir, 'dangling.conf'), join(dir, 'fifo')];
    const facts = parseFacts(run(buildFactsScript({ sysctls: [], files: spellings })).stdout);
    for (const p of spellings.slice(0, 3)) expect(facts.files[p]).toMatchObject({ exists: true, type: 'file', realpath: conf });
    expect(facts.files[join(dir, 'link.conf')]).toMatchObject({ link: true, linkDir: { path: dir } });
    expect(facts.files[join(dir, 'dangling.conf')]).toMatchObject({ exists: true, type: 'dangling', link: true });
    expect(facts.files[join(dir, 'fifo')]).toMatchObject({ exists: true, type: 'other' });
    expect(facts.stateDir).toMatchObject({ path: '/var/lib/dsrctl', dir: { path: '/var/lib' } });
  });

  const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
  it.runIf(process.getuid?.() === 0 && setpriv)('as an unprivileged user: unreadable file and iptables-save reported, not faked', () => {
    const pub = join(dir, 'pub');
    mkdirSync(pub);
    chmodSync(dir, 0o755);
    chmodSync(pub, 0o755);
    writeFileSync(join(pub, 'secret'), 'x');
    chmodSync(join(pub, 'secret'), 0o600);
    const script = buildFactsScript({ sysctls: [], files: [join(pub, 'secret')] });
    const r = spawnSync(setpriv!, ['--reuid=65534', '--regid=65534', '--clear-groups', dash!, '-s'], { input: script, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const facts = parseFacts(r.stdout);
    expect(facts.uid).toBe(65534);
    expect(facts.files[join(pub, 'secret')]).toMatchObject({ path: join(pub, 'secret'), exists: true, type: 'file', mode: '600', readable: false, owner: { uid: 0, gid: 0 } });
    expect(facts.files[join(pub, 'secret')]!.content).toBeUndefined();
    expect(facts.incomplete).toContainEqual({ section: 'file', reason: `${join(pub, 'secret')}: unreadable` });
  });
});
