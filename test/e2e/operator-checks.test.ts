/**
 * What a new user is told on a lab that dsrctl never applied, whose proxy came with Debian's
 * default site on :80 (test/lab/lab.sh DSR_LAB_STOCK=default-site): verify says the mode is not
 * applied; plan refuses upstream addresses the proxy cannot reach on its private interface (exit 2,
 * nothing touched); doctor names the server already on the service port, with file:line and the
 * fix; `lab status` shows addresses and `lab down` says what it removed.
 *
 *   npm run build && DSR_E2E_TAG=F DSR_E2E_OCTET_BASE=30 npx vitest run --project e2e test/e2e/operator-checks.test.ts
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { LAB_DIR, LAB_INVENTORY, dsrctl, inventoryReplacing, lab, labDown, labUp, run, settledSnapshotAll } from './harness.js';
import { show, output, expectCode, expectSnapshots, expectJson, noStack } from './expect.js';

describe('a stock proxy never applied (DSR_LAB_STOCK=default-site)', () => {
  let before: Record<string, string>;

  beforeAll(async () => {
    labUp({ DSR_LAB_STOCK: 'default-site' });
    before = await settledSnapshotAll();
  });

  afterAll(() => {
    labDown();
  });

  it('verify says the mode is not applied, where, and that dsrctl never applied anything there', async () => {
    const r = await run(['verify']);
    expectCode(r, 1, 'verify on a lab never applied');
    expect(r.stdout, show(r)).toContain('Verification failed:');
    expect(r.stdout, show(r)).toMatch(/The ip-transparency mode is not applied on (proxy \(\d+ changes? pending\), )?dev1 \(1 change pending\), dev2 \(1 change pending\), dev3 \(1 change pending\), dev4 \(1 change pending\): checks of a mode that is not in place fail\./);
    expect(r.stdout, show(r)).toMatch(/dsrctl has never applied anything on (any of these hosts|dev1, dev2, dev3, dev4) \(no \/var\/lib\/dsrctl\/last-run\)\./);
    expect(r.stdout, show(r)).toContain(`See the changes with dsrctl plan -i ${LAB_INVENTORY}`);
  });

  it('plan refuses an upstream address outside the proxy\'s private network: exit 2, naming it and the network, nothing touched', async () => {
    const inv = inventoryReplacing(/ip: 172\.16\.0\.12\b/, 'ip: 10.0.0.12');
    const r = await run(['plan'], inv);
    expectCode(r, 2, 'plan with dev2 at 10.0.0.12');
    noStack(r, 'plan');
    expect(output(r), show(r)).toContain("proxy: upstream address 10.0.0.12 (dev2) is not on the proxy's private interface priv0: its connected network is 172.16.0.0/24.");
    const j = expectJson(await run(['plan', '--json'], inv), 'plan --json');
    expect(j.exitCode).toBe(2);
    expect(JSON.stringify(j.errors)).toContain('10.0.0.12 (dev2)');
    expectSnapshots(before, 'after plan refused the upstream address');
  });

  it('doctor names the nginx server already on the service port, by file:line, with the fix', async () => {
    const r = await dsrctl(['doctor', '-i', LAB_INVENTORY]);
    const text = output(r);
    expect(text, show(r)).toContain('ERROR port 80/tcp on 192.168.99.10 is already served by another nginx server, which would answer clients instead of the upstreams');
    expect(text, show(r)).toContain('/etc/nginx/sites-enabled/default:22  listen 80 default_server;  (http, server_name _): default_server:');
    expect(text, show(r)).toContain('fix: do one of: disable /etc/nginx/sites-enabled/default (rm /etc/nginx/sites-enabled/default; it links to /etc/nginx/sites-available/default)');
    expect(text, show(r)).toContain('set proxy.take_over_port: true');
    expectSnapshots(before, 'after doctor');
  });

  it('lab status shows each host\'s addresses next to its processes', () => {
    const r = lab(['status']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ +addresses: pub0 192\.168\.99\.10\/24, priv0 172\.16\.0\.1\/24, mgmt0 10\.211\.\d+\.10\/24; ssh root@10\.211\.\d+\.10$/m);
    expect(r.stdout).toMatch(/^ +addresses: priv0 172\.16\.0\.12\/24, mgmt0 10\.211\.\d+\.12\/24; ssh root@10\.211\.\d+\.12$/m);
  });

  it('lab down says what it removed, and that there was nothing the second time', () => {
    const r = lab(['down']);
    expect(r.stdout).toMatch(/^lab down \(prefix \S+\): removed$/m);
    expect(r.stdout).toMatch(/^ {2}network namespaces \S+-client \S+-proxy \S+-router \S+-dev1 \S+-dev2 \S+-dev3 \S+-dev4 \S+-sw$/m);
    expect(r.stdout).toContain(`  ${LAB_DIR} (key, known_hosts, inventory, host files)`);
    expect(lab(['down']).stdout).toMatch(/nothing to remove, no lab was up/);
  });
});
