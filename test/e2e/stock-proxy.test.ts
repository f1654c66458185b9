/**
 * A proxy as real hosts come (test/lab/lab.sh DSR_LAB_STOCK): Debian's default site left enabled,
 * or the user's own reverse proxy on :80 in sites-enabled. dsrctl must not call that "verified":
 * plan names the servers that would answer (file:line), apply refuses with exit 2 touching nothing;
 * with proxy.take_over_port the sites are disabled, clients reach the upstreams, and rollback puts
 * every file back byte for byte (the sites-enabled symlink with its target, owner and mtime).
 *
 *   npm run build && DSR_E2E_TAG=D DSR_E2E_OCTET_BASE=180 npx vitest run --project e2e test/e2e/stock-proxy.test.ts
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { labUp, labDown, onHost, run, inventoryReplacing, settledSnapshotAll, snapshotAll, waitUntil } from './harness.js';
import { show, output, expectCode, expectSnapshots, expectNoLocks, noStack } from './expect.js';
import { CLIENT_IP, PROXY_PUBLIC, hello } from './net.js';

/** Every symlink under /etc/nginx as the snapshot does not show it: target, owner and its own mtime. */
const links = () => onHost('proxy', "find /etc/nginx -type l -printf '%p -> %l %U:%G %T@\\n' | sort").stdout;
/** What the client gets from the proxy's port 80. */
const page = () => onHost('client', ['curl', '-sS', '--max-time', '3', `http://${PROXY_PUBLIC}/`]).stdout;

const VARIANTS = [
  {
    stock: 'default-site',
    link: '/etc/nginx/sites-enabled/default',
    target: '/etc/nginx/sites-available/default',
    conflict: '/etc/nginx/sites-enabled/default:22  listen 80 default_server;  (http, server_name _): default_server:',
    answer: /Welcome to nginx!/,
  },
  {
    stock: 'reverse-proxy',
    link: '/etc/nginx/sites-enabled/app',
    target: '/etc/nginx/sites-available/app',
    conflict: '/etc/nginx/sites-enabled/app:3  listen 80;  (http, server_name app.example.com): answers requests for Host app.example.com on *:80',
    answer: /502 Bad Gateway/,
  },
] as const;

describe.each(VARIANTS)('a stock proxy: $stock', (v) => {
  let before: Record<string, string>;
  let linksBefore: string;

  beforeAll(async () => {
    labUp({ DSR_LAB_STOCK: v.stock });
    before = await settledSnapshotAll();
    linksBefore = links();
    expect(linksBefore).toContain(`${v.link} -> ${v.target} 0:0 `);
    expect(page(), 'the stock proxy answers with its own site').toMatch(v.answer);
  });

  afterAll(() => {
    labDown();
  });

  it('plan names the conflicting server by file:line and what to do, exit 2', async () => {
    const r = await run(['plan']);
    expectCode(r, 2, 'plan on a stock proxy');
    noStack(r, 'plan');
    const text = output(r);
    expect(text, show(r)).toContain('proxy: port 80/tcp on 192.168.99.10 is already served by another nginx server, which would answer clients instead of the upstreams:');
    expect(text, show(r)).toContain(v.conflict);
    expect(text, show(r)).toContain(`disable ${v.link} (rm ${v.link}; it links to ${v.target})`);
    expect(text, show(r)).toContain('set proxy.take_over_port: true');
    console.log(`--- dsrctl plan on a stock proxy (${v.stock}), exit ${r.code} ---\n${r.stderr.split('\n').filter((l) => l.startsWith('proxy:') || l.startsWith('  ') || l.startsWith('Nothing')).join('\n')}`);
  });

  it('apply --yes refuses with exit 2 and touches nothing on any host', async () => {
    const r = await run(['apply', '--yes']);
    expectCode(r, 2, 'apply on a stock proxy');
    noStack(r, 'apply');
    expect(output(r), show(r)).toContain(v.conflict);
    expect(output(r), show(r)).not.toMatch(/verified/);
    expectSnapshots(before, 'after the refused apply');
    expect(links()).toBe(linksBefore);
    expectNoLocks('after the refused apply');
    expect(page()).toMatch(v.answer);
  });

  it('with proxy.take_over_port: true the plan shows the site going, apply works, clients reach every upstream; rollback restores every file', async () => {
    const inv = inventoryReplacing(/^ {2}masquerade: false$/m, '  masquerade: false\n  take_over_port: true');
    const p = await run(['plan'], inv);
    expectCode(p, 0, 'plan with take_over_port');
    expect(p.stdout, show(p)).toContain(`- take over port 80: disable ${v.link} (symlink to ${v.target})`);
    expect(p.stdout, show(p)).toContain(`-${v.link} -> ${v.target}`);

    const a = await run(['apply', '--yes'], inv);
    expectCode(a, 0, 'apply with take_over_port');
    expect(onHost('proxy', `test -e ${v.link} || echo gone`).stdout.trim()).toBe('gone');
    // nginx round-robins per worker: ask until every upstream has answered
    const seen = new Set<string>();
    const sources = new Set<string>();
    const all = await waitUntil(() => {
      const h = hello(4);
      h.names.forEach((n) => seen.add(n));
      h.sources.forEach((s) => sources.add(s));
      return seen.size === 4;
    }, 60_000, 200);
    expect(all, `upstreams that answered: ${[...seen].join(', ')}`).toBe(true);
    expect([...seen].sort()).toEqual(['dev1', 'dev2', 'dev3', 'dev4']);
    expect([...sources], 'every upstream saw the client itself').toEqual([CLIENT_IP]);
    expect(page()).toMatch(new RegExp(`You connected from ${CLIENT_IP.replace(/\./g, '\\.')}:`));

    const again = await run(['plan'], inv);
    expectCode(again, 0, 'plan after apply');
    expect(again.stdout, show(again)).toContain('Nothing to change');

    const r = await run(['rollback', '--yes'], inv);
    expectCode(r, 0, 'rollback');
    expectSnapshots(before, 'after rollback');
    expect(links(), 'the symlink is back: same target, owner and mtime').toBe(linksBefore);
    expectNoLocks('after rollback');
    expect(page()).toMatch(v.answer);
  });

  it('take_over_port does not edit a file of your own: a server in conf.d/mine.conf is refused, exit 2, nothing touched', async () => {
    const mine = '/etc/nginx/conf.d/mine.conf';
    onHost('proxy', `printf 'server {\\n    listen 80;\\n    server_name mine.example.com;\\n}\\n' > ${mine} && nginx -t -q`);
    try {
      const ref = snapshotAll();
      const inv = inventoryReplacing(/^ {2}masquerade: false$/m, '  masquerade: false\n  take_over_port: true');
      const r = await run(['apply', '--yes'], inv);
      expectCode(r, 2, 'apply with take_over_port and a server in a regular file');
      expect(output(r), show(r)).toContain(`${mine}:2  listen 80;  (http, server_name mine.example.com)`);
      expect(output(r), show(r)).toContain(`${mine}:2: ${mine} is a regular file, not a symlink dsrctl can remove and put back: dsrctl does not edit your files`);
      expectSnapshots(ref, 'after the refused take-over');
      expect(links()).toBe(linksBefore);
      expectNoLocks('after the refused take-over');
    } finally {
      onHost('proxy', `rm -f ${mine}`);
    }
    expectSnapshots(before, 'mine.conf removed');
  });
});
