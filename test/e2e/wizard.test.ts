/**
 * `dsrctl wizard` in a real terminal: the built CLI runs in a tmux pane (its own tmux server on a
 * private socket), the test reads the screen and types like a person, then checks what was
 * written and lets `dsrctl apply --yes` use the inventory on the lab.
 *
 *   npm run build && DSR_E2E_PREFIX=wiz DSR_E2E_OCTET=7 npx vitest run --project e2e test/e2e/wizard.test.ts
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CLI, LAB_INVENTORY, dsrctl, labDown, labUp, curlSources, sleep } from './harness.js';
import { Term, HAVE_TMUX, shq } from './term.js';
import { loadInventory } from '../../src/inventory/load.js';

const TRANSCRIPT = join(tmpdir(), 'dsrctl-wizard-transcript.txt');

interface LabFacts {
  key: string;
  knownHosts: string;
  proxy: string;
  ups: string[];
  probe: string;
}

let lab: LabFacts;
const terms: Term[] = [];
const dirs: string[] = [];

function workdir(): string {
  const d = mkdtempSync(join(tmpdir(), 'dsrctl-wizard-e2e-'));
  mkdirSync(join(d, 'home'));
  dirs.push(d);
  return d;
}

function wizard(cwd: string, args = ''): Term {
  const t = new Term(cwd, `node ${shq(CLI)} wizard ${args}`, { HOME: join(cwd, 'home'), NO_COLOR: '1' });
  terms.push(t);
  return t;
}

describe.skipIf(!HAVE_TMUX)('dsrctl wizard in a terminal (tmux)', () => {
  beforeAll(() => {
    labUp();
    const inv = parse(readFileSync(LAB_INVENTORY, 'utf8'));
    lab = {
      key: inv.ssh.private_key,
      knownHosts: inv.ssh.known_hosts,
      proxy: inv.proxy.ssh_host,
      ups: inv.upstreams.map((u: { ssh_host: string }) => u.ssh_host),
      probe: inv.verify.probe.ssh_host,
    };
  });
  afterEach(() => {
    for (const t of terms.splice(0)) t.close();
  });
  afterAll(() => {
    labDown();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a full run reads the hosts, writes an inventory, plans it; dsrctl apply --yes then applies it on the lab', async () => {
    const cwd = workdir();
    const t = wizard(cwd);
    const range = (ips: string[]) => `${ips[0]}-${ips.at(-1)!.split('.')[3]}`;

    await t.waitFor(/dsr-origin-nat\s+UDP only\s+direct \(NAT on upstream\)\s+active required\s+best/);
    await t.choose(/Which method/, 'ip-transparency');
    await t.choose(/Service protocol/, 'http');
    await t.answer(/Port clients connect to/, '');
    await t.refused(/Port the upstreams listen on/, 'abc', /^> service\.upstream_port: must be a port number \(got "abc"\)/);
    await t.answer(/Port the upstreams listen on/, '8080');
    await t.answer(/Networks the clients come from/, '192.168.99.0/24');
    await t.refused(/Proxy's SSH address/, 'bad host!', /^> proxy\.ssh_host: must be an IP address or a DNS name/);
    await t.answer(/Proxy's SSH address/, lab.proxy);
    await t.answer(/SSH user/, '');
    await t.answer(/SSH port/, '');
    await t.choose(/How does dsrctl log in/, 'a private key file');
    await t.waitFor(/The built-in lab \(dsrctl lab up\) keeps its key in \/var\/lib\/dsrctl-lab\/<prefix>\/id_ed25519 and its known_hosts in \/var\/lib\/dsrctl-lab\/<prefix>\/known_hosts/);
    await t.refused(/Private key file/, `${lab.key}.pub`, new RegExp(`^> ${lab.key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.pub holds a public key; give the private key`));
    await t.answer(/Private key file/, lab.key);
    await t.refused(/known_hosts file/, '/nonexistent/known_hosts', /^> \/nonexistent\/known_hosts does not exist: give the file that holds the hosts' keys/);
    await t.answer(/known_hosts file/, lab.knownHosts);
    await t.answer(/Connect to root@.* now and read its interfaces/, 'y');
    await t.waitFor(/ {4}pub0 +UP +192\.168\.99\.10\/24/);
    await t.choose(/Public interface/, 'pub0');
    await t.choose(/Proxy's public address/, '192.168.99.10');
    await t.choose(/Private interface/, 'priv0');
    await t.choose(/Proxy's private address/, '172.16.0.1');
    // the lab's proxy serves :80 from conf.d/app.conf: named, and offered as the file dsrctl manages
    await t.waitFor(/^ {2}\/etc\/nginx\/conf\.d\/app\.conf:\d+ {2}listen 80;/m);
    await t.choose(/Port 80 is taken on the proxy/, 'let dsrctl manage /etc/nginx/conf.d/app.conf');
    await t.answer(/nginx config file dsrctl owns/, ''); // its default is now the file offered
    await t.choose(/Enter the upstreams/, 'as a range');
    await t.answer(/Read each upstream's interfaces/, 'y');
    await t.refused(/Upstream addresses/, '172.16.0.1-14', /^> upstreams\[0\]\.ip: 172\.16\.0\.1 is the proxy's own address/);
    await t.refused(/Upstream addresses/, '10.0.0.11-14', /^> 10\.0\.0\.11 is not on the proxy's private network: priv0 has 172\.16\.0\.0\/24/);
    await t.answer(/Upstream addresses/, '172.16.0.11-14');
    await t.answer(/Name prefix/, '');
    await t.choose(/Where does SSH reach them/, 'at other addresses');
    await t.answer(/Their SSH addresses/, range(lab.ups));
    await t.waitFor(/dev4: dev4, kernel/);
    await t.choose(/Their interface on the private network/, 'priv0');
    await t.answer(/Masquerade/, 'n');
    await t.answer(/Addresses every upstream must reach/, '');
    await t.answer(/Is there a host that plays the remote client/, 'y');
    await t.answer(/Remote client's SSH address/, lab.probe);
    await t.answer(/own address, as the upstreams must see it/, '192.168.99.1');
    await t.waitFor(/^ {4}# dsrctl inventory, written by `dsrctl wizard`/m);
    await t.answer(/Save it as\?.*inventory\/proxy-ip-transparency\.yaml/, '');
    await t.waitFor(/Wrote inventory\/proxy-ip-transparency\.yaml\./);
    await t.answer(/Run dsrctl plan/, 'y');
    await t.waitFor(/Plan: \d+ changes on 5 host\(s\)\./, 60_000);
    await t.answer(/Run dsrctl apply/, 'n');
    await t.waitFor(/\[exited 0\]/);
    writeFileSync(TRANSCRIPT, t.screen() + '\n');

    const file = join(cwd, 'inventory', 'proxy-ip-transparency.yaml');
    expect(readdirSync(join(cwd, 'inventory'))).toEqual(['proxy-ip-transparency.yaml']);
    const written = loadInventory(file).inventory;
    const labInv = loadInventory(LAB_INVENTORY).inventory;
    // the same hosts, addresses and SSH settings as the lab's own inventory
    expect(written.proxy).toEqual(labInv.proxy);
    expect(written.upstreams).toEqual(labInv.upstreams);
    expect(written.ssh).toEqual(labInv.ssh);
    expect(written.verify.probe).toEqual(labInv.verify.probe);

    const apply = await dsrctl(['apply', '-i', file, '--yes']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(/Applied run \S+ and verified it\./);
    expect(curlSources()).toEqual(['192.168.99.1', '192.168.99.1', '192.168.99.1', '192.168.99.1']);
    const rollback = await dsrctl(['rollback', '-i', file, '--yes']);
    expect(rollback.code, rollback.stdout + rollback.stderr).toBe(0);
  });

  it('Ctrl-C at a question exits 130 and leaves nothing behind', async () => {
    const cwd = workdir();
    const t = wizard(cwd);
    await t.choose(/Which method/, 'dsr-router-nat');
    // DSR: only udp can be chosen; tcp and http are shown with the reason
    await t.question(/Service protocol/);
    expect(t.screen()).toMatch(/\n- http \(DSR: UDP only\)\n- tcp \(DSR: UDP only\)\n❯ udp\n/);
    await t.choose(/Service protocol/, 'udp');
    await t.question(/Port clients connect to/);
    t.keys('C-c');
    await t.waitFor(/\[exited 130\]/);
    expect(t.screen()).toContain('Cancelled: nothing was written.');
    expect(readdirSync(cwd)).toEqual(['home']);
    expect(readdirSync(join(cwd, 'home'))).toEqual([]);
  });

  it('shows an unknown host key without adding it, and never overwrites an existing file without a yes', async () => {
    const cwd = workdir();
    mkdirSync(join(cwd, 'inventory'));
    const precious = join(cwd, 'inventory', 'dns.yaml');
    writeFileSync(precious, '# hand-written\n');
    const emptyKh = join(cwd, 'known_hosts');
    writeFileSync(emptyKh, '');
    const fingerprint = spawnSync('sh', ['-c', `ssh-keygen -lf ${shq(lab.knownHosts)} -F ${shq(lab.proxy)} | awk '/SHA256/ {print $3}'`], { encoding: 'utf8' }).stdout.trim();
    expect(fingerprint).toMatch(/^SHA256:/);

    const t = wizard(cwd, '-o inventory/dns.yaml');
    await t.choose(/Which method/, 'dsr-origin-nat');
    await t.choose(/Service protocol/, 'udp');
    await t.answer(/Port clients connect to/, '');
    await t.answer(/Port the upstreams listen on/, '');
    await t.answer(/Networks the clients come from/, '');
    await t.answer(/Proxy's SSH address/, lab.proxy);
    await t.answer(/SSH user/, '');
    await t.answer(/SSH port/, '');
    await t.choose(/How does dsrctl log in/, 'a private key file');
    await t.answer(/Private key file/, lab.key);
    await t.answer(/known_hosts file/, emptyKh);
    await t.answer(/Connect to root@.* now/, '');
    await t.waitFor(new RegExp(`host key is not in ${emptyKh.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\. It presents ${fingerprint.replace(/[+/]/g, '\\$&')} \\(ssh-ed25519\\)`));
    await t.waitFor(/ssh-keyscan -p 22 -t ed25519 /);
    await t.waitFor(new RegExp(`The wizard can record it in ${emptyKh.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: say yes only if`));
    await t.answer(new RegExp(`Record ${lab.proxy.replace(/\./g, '\\.')}'s host key ${fingerprint.replace(/[+/]/g, '\\$&')}\\?`), 'n');
    await t.choose(/proxy: what now/, 'go on without facts');
    expect(readFileSync(emptyKh, 'utf8')).toBe('');
    await t.answer(/Public interface/, 'pub0');
    await t.answer(/Proxy's public address/, '192.168.99.10');
    await t.answer(/Private interface/, 'priv0');
    await t.refused(/Proxy's private address/, '192.168.99.10', /^> proxy\.private_ip: must differ from proxy\.public_ip/);
    await t.answer(/Proxy's private address/, '172.16.0.1');
    await t.answer(/nginx config file dsrctl owns/, '');
    await t.choose(/Enter the upstreams/, 'one by one');
    await t.answer(/Read each upstream's interfaces/, '');
    await t.answer(/Upstream 1: name/, '');
    await t.answer(/dev1: SSH address/, lab.ups[0]!);
    await t.answer(/dev1: its address/, '172.16.0.11');
    await t.refused(/dev1: interface/, '', /^> upstreams\[0\]\.interface: is required for dsr-origin-nat/);
    await t.answer(/dev1: interface/, 'priv0');
    await t.answer(/Add another upstream/, '');
    await t.answer(/Addresses every upstream must reach/, '');
    await t.answer(/Is there a host that plays the remote client/, '');
    await t.answer(/inventory\/dns\.yaml exists\. Overwrite it\?/, '');
    await t.answer(/Save under another name/, '');
    await t.waitFor(/Nothing was written; inventory\/dns\.yaml is unchanged\./);
    await t.waitFor(/\[exited 0\]/);
    writeFileSync(TRANSCRIPT.replace(/\.txt$/, '-refused.txt'), t.screen() + '\n');
    expect(readFileSync(precious, 'utf8')).toBe('# hand-written\n');
    expect(readdirSync(join(cwd, 'inventory'))).toEqual(['dns.yaml']);
    expect(readFileSync(emptyKh, 'utf8')).toBe('');
  });
});
