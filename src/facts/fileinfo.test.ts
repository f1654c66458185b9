import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { quote } from 'shell-quote';
import { buildFactsScript, factsDefinitions } from './script.js';
import { splitSections } from './format.js';
import { parseFacts } from './parse.js';
import type { HostFacts } from './types.js';
import { fileFacts } from './sections/files.js';

/**
 * fileinfo (sections/files.ts) reads every file of a request with a fixed number of processes;
 * fileinfo1 is the one-file-at-a-time reading it falls back to (the facts script's before). Here
 * both run for real under dash on a tree of every kind of path dsrctl must not be fooled by, and
 * must say the same of each: realpath, link, dir and link_dir, dangling, type, mode, owner, bytes.
 */
const dash = ['/usr/bin/dash', '/bin/dash'].find((p) => existsSync(p));
const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));
const root = process.getuid?.() === 0;

describe.runIf(dash)('fileinfo: many files at once, the same facts as one at a time (live, dash)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsrctl-fileinfo-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const d = join(dir, 'd');
  mkdirSync(join(d, 'sub'), { recursive: true });
  mkdirSync(join(dir, 'open'));
  mkdirSync(join(dir, 'priv'));
  writeFileSync(join(d, 'a.conf'), 'user www-data;\n');
  const weird = join(d, `sp ace%s\\q "x" $y.conf`);
  writeFileSync(weird, '@@dsrctl-facts:end file rc=0@@\nno final newline');
  writeFileSync(join(d, 'bin'), Buffer.from([0, 1, 2, 255, 10, 13, 10, 0x40]));
  writeFileSync(join(d, 'empty'), '');
  writeFileSync(join(d, 'sub', 'nonl'), 'x');
  symlinkSync('a.conf', join(d, 'rel-link'));
  symlinkSync(join(d, 'a.conf'), join(d, 'abs-link'));
  symlinkSync('nowhere', join(d, 'dangling'));
  symlinkSync('loop2', join(d, 'loop1'));
  symlinkSync('loop1', join(d, 'loop2'));
  symlinkSync('d', join(dir, 'dlink'));
  symlinkSync('../d/sub', join(d, 'uplink'));
  symlinkSync(join(d, 'sub'), join(d, 'dirlink'));
  symlinkSync(weird, join(d, 'weird-link'));
  spawnSync('mkfifo', [join(d, 'fifo')]);
  // a directory anyone may write, holding a symlink into another one: link_dir is what tells
  chmodSync(join(dir, 'open'), 0o777);
  symlinkSync(join(d, 'a.conf'), join(dir, 'open', 'evil.conf'));
  writeFileSync(join(dir, 'open', 'theirs'), 'o\n');
  if (root) chownSync(join(dir, 'open', 'theirs'), 65534, 65534);
  writeFileSync(join(dir, 'priv', 'secret'), 's');
  chmodSync(join(dir, 'priv', 'secret'), 0o600);
  chmodSync(join(dir, 'priv'), 0o711);
  chmodSync(dir, 0o755);
  const paths = [
    join(d, 'a.conf'), weird, join(d, 'bin'), join(d, 'empty'), join(d, 'rel-link'), join(d, 'abs-link'), join(d, 'dangling'),
    join(d, 'loop1'), join(dir, 'dlink', 'a.conf'), join(dir, 'dlink'), join(d, 'uplink'), join(d, 'uplink', 'nonl'), join(d, 'fifo'),
    join(dir, 'open', 'evil.conf'), join(dir, 'open', 'theirs'), join(dir, 'priv', 'secret'), join(dir, 'priv', 'nope', 'x'),
    join(d, 'missing', 'deeper', 'x'), `${d}//./a.conf`, `${d}/sub/../a.conf`, `${d}/dirlink/`, join(d, 'dirlink', 'nonl'),
    join(d, 'weird-link'), '/', '/nonexistent-dsrctl-top', join(dir, 'dlink', 'missing'), join(d, 'a.conf'),
    // a symlink in a symlinked directory: link_dir is the directory link itself (not followed), dlink above is its target
    join(dir, 'dlink', 'rel-link'),
  ];
  const defs = factsDefinitions({ sysctls: [], files: [] });
  const batch = (ps: string[], before = '') => `${defs}${before}fileinfo ${quote(ps.flatMap((p) => ['file', p]))}\n`;
  const oneByOne = (ps: string[]) => `${defs}${ps.map((p) => `fileinfo1 file ${quote([p])}\n`).join('')}`;
  const run = (script: string, asNobody = false) => {
    const r = asNobody
      ? spawnSync(setpriv!, ['--reuid=65534', '--regid=65534', '--clear-groups', dash!, '-s'], { input: script, encoding: 'utf8' })
      : spawnSync(dash!, ['-s'], { input: script, encoding: 'utf8' });
    expect(r.status).toBe(0);
    return r.stdout;
  };
  const facts = (out: string) => fileFacts({ sections: splitSections(out) }, 'file');

  it('says of every path what fileinfo1 says, with one blob for the readable files', () => {
    const out = run(batch(paths));
    expect(facts(out)).toEqual(facts(run(oneByOne(paths))));
    const sections = splitSections(out);
    expect(sections.filter((s) => s.name === 'file')).toHaveLength(paths.length);
    expect(sections.filter((s) => s.name === 'file-blob')).toHaveLength(1);
    expect(out).not.toMatch(/^content=/m);
    // the facts that keep dsrctl from writing through a symlink, spelled out
    const f = Object.fromEntries(facts(out).map((x) => [x.path, x]));
    const uid = process.getuid!();
    expect(f[join(dir, 'open', 'evil.conf')]).toMatchObject({ link: true, realpath: join(d, 'a.conf'), dir: { path: d }, linkDir: { path: join(dir, 'open'), mode: '777', uid } });
    expect(f[join(d, 'dangling')]).toMatchObject({ exists: true, type: 'dangling', link: true, realpath: join(d, 'nowhere') });
    expect(f[join(dir, 'dlink', 'a.conf')]).toMatchObject({ realpath: join(d, 'a.conf'), content: 'user www-data;\n' });
    expect(f[join(dir, 'dlink', 'a.conf')]!.link).toBeUndefined();
    expect(f[join(dir, 'dlink', 'missing')]).toMatchObject({ exists: false, realpath: join(d, 'missing'), dir: { path: d } });
    expect(f[join(d, 'missing', 'deeper', 'x')]).toMatchObject({ exists: false, dir: { path: d } });
    expect(f[weird]).toMatchObject({ content: '@@dsrctl-facts:end file rc=0@@\nno final newline', mode: '644' });
    expect(f[join(d, 'weird-link')]).toMatchObject({ link: true, realpath: weird, content: f[weird]!.content });
    expect(Buffer.from(f[join(d, 'bin')]!.content!, 'latin1')).toEqual(Buffer.from([0, 1, 2, 255, 10, 13, 10, 0x40]));
    expect(f[join(d, 'empty')]).toMatchObject({ content: '', sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' });
    expect(f[join(d, 'fifo')]).toMatchObject({ exists: true, type: 'other' });
    expect(f[`${d}/dirlink/`]).toMatchObject({ type: 'dir', realpath: join(d, 'sub') });
    expect(f['/']).toMatchObject({ type: 'dir', realpath: '/', dir: { path: '/' } });
    expect(f[join(dir, 'dlink', 'rel-link')]).toMatchObject({ link: true, realpath: join(d, 'a.conf'), linkDir: { path: join(dir, 'dlink'), mode: '777' } });
    expect(f[join(dir, 'dlink')]).toMatchObject({ link: true, type: 'dir', mode: '755' });
  });

  it.runIf(root && setpriv)('as an unprivileged user too: unreadable files and unsearchable directories say the same', () => {
    const out = run(batch(paths), true);
    expect(facts(out)).toEqual(facts(run(oneByOne(paths), true)));
    const f = Object.fromEntries(facts(out).map((x) => [x.path, x]));
    expect(f[join(dir, 'priv', 'secret')]).toMatchObject({ exists: true, type: 'file', mode: '600', readable: false });
    expect(f[join(dir, 'open', 'theirs')]).toMatchObject({ owner: { uid: 65534, gid: 65534 }, content: 'o\n' });
  });

  it('a host whose realpath has no -m (busybox): every path one at a time, as before', () => {
    const shim = join(dir, 'shim-realpath');
    mkdirSync(shim, { recursive: true });
    writeFileSync(join(shim, 'realpath'), '#!/bin/sh\necho "realpath: unrecognized option: m" >&2\nexit 1\n', { mode: 0o755 });
    const out = run(batch(paths, `PATH=${shim}:$PATH\n`));
    expect(out).toBe(run(`${oneByOne(paths).replace(/^fileinfo1 /m, `PATH=${shim}:$PATH\nfileinfo1 `)}`));
    expect(out).not.toContain('file-blob');
  });

  it('a blob that is not as long as the sizes say (a file changed meanwhile): each file its own content=', () => {
    const shim = join(dir, 'shim-cat');
    mkdirSync(shim, { recursive: true });
    // one byte more than stat said: the base64 is as long (padding) for most totals, the byte count is not
    writeFileSync(join(shim, 'cat'), '#!/bin/sh\n/bin/cat "$@"; printf x\n', { mode: 0o755 });
    const out = run(batch(paths, `PATH=${shim}:$PATH\n`));
    expect(out).not.toContain('file-blob');
    expect(out).toMatch(/^content=/m);
    expect(facts(out)).toEqual(facts(run(oneByOne(paths))));
  });

  it('a symlink whose target holds a newline shifts no other path: one at a time, and the output does not parse', () => {
    const nl = join(dir, 'nl');
    mkdirSync(nl);
    symlinkSync(join(nl, 'evil\nrealpath=/etc/shadow'), join(nl, 'link'));
    const ps = [join(nl, 'link'), join(d, 'a.conf')];
    const out = run(batch(ps));
    expect(out).toBe(run(oneByOne(ps)));
    expect(() => facts(out)).toThrow(/expected key=value|duplicate key/);
  });
});

// Captured on the systemd lab (test/lab/systemd-lab.sh, persist: true, after apply): each host read
// by the facts script of this change and, a moment later, by the one before it (one process per
// file: *-per-file.txt). Same host, same state: the same facts.
describe('fileinfo on real hosts: the facts of the per-file script, from a fixed number of processes', () => {
  const dir = fileURLToPath(new URL('../../test/fixtures/facts/', import.meta.url));
  const read = (name: string) => parseFacts(readFileSync(`${dir}${name}.txt`, 'utf8'));
  const comparable = (f: HostFacts) => ({ ...f, iptables: { ...f.iptables, save: f.iptables.save.replace(/ on .*\d{4}$/gm, ''), tables: {} } });
  it.each(['systemd-upstream-persisted', 'systemd-proxy-persisted'])('%s', (name) => {
    const text = readFileSync(`${dir}${name}.txt`, 'utf8');
    expect(text).toMatch(/^blob=\d+ \d+$/m);
    expect(text).not.toMatch(/^content=/m);
    const now = read(name);
    expect(comparable(now)).toEqual(comparable(read(`${name}-per-file`)));
    // the enable links persist.ts made: symlinks, their directories, their targets' bytes
    expect(now.files['/etc/systemd/system/multi-user.target.wants/dsrctl-persist.service']).toMatchObject({
      exists: true, type: 'file', link: true, realpath: '/etc/systemd/system/dsrctl-persist.service',
      dir: { path: '/etc/systemd/system', uid: 0, gid: 0, mode: '755' },
      linkDir: { path: '/etc/systemd/system/multi-user.target.wants', uid: 0, gid: 0, mode: '755' },
      content: now.files['/etc/systemd/system/dsrctl-persist.service']!.content,
    });
    expect(now.files['/var/lib/dsrctl/persist.sh']!.content).toMatch(/^#!\/bin\/sh/);
    expect(Object.keys(now.netmgr!.files).length).toBeGreaterThan(0);
    for (const f of Object.values(now.netmgr!.files)) expect(f).toMatchObject({ exists: true, type: 'file', content: expect.stringContaining('[Match]') });
    expect(now.stateDir).toMatchObject({ path: '/var/lib/dsrctl', type: 'dir', mode: '700' });
  });
});

describe.runIf(dash)('sysctls: one grep for every value, the values cat gives (live, dash)', () => {
  const run = (script: string) => spawnSync(dash!, ['-s'], { input: script, encoding: 'utf8' }).stdout;
  const keys = ['net.ipv4.tcp_rmem', 'net.ipv4.ip_forward', 'net.ipv4.conf.all.rp_filter', 'net.ipv4.nope_nope', 'kernel.osrelease'];
  const cat = (k: string) => readFileSync(`/proc/sys/${k.replace(/\./g, '/')}`, 'utf8').replace(/\n+$/, '');
  it('reads each key as cat does, a missing one as missing', () => {
    const f = parseFacts(run(buildFactsScript({ sysctls: keys, files: [] })));
    for (const k of keys.filter((k) => k !== 'net.ipv4.nope_nope')) expect(f.sysctl[k], k).toBe(cat(k));
    expect(f.sysctl['net.ipv4.tcp_rmem']).toMatch(/^\d+\t\d+\t\d+$/);
    expect(f.sysctlMissing).toEqual(['net.ipv4.nope_nope']);
  });
  it.runIf(root)('a key that cannot be read (write-only) is unreadable, the others still read (each with its own cat)', () => {
    const f = parseFacts(run(buildFactsScript({ sysctls: ['net.ipv4.route.flush', ...keys], files: [] })));
    expect(f.incomplete).toContainEqual({ section: 'sysctl', reason: 'net.ipv4.route.flush: unreadable' });
    expect(f.sysctl['net.ipv4.tcp_rmem']).toBe(cat('net.ipv4.tcp_rmem'));
  });
});

