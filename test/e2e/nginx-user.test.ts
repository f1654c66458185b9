/**
 * End to end: nginx workers that never run as root (issue 12, part 2). With proxy.nginx_user left
 * to its default (keep, since the lab's Debian nginx 1.22 keeps CAP_NET_RAW for `transparent`),
 * every mode passes the guide's checks with the workers running as www-data (uid 33) holding
 * CAP_NET_RAW alone, nginx.conf is not touched, and rollback restores every host byte for byte.
 * With CAP_NET_RAW cut from nginx's bounding set, doctor explains it and plan falls back to root.
 *
 *   npm run build && npx vitest run --project e2e test/e2e/nginx-user.test.ts
 *
 * One describe per mode and protocol, each with its own lab; its tests run in order.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { LAB_INVENTORY, labUp, labDown, onHost, run, dsrctl, settledSnapshotAll, curlSources } from './harness.js';
import { show, expectCode, expectJson, hostJson, snapshotDiff } from './expect.js';
import { digs, hello, CLIENT_IP, UPSTREAM_IPS } from './net.js';

interface Proc {
  pid: number;
  uid: string;
  capEff: string;
  line: string;
}

/** nginx's workers on the proxy, from /proc/<pid>/status (children of the master in /run/nginx.pid). */
function workers(): Proc[] {
  const r = onHost(
    'proxy',
    `m=$(cat /run/nginx.pid); for s in $(grep -l "^PPid:[[:space:]]*$m$" /proc/[0-9]*/status); do d=\${s%/status}; case "$(tr '\\0' ' ' < $d/cmdline)" in *"worker process"*) printf '%s|%s|%s\\n' "\${d#/proc/}" "$(grep '^Uid:' $s)" "$(grep '^CapEff:' $s)";; esac; done`,
  );
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [pid, uid, cap] = l.split('|');
      return { pid: Number(pid), uid: uid!.replace(/^Uid:\s*/, '').split(/\s+/).join(' '), capEff: cap!.replace(/^CapEff:\s*/, ''), line: `${uid}\n${cap}` };
    });
}

const show2 = (ws: Proc[]) => ws.map((w) => `worker ${w.pid}:\n${w.line}`).join('\n');

/** Every worker runs as www-data (all four uids 33) and holds CAP_NET_RAW alone. */
function expectUnprivilegedWorkers(what: string): Proc[] {
  const ws = workers();
  expect(ws.length, `${what}: nginx has workers`).toBeGreaterThan(0);
  for (const w of ws) {
    expect(w.uid, `${what}: ${show2(ws)}`).toBe('33 33 33 33');
    expect(w.capEff, `${what}: CAP_NET_RAW (bit 13) and nothing else\n${show2(ws)}`).toBe('0000000000002000');
  }
  return ws;
}

/** Restart the proxy's nginx (optionally under setpriv), waiting for the old master to go. */
function restartNginx(prefix = ''): void {
  const r = onHost(
    'proxy',
    `old=$(cat /run/nginx.pid); nginx -s quit; i=0; while kill -0 "$old" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; ${prefix} nginx; i=0; while ! [ -s /run/nginx.pid ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; sleep 0.5`,
  );
  expect(r.code, `restart nginx on the proxy: ${r.stdout}${r.stderr}`).toBe(0);
}

interface Mode {
  name: string;
  env: NodeJS.ProcessEnv;
  /** the guide's end-to-end check for this service, from the client */
  check: () => void;
}

const httpCheck = () => expect(curlSources(), 'every upstream sees the client (the guide\'s test)').toEqual([CLIENT_IP, CLIENT_IP, CLIENT_IP, CLIENT_IP]);
const dnsCheck = () => {
  const d = digs(8);
  expect(d.answers.filter(Boolean).length, `every query answered through the proxy\n${d.raw}`).toBe(8);
  expect(new Set(d.answers), d.raw).toEqual(new Set(UPSTREAM_IPS));
};

