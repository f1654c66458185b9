import { readFileSync, mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { parseFacts } from '../facts/parse.js';
import type { HostFacts } from '../facts/types.js';
import { inventorySchema } from '../inventory/schema.js';
import { loadPlaybook } from '../playbook/load.js';
import { desiredHosts } from '../plan/desired.js';
import { planHost } from '../plan/plan-host.js';
import type { HostPlan } from '../plan/types.js';
import { renderStep } from '../apply/render-step.js';
import { renderApplyScript, renderUndo } from '../apply/apply-script.js';
import { ROLLBACK_RUNNER_SCRIPT } from '../apply/rollback-runner.js';
import { PlanError } from './types.js';
import { encodePath } from './nginx-files.js';

/**
 * Real facts from the lab proxy (test/fixtures/facts/proxy-integrity.txt): nginx.conf ends with a
 * Latin-1 comment ("caf\351"), conf.d holds a symlink to nginx.conf, a FIFO, a symlink to nothing
 * and a directory, /etc/nginx/shared is mode 777, /var/lib/dsrctl is root's 0755.
 */
const FACTS = parseFacts(readFileSync(new URL('../../test/fixtures/facts/proxy-integrity.txt', import.meta.url), 'utf8'));
const RUN = '/var/lib/dsrctl/runs/RUN';

function plan(managed: string, protocol: 'http' | 'tcp' = 'http', facts: HostFacts = FACTS): HostPlan {
  const inv = inventorySchema.parse({
    mode: 'ip-transparency',
    service: { protocol, listen_port: 80, upstream_port: 8080 },
    proxy: { ssh_host: '10.211.0.10', public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0', managed_config: managed },
    upstreams: [{ name: 'dev1', ssh_host: '10.211.0.11', ip: '172.16.0.11', interface: 'priv0' }],
  });
  const pb = loadPlaybook('ip-transparency');
  return planHost(inv, pb, desiredHosts(inv, pb)[0]!, structuredClone(facts));
}

function refusal(f: () => unknown): PlanError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PlanError);
    return e as PlanError;
  }
  throw new Error('expected the plan to be refused');
}

const fileSteps = (p: HostPlan) => p.changes.filter((c) => c.kind.startsWith('nginx-'));
const written = (p: HostPlan, path: string) => {
  const w = fileSteps(p).flatMap((c) => c.do).filter((s) => 'write' in s && s.write.path === path);
  return Buffer.from((w.at(-1) as { write: { content: string } }).write.content, 'latin1');
};

