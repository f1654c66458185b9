import { readFileSync, mkdtempSync, symlinkSync, lstatSync, readlinkSync, existsSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseFacts } from '../facts/parse.js';
import type { HostFacts } from '../facts/types.js';
import { nginxListens, splitNginxDump } from '../facts/parsers/nginx-config.js';
import { inventorySchema } from '../inventory/schema.js';
import { loadPlaybook } from '../playbook/load.js';
import { renderStep } from '../apply/render-step.js';
import { PlanError } from '../resources/types.js';
import { disableSite, nginxExclusivePort } from '../resources/nginx-port.js';
import { findPortConflicts, planTakeOver } from './port-conflicts.js';
import type { Change } from './types.js';

/** facts and `nginx -T` captured from the lab's stock proxies (test/lab/lab.sh, DSR_LAB_STOCK=...) */
const facts = (name: string): HostFacts => parseFacts(readFileSync(new URL(`../../test/fixtures/facts/${name}.txt`, import.meta.url), 'utf8'));
const listensOf = (name: string) => nginxListens(splitNginxDump(readFileSync(new URL(`../../test/fixtures/nginx/${name}.nginx-T.txt`, import.meta.url), 'utf8')));

function inventory(over: { protocol?: 'http' | 'tcp' | 'udp'; port?: number; take_over_port?: boolean; managed_config?: string } = {}) {
  return inventorySchema.parse({
    mode: 'ip-transparency',
    service: { protocol: over.protocol ?? 'http', listen_port: over.port ?? 80, upstream_port: 8080 },
    proxy: {
      ssh_host: '10.211.0.10', public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0',
      ...(over.take_over_port === undefined ? {} : { take_over_port: over.take_over_port }),
      ...(over.managed_config ? { managed_config: over.managed_config } : {}),
    },
    upstreams: [{ name: 'dev1', ssh_host: '10.211.0.11', ip: '172.16.0.11' }],
  });
}

function plan(f: HostFacts, inv: ReturnType<typeof inventory>): Change[] | null {
  const ctx = { inventory: inv, playbook: loadPlaybook('ip-transparency'), role: 'proxy' as const, host: 'proxy', shared: new Map(), notes: [] };
  const r = nginxExclusivePort.plan({}, f, ctx);
  return r === null ? null : [r].flat();
}

function refusal(f: HostFacts, inv: ReturnType<typeof inventory>): PlanError {
  try {
    plan(f, inv);
  } catch (e) {
    expect(e).toBeInstanceOf(PlanError);
    expect((e as PlanError).usage).toBe(true); // exit 2, nothing touched
    return e as PlanError;
  }
  throw new Error('the plan did not refuse');
}

const svc = (protocol: 'http' | 'tcp' | 'udp', port: number, managedPath = '/etc/nginx/conf.d/dsrctl.conf') => ({ protocol, port, publicIp: '192.168.99.10', managedPath });
const where = (cs: ReturnType<typeof findPortConflicts>) => cs.map((c) => `${c.listen.file}:${c.listen.line}`);

describe("a stock proxy: Debian's default site on :80", () => {
  it('refuses http on :80 naming sites-enabled/default:22 and what to do', () => {
    const e = refusal(facts('stock-proxy-default-site'), inventory());
    expect(e.message).toContain('proxy: port 80/tcp on 192.168.99.10 is already served by another nginx server');
    expect(e.message).toContain('/etc/nginx/sites-enabled/default:22  listen 80 default_server;  (http, server_name _): default_server:');
    expect(e.message).toContain('rm /etc/nginx/sites-enabled/default');
    expect(e.message).toContain('set proxy.take_over_port: true');
    // its IPv6 listen does not take the IPv4 clients: not a conflict
    expect(e.message).not.toContain('default:23');
  });

  it('with take_over_port removes the link, and the undo puts it back with target, owner and mtime', () => {
    const changes = plan(facts('stock-proxy-default-site'), inventory({ take_over_port: true }))!;
    expect(changes).toHaveLength(1);
    const [c] = changes as [Change];
    expect(c).toMatchObject({ kind: 'nginx-exclusive-port', action: 'delete', notify: ['nginx-reload'] });
    expect(c.summary).toContain('disable /etc/nginx/sites-enabled/default (symlink to /etc/nginx/sites-available/default)');
    expect(c.summary).toContain('listen [::]:80 default_server (/etc/nginx/sites-enabled/default:23)');
    expect(c.diff).toContain('-/etc/nginx/sites-enabled/default -> /etc/nginx/sites-available/default');
    expect(renderStep(c.undo[0]!, '/x')).toMatch(/touch -h -d \\?@1796677549\.275657867 -- \/etc\/nginx\/sites-enabled\/default/);
  });

  it('has no conflict on another port', () => {
    expect(plan(facts('stock-proxy-default-site'), inventory({ port: 8081 }))).toBeNull();
  });
});

