/** proxy.nginx_user: keep or the guide's `user root;`, decided from real facts of the lab's proxy. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseFacts } from '../../facts/parse.js';
import type { HostFacts } from '../../facts/types.js';
import { inventorySchema, type Inventory } from '../../inventory/schema.js';
import { decideNginxUser } from './user-decision.js';
import { nginxUser } from '../nginx-files.js';
import type { PlanContext } from '../types.js';

/**
 * Facts of the lab's proxy (Debian 12, nginx 1.22.1), read by the facts script:
 *   proxy-nginx-www-data         nginx as Debian starts it: user www-data, master CapBnd 000001fffeffffff
 *   proxy-capbnd-no-net-raw      the same nginx started under `setpriv --bounding-set -net_raw`
 *   proxy-user-root-by-dsrctl    after an apply with nginx_user: root (its run's copy of nginx.conf in the journal)
 */
const fixture = (name: string): HostFacts => parseFacts(readFileSync(new URL(`../../../test/fixtures/facts/${name}.txt`, import.meta.url), 'utf8'));
/** The same facts as an older nginx would print them (`nginx -V` says 1.12.2). */
const olderNginx = (): HostFacts => parseFacts(readFileSync(new URL('../../../test/fixtures/facts/proxy-nginx-www-data.txt', import.meta.url), 'utf8').replace('nginx version: nginx/1.22.1', 'nginx version: nginx/1.12.2'));

