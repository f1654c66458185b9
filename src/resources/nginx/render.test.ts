import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UserError } from '../../util/errors.js';
import { parseNginx } from './parse.js';
import { renderManagedConfig, type RenderOptions } from './render.js';
import { renderServers } from '../../health/script.js';

const upstreams = [
  { name: 'dev1', ip: '172.16.0.11' },
  { name: 'dev2', ip: '172.16.0.12' },
  { name: 'dev3', ip: '172.16.0.13' },
  { name: 'dev4', ip: '172.16.0.14' },
];

const http: RenderOptions = {
  mode: 'ip-transparency',
  protocol: 'http',
  listenPort: 80,
  upstreamPort: 8080,
  upstreams,
  proxyBind: '$remote_addr transparent',
};
const tcp: RenderOptions = { ...http, protocol: 'tcp', listenPort: 5000, upstreamPort: 5001, extra: [] };
const udpTransparent: RenderOptions = {
  ...http,
  protocol: 'udp',
  listenPort: 53,
  upstreamPort: 53,
  extra: ['proxy_responses 1;', 'proxy_timeout 1s;'],
};
const udpDsr: RenderOptions = {
  ...udpTransparent,
  mode: 'dsr-origin-nat',
  proxyBind: '$remote_addr:$remote_port transparent',
  extra: ['proxy_responses 0;'],
};

describe('renderManagedConfig', () => {
  it('renders the guide\'s Method 1 http config', () => {
    expect(renderManagedConfig(http)).toBe(
      `# Managed by dsrctl (mode ip-transparency, protocol http). Changes here are overwritten by dsrctl apply and undone by dsrctl rollback.
# Context: http.

upstream dsrctl_upstreams {
    server 172.16.0.11:8080; # dev1
    server 172.16.0.12:8080; # dev2
    server 172.16.0.13:8080; # dev3
    server 172.16.0.14:8080; # dev4
}

server {
    listen 80;

    location / {
        proxy_bind $remote_addr transparent;
        proxy_pass http://dsrctl_upstreams;
    }
}
`,
    );
  });

  it('renders the guide\'s DSR udp config', () => {
    expect(renderManagedConfig(udpDsr)).toBe(
      `# Managed by dsrctl (mode dsr-origin-nat, protocol udp). Changes here are overwritten by dsrctl apply and undone by dsrctl rollback.
# Context: stream.

upstream dsrctl_upstreams {
    server 172.16.0.11:53; # dev1
    server 172.16.0.12:53; # dev2
    server 172.16.0.13:53; # dev3
    server 172.16.0.14:53; # dev4
}

server {
    listen 53 udp;

    proxy_bind $remote_addr:$remote_port transparent;
    proxy_responses 0;
    proxy_pass dsrctl_upstreams;
}
`,
    );
  });

  it('renders tcp without udp and with extras in order', () => {
    const out = renderManagedConfig({ ...tcp, extra: ['proxy_timeout   10s', 'proxy_connect_timeout 2s;'] });
    expect(out).toContain('    listen 5000;\n\n    proxy_bind $remote_addr transparent;\n    proxy_timeout 10s;\n    proxy_connect_timeout 2s;\n    proxy_pass dsrctl_upstreams;\n}\n');
    expect(out).toContain('server 172.16.0.14:5001; # dev4');
  });

  it('is deterministic, parses back, and ends with exactly one newline', () => {
    for (const o of [http, tcp, udpTransparent, udpDsr]) {
      const a = renderManagedConfig(o);
      expect(renderManagedConfig(structuredClone(o))).toBe(a);
      expect(a.endsWith('}\n')).toBe(true);
      expect(a.endsWith('\n\n')).toBe(false);
      const [up, server] = parseNginx(a);
      expect(up!.name).toBe('upstream');
      expect(up!.block!.map((s) => s.args[0])).toEqual(upstreams.map((u) => `${u.ip}:${o.upstreamPort}`));
      expect(server!.name).toBe('server');
    }
  });

  it.each<[string, Partial<RenderOptions>]>([
    ['bad ip', { upstreams: [{ name: 'dev1', ip: '172.16.0.256' }] }],
    ['cidr', { upstreams: [{ name: 'dev1', ip: '172.16.0.0/24' }] }],
    ['ip with injection', { upstreams: [{ name: 'dev1', ip: '1.2.3.4; include /etc/shadow' }] }],
    ['name with newline', { upstreams: [{ name: 'dev1\nuser root;', ip: '172.16.0.11' }] }],
    ['no upstreams', { upstreams: [] }],
    ['port 0', { listenPort: 0 }],
    ['port 65536', { upstreamPort: 65536 }],
    ['fractional port', { listenPort: 80.5 }],
    ['string port', { listenPort: '80' as unknown as number }],
    ['proxy_bind injection', { proxyBind: '$remote_addr transparent; include /etc/shadow' }],
    ['proxy_bind other var', { proxyBind: '$http_x transparent' }],
    ['extra with block', { extra: ['if ($x) { return 403; }'] }],
    ['extra with two statements', { extra: ['proxy_timeout 1s; include /x;'] }],
    ['extra include', { extra: ['include /etc/shadow;'] }],
    ['extra proxy_pass', { extra: ['proxy_pass http://evil;'] }],
    ['extra newline', { extra: ['proxy_timeout 1s;\nuser root;'] }],
    ['extra quote', { extra: ['proxy_timeout "1s";'] }],
    ['mode newline', { mode: 'x\nuser root;' }],
    ['protocol', { protocol: 'sctp' as 'tcp' }],
  ])('rejects %s', (_label, patch) => {
    expect(() => renderManagedConfig({ ...udpDsr, ...patch })).toThrow(UserError);
  });
});

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