const MODES: Mode[] = [
  { name: 'ip-transparency http', env: {}, check: httpCheck },
  {
    name: 'ip-transparency tcp',
    env: { DSR_LAB_MODE: 'ip-transparency', DSR_LAB_PROTOCOL: 'tcp' },
    check: () => {
      const h = hello(4, 'http://192.168.99.10:8081/');
      expect(h.sources, `the upstreams see the client through the stream server\n${h.raw}`).toEqual([CLIENT_IP, CLIENT_IP, CLIENT_IP, CLIENT_IP]);
    },
  },
  { name: 'ip-transparency udp', env: { DSR_LAB_MODE: 'ip-transparency', DSR_LAB_PROTOCOL: 'udp' }, check: dnsCheck },
  { name: 'dsr-router-nat udp', env: { DSR_LAB_MODE: 'dsr-router-nat', DSR_LAB_PROTOCOL: 'udp' }, check: dnsCheck },
  { name: 'dsr-origin-nat udp', env: { DSR_LAB_MODE: 'dsr-origin-nat', DSR_LAB_PROTOCOL: 'udp' }, check: dnsCheck },
];

const evidence: string[] = [];
afterAll(() => {
  // the worker lines before and after, for the report
  console.log(evidence.join('\n'));
});

for (const mode of MODES) {
  describe(`${mode.name}: nginx_user keep (the default here)`, () => {
    let pristine: Record<string, string>;
    beforeAll(async () => {
      labUp(mode.env);
      pristine = await settledSnapshotAll();
    });
    afterAll(() => labDown());

    it('apply leaves `user www-data;`, says why; the guide\'s checks pass with workers as uid 33 holding CAP_NET_RAW alone', async () => {
      const before = workers();
      const r = await run(['apply', '--yes', '--json']);
      expectCode(r, 0, `apply ${mode.name}`);
      const proxy = hostJson(expectJson(r, 'apply'), 'proxy');
      expect(proxy.changes.filter((c: any) => c.kind === 'nginx-user'), show(r, 'nginx.conf keeps its user')).toEqual([]);
      expect(proxy.notes.join('\n'), show(r)).toMatch(/nginx user: keep \(nginx 1\.22\.1 >= 1\.13\.8 and CAP_NET_RAW in its capability bounding set \(CapBnd [0-9a-f]{16}\)/);
      expect(onHost('proxy', "grep '^user' /etc/nginx/nginx.conf").stdout.trim()).toBe('user www-data;');
      mode.check();
      const after = expectUnprivilegedWorkers(mode.name);
      evidence.push(`${mode.name}: before apply\n${show2(before.slice(0, 1))}\n${mode.name}: after apply (keep)\n${show2(after.slice(0, 1))}`);
    });

    if (mode.name === 'ip-transparency http') {
      it('CAP_NET_RAW cut from nginx\'s bounding set: the workers die; doctor explains it; plan falls back to root and says so', async () => {
        restartNginx('setpriv --bounding-set -net_raw');
        try {
          const d = await dsrctl(['doctor', '-i', LAB_INVENTORY, '--json']);
          const j = expectJson(d, 'doctor --json');
          const f = (j.hosts as { findings: any[] }[]).flatMap((h) => h.findings).find((x) => x.host === 'proxy' && x.id === 'nginx-workers');
          expect(f, show(d)).toBeDefined();
          expect(f.severity).toBe('error');
          expect(f.title).toMatch(/^nginx has no worker processes: unprivileged workers exit at start because CAP_NET_RAW was cut from nginx's capability bounding set \(CapBnd 000001fffeffdfff\)/);
          expect(f.evidence.join('\n')).toMatch(/capset\(\) failed \(1: Operation not permitted\)/);
          expect(f.fix).toMatch(/^give nginx CAP_NET_RAW back/);
          evidence.push(`doctor with CapBnd cut: ${f.title}\n  ${f.evidence.join('\n  ')}\n  fix: ${f.fix}`);

          const p = await run(['plan', '--json']);
          expectCode(p, 0, 'plan with the bounding set cut');
          const proxy = hostJson(expectJson(p, 'plan'), 'proxy');
          expect(proxy.changes.map((c: any) => c.summary), show(p)).toEqual(['/etc/nginx/nginx.conf: user www-data; -> user root;']);
          expect(proxy.notes.join('\n'), show(p)).toMatch(/nginx user: root \(nginx's capability bounding set \(CapBnd 000001fffeffdfff\) lacks CAP_NET_RAW, .*falling back to the guide's `user root;`\)/);
        } finally {
          restartNginx();
        }
        expectUnprivilegedWorkers('after nginx is started again with its full bounding set');
        mode.check();
      });
    }

    it('rollback restores every host byte for byte', async () => {
      const r = await run(['rollback', '--yes']);
      expectCode(r, 0, 'rollback');
      expect(snapshotDiff(pristine), 'after rollback').toBe('');
    });
  });
}