describe("a stock proxy: the user's reverse proxy in sites-enabled/app", () => {
  it('refuses: the site answers its own Host even once dsrctl is the default server', () => {
    const e = refusal(facts('stock-proxy-reverse-proxy'), inventory());
    expect(e.message).toContain('/etc/nginx/sites-enabled/app:3  listen 80;  (http, server_name app.example.com): answers requests for Host app.example.com on *:80');
  });

  it("is nginx's default for *:80 when dsrctl's file comes later in nginx's order", () => {
    const cs = findPortConflicts(listensOf('stock-reverse-proxy'), svc('http', 80, '/etc/nginx/zz-not-included.conf'));
    expect(cs.map((c) => c.why)).toEqual([expect.stringContaining("the first server for *:80 (nginx's default when none says default_server)")]);
  });

  it('is no conflict when it is the managed file itself', () => {
    expect(plan(facts('stock-proxy-reverse-proxy'), inventory({ managed_config: '/etc/nginx/sites-enabled/app' }))).toBeNull();
  });
});

describe('conflicts by address, port and protocol', () => {
  const listens = listensOf('hand-made-mixed');
  it('http :80: every other server on *:80 (with or without listen), not the one on 127.0.0.1', () => {
    expect(where(findPortConflicts(listens, svc('http', 80)))).toEqual(['/etc/nginx/conf.d/local.conf:7', '/etc/nginx/sites-enabled/app:3']);
  });
  it('stream: same port and protocol, on * or the public address', () => {
    expect(where(findPortConflicts(listens, svc('udp', 53)))).toEqual(['/etc/nginx/streams/dns.conf:2']);
    expect(findPortConflicts(listens, svc('tcp', 53))).toEqual([]);
    const tcp = findPortConflicts(listens, svc('tcp', 8081));
    expect(where(tcp)).toEqual(['/etc/nginx/streams/dns.conf:6']);
    expect(tcp[0]!.why).toContain('another stream server on 192.168.99.10:8081');
  });
  it('http and stream on one TCP port cannot coexist', () => {
    expect(findPortConflicts(listens, svc('tcp', 8443)).map((c) => c.why)).toEqual([expect.stringContaining('an http server on *:8443')]);
  });
  it('take over refuses a server in a regular file, and says why', () => {
    const conflicts = findPortConflicts(listens, svc('http', 80));
    const t = planTakeOver(conflicts, listens, { '/etc/nginx/sites-enabled/app': { target: '/etc/nginx/sites-available/app', owner: '0:0', mtime: '' } });
    expect(t.sites.map((s) => s.link)).toEqual(['/etc/nginx/sites-enabled/app']);
    expect(t.refused.map((r) => r.reason)).toEqual([expect.stringContaining('/etc/nginx/conf.d/local.conf is a regular file, not a symlink')]);
  });
});

describe('nginx -T failing', () => {
  it("refuses with nginx's own error", () => {
    const e = refusal(facts('proxy-nginx-config-broken'), inventory());
    expect(e.message).toContain('nginx -T failed');
    expect(e.message).toContain('unexpected "}" in /etc/nginx/conf.d/broken.conf:3');
  });

  it('says that root is needed when the facts ran as another user', () => {
    const e = refusal(facts('stock-proxy-default-site-nonroot'), inventory());
    expect(e.message).toContain('open() "/run/nginx.pid" failed (13: Permission denied)');
    expect(e.message).toContain('as uid 65534; nginx -T needs root (set ssh.sudo: true, or log in as root)');
  });
});

describe('the take-over steps, run by sh', () => {
  it('remove the link, and undo recreates it exactly (target, mtime), even twice', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dsrctl-takeover-'));
    try {
      const link = join(dir, 'sites-enabled-default');
      symlinkSync('/etc/nginx/sites-available/default', link);
      spawnSync('touch', ['-h', '-d', '@1700000000.123456789', link]);
      const before = lstatSync(link, { bigint: true });
      const listens = listensOf('stock-default-site').map((l) => ({ ...l, serverFile: link }));
      const conflicts = findPortConflicts(listens, svc('http', 80));
      const owner = `${process.getuid!()}:${process.getgid!()}`;
      const t = planTakeOver(conflicts, listens, { [link]: { target: '/etc/nginx/sites-available/default', owner, mtime: '1700000000.123456789' } });
      const c = disableSite(t.sites[0]!, 80);
      const sh = (steps: Change['do']) => spawnSync('sh', ['-c', steps.map((s) => renderStep(s, dir)).join(' && ')], { encoding: 'utf8' });
      expect(sh(c.do).status).toBe(0);
      expect(existsSync(link) || lstatSync(link, { throwIfNoEntry: false })).toBeFalsy();
      expect(sh(c.undo).status).toBe(0);
      expect(sh(c.undo).status).toBe(0); // already back: nothing to do
      const after = lstatSync(link, { bigint: true });
      expect(readlinkSync(link)).toBe('/etc/nginx/sites-available/default');
      expect([after.mtimeNs, after.uid, after.gid]).toEqual([before.mtimeNs, before.uid, before.gid]);
      // a link that changed since the plan is not removed
      rmSync(link);
      symlinkSync('/elsewhere', link);
      const r = sh(c.do);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain('no longer points to /etc/nginx/sites-available/default');
      expect(readlinkSync(link)).toBe('/elsewhere');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