/** A minimal full nginx.conf that includes the rendered file in its context, checked by the real `nginx -t`. */
function nginxTest(rendered: string, context: 'http' | 'stream'): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dsrctl-nginx-render-'));
  tmpDirs.push(dir);
  writeFileSync(join(dir, 'dsrctl.conf'), rendered);
  writeFileSync(
    join(dir, 'nginx.conf'),
    [
      'load_module /usr/lib/nginx/modules/ngx_stream_module.so;',
      'user root;',
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log;`,
      'events {}',
      context === 'http'
        ? `http {\n    access_log off;\n    include ${dir}/dsrctl.conf;\n}`
        : `stream {\n    include ${dir}/dsrctl.conf;\n}`,
      '',
    ].join('\n'),
  );
  const r = spawnSync('/usr/sbin/nginx', ['-t', '-p', dir, '-c', join(dir, 'nginx.conf')], { encoding: 'utf8' });
  if (r.error) throw r.error; // nginx missing: fail, never skip
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('nginx -t accepts every rendered protocol', () => {
  it.each([
    ['http', http, 'http'],
    ['tcp', tcp, 'stream'],
    ['udp (ip transparency)', udpTransparent, 'stream'],
    ['udp (dsr)', udpDsr, 'stream'],
  ] as const)('%s', (_label, opts, context) => {
    const r = nginxTest(renderManagedConfig(opts), context);
    expect(r.output).toContain('test is successful');
    expect(r.status).toBe(0);
  });

  it.each([
    ['udp (dsr)', udpDsr, 'stream'],
    ['http', http, 'http'],
  ] as const)('%s with the health checker\'s server list included, one upstream marked down', (_label, opts, context) => {
    const dir = mkdtempSync(join(tmpdir(), 'dsrctl-health-servers-'));
    tmpDirs.push(dir);
    const servers = join(dir, 'dsrctl-health.servers');
    const port = opts.upstreamPort;
    writeFileSync(servers, renderServers(upstreams.map((u, i) => ({ name: u.name, addr: `${u.ip}:${port}`, down: i === 1 }))));
    const out = renderManagedConfig({ ...opts, serversInclude: servers });
    expect(out).toContain(`upstream dsrctl_upstreams {\n    # the health checker's list (dev1 172.16.0.11:${port}, dev2 172.16.0.12:${port}, dev3 172.16.0.13:${port}, dev4 172.16.0.14:${port}): it marks a failing upstream down there\n    include ${servers};\n}\n`);
    const r = nginxTest(out, context);
    expect(r.output).toContain('test is successful');
    expect(r.status).toBe(0);
  });

  it('and rejects a file in the wrong context (the check is real)', () => {
    const r = nginxTest(renderManagedConfig(udpDsr), 'http');
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/\[emerg\]/);
  });
});