function inventory(nginx_user?: 'keep' | 'root'): Inventory {
  return inventorySchema.parse({
    mode: 'ip-transparency',
    service: { protocol: 'http', listen_port: 80, upstream_port: 8080 },
    proxy: { ssh_host: '10.211.0.10', public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0', ...(nginx_user ? { nginx_user } : {}) },
    upstreams: [{ name: 'dev1', ssh_host: '10.211.0.11', ip: '172.16.0.11' }],
  });
}
const ctx = (inv: Inventory) => ({ inventory: inv, host: 'proxy', role: 'proxy', shared: new Map(), notes: [] as string[] }) as unknown as PlanContext;

describe('decideNginxUser (real facts)', () => {
  it('Debian nginx 1.22 with CAP_NET_RAW in its bounding set: keep, and the reason says why', () => {
    const f = fixture('proxy-nginx-www-data');
    expect(f.nginx).toMatchObject({ version: '1.22.1', running: true, capBnd: '000001fffeffffff' });
    const d = decideNginxUser(undefined, f.nginx);
    expect(d.user).toBe('keep');
    expect(d.reason).toMatch(/^nginx 1\.22\.1 >= 1\.13\.8 and CAP_NET_RAW in its capability bounding set \(CapBnd 000001fffeffffff\)/);
    expect(d.warning).toBeUndefined();
    expect(decideNginxUser('keep', f.nginx).user).toBe('keep');
  });

  it('nginx_user: root is the guide\'s way whatever the facts', () => {
    expect(decideNginxUser('root', fixture('proxy-nginx-www-data').nginx)).toEqual({ user: 'root', reason: "proxy.nginx_user: root: the guide's `user root;`" });
  });

  it('CAP_NET_RAW cut from the bounding set: falls back to root and says so (CAP_NET_ADMIN is left, so root workers still work)', () => {
    const f = fixture('proxy-capbnd-no-net-raw');
    expect(f.nginx.capBnd).toBe('000001fffeffdfff');
    const d = decideNginxUser(undefined, f.nginx);
    expect(d.user).toBe('root');
    expect(d.reason).toBe(
      "nginx's capability bounding set (CapBnd 000001fffeffdfff) lacks CAP_NET_RAW, so unprivileged workers cannot keep it (their capset fails and they exit at start): falling back to the guide's `user root;`",
    );
    expect(d.warning).toBeUndefined();
    expect(decideNginxUser('keep', f.nginx).reason).toMatch(/^proxy\.nginx_user: keep is not possible here: nginx's capability bounding set/);
  });

  it('neither CAP_NET_RAW nor CAP_NET_ADMIN: root, with a warning that transparent fails as any user', () => {
    const f = fixture('proxy-capbnd-no-net-raw');
    const d = decideNginxUser(undefined, { ...f.nginx, capBnd: '000001fffeffcfff' });
    expect(d.user).toBe('root');
    expect(d.warning).toMatch(/has neither CAP_NET_RAW nor CAP_NET_ADMIN: transparent proxy_bind fails as any user/);
  });

  it('nginx older than 1.13.8: root, and the reason names the version', () => {
    const d = decideNginxUser(undefined, olderNginx().nginx);
    expect(d).toMatchObject({ user: 'root', reason: expect.stringMatching(/^nginx 1\.12\.2 is older than 1\.13\.8/) });
  });

  it('nginx not running: the bounding set is unknown, root', () => {
    const f = fixture('proxy-nginx-www-data');
    expect(decideNginxUser(undefined, { ...f.nginx, running: false }).user).toBe('root');
  });
});

describe('nginx-user resource', () => {
  it('keep on Debian\'s nginx.conf: nothing to change, a note says why', () => {
    const c = ctx(inventory());
    expect(nginxUser.plan({}, fixture('proxy-nginx-www-data'), c)).toBeNull();
    expect(c.notes[0]).toMatch(/^nginx user: keep \(/);
  });

  it('keep where an earlier dsrctl run set `user root;`: puts back the user that run recorded, exactly', () => {
    const f = fixture('proxy-user-root-by-dsrctl');
    const backup = f.journalBackups!['/etc/nginx/nginx.conf']!;
    expect(backup.run).toMatch(/^\d{8}T\d{6}Z-/);
    expect(backup.content).toMatch(/^user www-data;$/m);
    expect(f.files['/etc/nginx/nginx.conf']!.content).toMatch(/^user root;$/m);
    const c = nginxUser.plan({}, f, ctx(inventory()))!;
    expect(c.summary).toBe(`/etc/nginx/nginx.conf: user root; -> user www-data; (put back: run ${backup.run} set \`user root;\`, which nginx 1.22.1 does not need)`);
    expect(c.diff).toContain('-user root;\n+user www-data;');
    const written = c.do.find((s) => 'write' in s) as { write: { content: string } };
    expect(written.write.content).toBe(backup.content); // nginx.conf as before dsrctl, byte for byte
    // undo: this run's own backup of the file as it found it (user root), byte for byte
    expect(c.do[0]).toEqual({ backup: { path: '/etc/nginx/nginx.conf', key: '001-%2Fetc%2Fnginx%2Fnginx.conf' } });
    expect(c.undo).toEqual([{ restore: { path: '/etc/nginx/nginx.conf', key: '001-%2Fetc%2Fnginx%2Fnginx.conf' } }]);
    expect(c.notify).toEqual(['nginx-reload']);
  });

  it('keep where `user root;` was there before dsrctl: left alone', () => {
    const f = fixture('proxy-user-root-by-dsrctl');
    delete f.journalBackups!['/etc/nginx/nginx.conf'];
    const c = ctx(inventory());
    expect(nginxUser.plan({}, f, c)).toBeNull();
    expect(c.notes[1]).toMatch(/says `user root;` and no dsrctl run still in place put it there: left as it is/);
  });

  it('keep where the earlier run found no `user` at all: the line dsrctl inserted goes', () => {
    const f = fixture('proxy-user-root-by-dsrctl');
    const b = f.journalBackups!['/etc/nginx/nginx.conf']!;
    b.content = b.content.replace('user www-data;\n', '');
    f.files['/etc/nginx/nginx.conf']!.content = `user root;\n${b.content}`;
    const c = nginxUser.plan({}, f, ctx(inventory()))!;
    expect((c.do.find((s) => 'write' in s) as { write: { content: string } }).write.content).toBe(b.content);
  });

  it('root, or a restricted bounding set: the guide\'s `user root;`', () => {
    const c = nginxUser.plan({}, fixture('proxy-capbnd-no-net-raw'), ctx(inventory()))!;
    expect(c.summary).toBe('/etc/nginx/nginx.conf: user www-data; -> user root;');
    expect(nginxUser.plan({}, fixture('proxy-nginx-www-data'), ctx(inventory('root')))!.summary).toBe('/etc/nginx/nginx.conf: user www-data; -> user root;');
  });
});