describe('files dsrctl edits (facts of the lab proxy)', () => {
  it('refuses a managed_config that is nginx.conf under another name (a symlink), exit 2, naming both fields', () => {
    const e = refusal(() => plan('/etc/nginx/conf.d/dsrctl-link.conf'));
    expect(e.usage).toBe(true);
    expect(e.message).toBe(
      'proxy: proxy.managed_config (/etc/nginx/conf.d/dsrctl-link.conf) and proxy.nginx_conf (/etc/nginx/nginx.conf) are the same file (both are /etc/nginx/nginx.conf on this host): dsrctl replaces proxy.managed_config whole; give it a file of its own',
    );
  });

  it('accepts nginx_conf spelt another way when it resolves to the file nginx reads', () => {
    const facts = structuredClone(FACTS);
    facts.files['/etc/nginx//nginx.conf'] = { ...facts.files['/etc/nginx/nginx.conf']!, path: '/etc/nginx//nginx.conf' };
    const inv = inventorySchema.parse({
      mode: 'ip-transparency',
      service: { protocol: 'http', listen_port: 80, upstream_port: 8080 },
      proxy: { ssh_host: '10.211.0.10', public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0', nginx_conf: '/etc/nginx//nginx.conf', managed_config: '/etc/nginx/conf.d/dsrctl-does-not-exist.conf' },
      upstreams: [{ name: 'dev1', ssh_host: '10.211.0.11', ip: '172.16.0.11', interface: 'priv0' }],
    });
    const pb = loadPlaybook('ip-transparency');
    const p = planHost(inv, pb, desiredHosts(inv, pb)[0]!, facts);
    expect(p.changes[0]!.summary).toBe('/etc/nginx//nginx.conf: user www-data; -> user root;');
  });

  it.each([
    ['/etc/nginx/conf.d/fifo.conf', 'is not a regular file (a FIFO, socket or device)'],
    ['/etc/nginx/conf.d/dir.conf', 'is a directory'],
    ['/etc/nginx/conf.d/dangling.conf', 'is a symlink to nothing (/etc/nginx/nowhere)'],
  ])('refuses managed_config %s: %s', (path, what) => {
    const e = refusal(() => plan(path));
    expect(e.usage).toBe(true);
    expect(e.message).toContain(`proxy.managed_config: ${path} ${what}`);
  });

  it('refuses to work through a directory other users can write', () => {
    expect(refusal(() => plan('/etc/nginx/shared/dsrctl.conf')).message).toContain(
      'proxy.managed_config: /etc/nginx/shared is writable by every user (mode 777); a non-root user could redirect',
    );
    const facts = structuredClone(FACTS);
    facts.stateDir!.owner = { uid: 1000, gid: 1000 };
    expect(refusal(() => plan('/etc/nginx/conf.d/dsrctl-does-not-exist.conf', 'http', facts)).message).toContain('/var/lib/dsrctl is owned by uid 1000, not root');
  });

  it('keeps a Latin-1 byte of nginx.conf: only the user line changes, every other byte is the one read', () => {
    const p = plan('/etc/nginx/conf.d/dsrctl-does-not-exist.conf');
    const before = Buffer.from(FACTS.files['/etc/nginx/nginx.conf']!.contentBase64!, 'base64');
    const after = written(p, '/etc/nginx/nginx.conf');
    expect(before.includes(Buffer.from('# caf\xe9 latin1\n', 'latin1'))).toBe(true);
    expect(after.includes(Buffer.from('# caf\xe9 latin1\n', 'latin1'))).toBe(true);
    expect(after.toString('latin1').replace(/^user root;/m, 'user www-data;')).toBe(before.toString('latin1'));
    // the rendered write puts back exactly those bytes
    const step = fileSteps(p)[0]!.do.find((s) => 'write' in s)!;
    const b64 = /printf '%s' (\S+) \| base64 -d/.exec(renderStep(step, RUN))![1]!.replace(/['\\]/g, '');
    expect(Buffer.from(b64, 'base64').equals(after)).toBe(true);
  });

  it('checks at apply time that nginx.conf is still the one the plan read (sha256 and resolved path)', () => {
    const p = plan('/etc/nginx/conf.d/dsrctl-does-not-exist.conf');
    const sha = createHash('sha256').update(Buffer.from(FACTS.files['/etc/nginx/nginx.conf']!.contentBase64!, 'base64')).digest('hex');
    expect(p.preconditions).toEqual([
      { path: '/etc/nginx/nginx.conf', sha256: sha, realpath: '/etc/nginx/nginx.conf' },
      { path: '/etc/nginx/conf.d/dsrctl-does-not-exist.conf', realpath: '/etc/nginx/conf.d/dsrctl-does-not-exist.conf' },
    ]);
    const script = renderApplyScript(p, 'RUN', { switchSeconds: 60 });
    expect(script).toContain(`[ "$(sha256sum < /etc/nginx/nginx.conf 2>/dev/null | cut -c1-64)" = ${sha} ] ||`);
    // before the journal exists: a drifted host is refused with nothing changed
    expect(script.indexOf('sha256sum <')).toBeLessThan(script.indexOf('mkdir -p'));
    expect(script).toMatch(/\numask 077\n/);
    expect(script).toMatch(/\nPATH=\/usr\/local\/sbin:[^\n]*; export PATH\n/);
  });

  it('gives two edits of one file two backups, and no undo carries file contents', () => {
    const p = plan('/etc/nginx/dsrctl/stream.conf', 'tcp');
    const conf = fileSteps(p).filter((c) => c.id.startsWith('file /etc/nginx/nginx.conf'));
    expect(conf).toHaveLength(2);
    const keys = conf.flatMap((c) => c.do.flatMap((s) => ('backup' in s ? [s.backup.key] : [])));
    expect(keys).toEqual([`001-${encodePath('/etc/nginx/nginx.conf')}`, `002-${encodePath('/etc/nginx/nginx.conf')}`]);
    for (const c of fileSteps(p)) expect(renderUndo(c, RUN)).not.toMatch(/base64/);
  });

  it('names backups injectively: spellings that used to share one do not', () => {
    const names = ['/etc/nginx/nginx.conf', '/etc/nginx/nginx-conf', '/etc/nginx/nginx_conf', '/etc/nginx//nginx.conf', '/etc/nginx/./nginx.conf', '/etc/nginx/nginx%2Fconf'].map(encodePath);
    expect(new Set(names).size).toBe(names.length);
    expect(encodePath('/etc/nginx/nginx.conf')).toBe('%2Fetc%2Fnginx%2Fnginx.conf');
  });
});

// The backup and restore commands themselves, run by dash in a scratch directory.
describe('backup and restore on a real shell', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dsrctl-backup-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const sh = (script: string) => spawnSync('sh', ['-c', script], { encoding: 'utf8' });

  it('never lets a backup replace another: the second fails and the first stays', () => {
    mkdirSync(join(dir, 'files'));
    writeFileSync(join(dir, 'conf'), 'original\n');
    const step = { backup: { path: join(dir, 'conf'), key: 'k' } };
    expect(sh(renderStep(step, dir)).status).toBe(0);
    writeFileSync(join(dir, 'conf'), 'user root;\n');
    expect(sh(renderStep(step, dir)).status).not.toBe(0);
    expect(readFileSync(join(dir, 'files', 'k'), 'utf8')).toBe('original\n');
  });

  it('refuses a host whose file changed between plan and apply, before the journal exists', () => {
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, 'user www-data;\n');
    const sha = createHash('sha256').update('user www-data;\n').digest('hex');
    const script = renderApplyScript({ host: 'proxy', role: 'proxy', notes: [], changes: [], preconditions: [{ path: conf, sha256: sha, realpath: conf }, { path: join(dir, 'new.conf') }] }, 'RUN', { switchSeconds: 60 });
    const lines = script.split('\n');
    // the checks alone (they come before the first line that writes anything)
    const checks = lines.slice(lines.findIndex((l) => l.startsWith('run=')) + 1, lines.findIndex((l) => l.startsWith('mkdir -p'))).join('\n');
    expect(sh(checks).status).toBe(0);
    writeFileSync(conf, 'user www-data;\n# edited meanwhile\n');
    const r = sh(checks);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe(`@@dsrctl-drift ${conf} changed since the plan read it; nothing was changed on proxy: run dsrctl plan again\n`);
    writeFileSync(conf, 'user www-data;\n');
    writeFileSync(join(dir, 'new.conf'), '');
    expect(sh(checks).stdout).toContain(`${join(dir, 'new.conf')} was created since the plan read it`);
  });

  it('the rollback runner calls a half-applied change whose backup cannot be put back a failed rollback', () => {
    const run = join(dir, 'run');
    mkdirSync(join(run, 'changes'), { recursive: true });
    mkdirSync(join(run, 'files'));
    writeFileSync(join(run, 'files', 'k'), 'original\n');
    // the backup exists (the change got that far), its destination directory is gone
    writeFileSync(join(run, 'changes', '001.undo'), renderUndo({ kind: 'x', id: 'x', action: 'update', summary: 'x', do: [], undo: [{ restore: { path: join(dir, 'gone', 'conf'), key: 'k' } }] }, run));
    writeFileSync(join(run, 'changes', '001.state'), 'pending\n');
    writeFileSync(join(run, 'changes', '001.summary'), 'rewrite nginx.conf\n');
    writeFileSync(join(run, 'status'), 'applying\n');
    const r = spawnSync('sh', ['-c', ROLLBACK_RUNNER_SCRIPT, 'rollback.sh', run, 'test'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/@@dsrctl-undo-failed rewrite nginx.conf: .*cannot restore/);
    expect(r.stdout).toContain('@@dsrctl-rollback-status rollback-failed');
  });

  it('a backup that cannot be put back is status 3 (a failed rollback), a missing one 1', () => {
    // the backup exists, the place it goes back to does not (its directory is gone)
    const undo = renderUndo({ kind: 'x', id: 'x', action: 'update', summary: 'x', do: [], undo: [{ restore: { path: join(dir, 'gone', 'conf'), key: 'k' } }] }, dir);
    expect(sh(undo).status).toBe(3);
    const missing = renderUndo({ kind: 'x', id: 'x', action: 'update', summary: 'x', do: [], undo: [{ restore: { path: join(dir, 'conf'), key: 'nope' } }] }, dir);
    expect(sh(missing).status).toBe(1);
  });
});
