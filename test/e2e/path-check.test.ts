/**
 * End to end: without a probe host, Method 1's verification still proves the path. The proxy
 * requests a unique path at its own public address and the answer must be one the upstreams give
 * for the same request; nginx's default page answering instead fails it.
 *
 *   npm run build && npx vitest run --project e2e test/e2e/path-check.test.ts
 *
 * The tests run in order and build on each other.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { labUp, labDown, onHost, run, settledSnapshotAll, inventoryVariant, waitUntil } from './harness.js';
import { show, expectCode, expectJson, expectSnapshots, output } from './expect.js';

const WELCOME = '/etc/nginx/sites-enabled/welcome';
/** A stock nginx's default site as it wins the port: default_server, answering itself. */
const WELCOME_SITE = 'server {\n    listen 80 default_server;\n    return 200 "Welcome to nginx!\\n";\n}\n';

const clientSees = () => onHost('client', ['curl', '-sS', '--max-time', '3', 'http://192.168.99.10/']).stdout;

describe('ip-transparency (http) without verify.probe: the path check (in order)', () => {
  let before: Record<string, string>;
  let inventory: string;

  beforeAll(async () => {
    labUp({ DSR_LAB_MODE: 'ip-transparency', DSR_LAB_PROTOCOL: 'http' });
    before = await settledSnapshotAll();
    inventory = inventoryVariant((y) => {
      const out = y.replace(/\n {2}probe:\n( {4}.*\n)+/, '\n');
      if (out === y || /probe/.test(out)) throw new Error(`no probe to remove from the lab inventory:\n${y}`);
      return out;
    });
  });
  afterAll(() => labDown());

  it('1. plan says how the path is proven without a probe host', async () => {
    const r = await run(['plan'], inventory);
    expectCode(r, 0, 'plan');
    expect(r.stdout, show(r)).toContain(
      "Verification: end to end: an upstream answers the proxy's own public address 192.168.99.10:80 (GET /.well-known/dsrctl-path-check/<nonce> must get what the upstreams answer directly)",
    );
  });

  it('2. apply passes when the upstreams answer the service port', async () => {
    const r = await run(['apply', '--yes'], inventory);
    expectCode(r, 0, 'apply');
    expect(r.stdout, show(r)).toMatch(
      /ok {3}an upstream answers the proxy's own public address 192\.168\.99\.10:80 .*: 192\.168\.99\.10:80 answered GET \/\.well-known\/dsrctl-path-check\/[0-9a-f]{16} like upstream dev\d does: 200 "Hello from dev\d\. You connected from 192\.168\.99\.10:/,
    );
  });

  it("3. nginx's default page answering the service port fails verify (exit 1), naming what answered", async () => {
    const w = onHost('proxy', `printf '%s' '${WELCOME_SITE}' > ${WELCOME} && nginx -t 2>/dev/null && nginx -s reload`);
    expect(w.code, w.stderr).toBe(0);
    expect(await waitUntil(() => clientSees().startsWith('Welcome to nginx!'), 20_000), `the default site must answer the client: ${clientSees()}`).toBe(true);

    const v = await run(['verify'], inventory);
    expectCode(v, 1, 'verify with the default page answering');
    const line = output(v)
      .split('\n')
      .find((l) => l.includes('FAIL an upstream answers'));
    expect(line, show(v)).toMatch(
      /FAIL an upstream answers the proxy's own public address 192\.168\.99\.10:80 .*: 192\.168\.99\.10:80 answered GET \/\.well-known\/dsrctl-path-check\/[0-9a-f]{16} with 200 "Welcome to nginx!", which no upstream gives \(dev1 answers 200 "Hello from dev1\..*\): something other than the upstreams answers on the service port/,
    );
    console.log(`the check line that caught the default page:\n${line}`);
    // every other check passes: only the path check knows
    const j = expectJson(await run(['verify', '--json'], inventory), 'verify --json');
    expect(j.checks.filter((c: any) => !c.ok).map((c: any) => c.id)).toEqual(['path']);
  });

  it('4. with the default site gone, verify passes again; rollback restores every host byte for byte', async () => {
    const w = onHost('proxy', `rm ${WELCOME} && nginx -s reload`);
    expect(w.code, w.stderr).toBe(0);
    expect(await waitUntil(() => clientSees().startsWith('Hello from dev'), 20_000), clientSees()).toBe(true);
    const v = await run(['verify'], inventory);
    expectCode(v, 0, 'verify with the upstreams answering');
    const rb = await run(['rollback', '--yes'], inventory);
    expectCode(rb, 0, 'rollback');
    expectSnapshots(before, 'after rollback');
  });
});
