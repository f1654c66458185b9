/**
 * The whole conversation, with scripted answers and fake hosts (facts fixtures read from the
 * lab). Each step names the question it expects, so a reordered or missing question fails here.
 * The real terminal is driven in test/e2e/wizard.test.ts.
 */
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFacts } from '../facts/parse.js';
import type { HostFacts } from '../facts/types.js';
import { HostKeyError } from '../ssh/errors.js';
import type { ConnectTarget } from '../ssh/types.js';
import { loadInventory } from '../inventory/load.js';
import ssh2 from 'ssh2';
import { runWizard, newState, type Prompter, type WizardIo } from './run.js';
import type { Choice } from './questions.js';

const fixture = (name: string) => readFileSync(new URL(`../../test/fixtures/wizard/${name}.facts.txt`, import.meta.url), 'utf8');

/** Facts per SSH address: the lab's proxy and dev1; dev2.. are dev1 with its addresses moved. */
function labFacts(host: string): HostFacts {
  if (host === '10.211.7.10') return parseFacts(fixture('proxy'));
  const n = Number(host.split('.')[3]) - 10;
  if (n >= 1 && n <= 4)
    return parseFacts(fixture('dev1').replaceAll('172.16.0.11', `172.16.0.1${n}`).replaceAll('10.211.7.11', host).replace(/(begin hostname@@\n)dev1/, `$1dev${n}`));
  throw new Error(`no route to ${host}`);
}

class ExitPromptError extends Error {
  override name = 'ExitPromptError';
}
const CTRL_C = Symbol('ctrl-c');
type Answer = string | boolean | typeof CTRL_C;

/** Answers in order; each step: the question it must be (regex) and the answers typed, the last one valid. */
class Script implements Prompter {
  readonly refused: string[] = [];
  readonly asked: string[] = [];
  readonly choices = new Map<string, Choice<unknown>[]>();
  constructor(private readonly steps: [RegExp, ...Answer[]][]) {}
  private next(message: string): Answer[] {
    this.asked.push(message);
    const step = this.steps.shift();
    if (!step) throw new Error(`unexpected question after the script ended: "${message}"`);
    if (!step[0].test(message)) throw new Error(`expected a question matching ${step[0]}, got "${message}"`);
    const answers = step.slice(1) as Answer[];
    if (answers.includes(CTRL_C)) throw new ExitPromptError('User force closed the prompt with SIGINT');
    return answers;
  }
  async input(q: { message: string; default?: string; validate?: (s: string) => true | string }): Promise<string> {
    for (const a of this.next(q.message)) {
      const value = a === '' ? (q.default ?? '') : String(a);
      const ok = q.validate ? q.validate(value) : true;
      if (ok === true) return value;
      this.refused.push(ok);
    }
    throw new Error(`no valid answer to "${q.message}": ${this.refused.join(' | ')}`);
  }
  async password(q: { message: string; validate?: (s: string) => true | string }): Promise<string> {
    return this.input(q);
  }
  async confirm(q: { message: string; default?: boolean }): Promise<boolean> {
    const [a] = this.next(q.message);
    return a === '' ? (q.default ?? false) : a === true;
  }
  async select<T>(q: { message: string; choices: Choice<T>[]; default?: T }): Promise<T> {
    this.choices.set(q.message, q.choices as Choice<unknown>[]);
    const [a] = this.next(q.message);
    const c = a === '' ? q.choices.find((x) => x.value === q.default) ?? q.choices.find((x) => !x.disabled) : q.choices.find((x) => x.value === a);
    if (!c) throw new Error(`"${String(a)}" is not offered for "${q.message}": ${q.choices.map((x) => String(x.value)).join(', ')}`);
    if (c.disabled) throw new Error(`"${String(a)}" is offered but disabled for "${q.message}"`);
    return c.value;
  }
  done(): void {
    expect(this.steps.map((s) => s[0])).toEqual([]);
  }
}

let cwd: string;
let out: string[];
let planned: { file: string; secrets: Record<string, string> }[];
let connected: ConnectTarget[];
let KEY: string;
beforeEach(() => {
  cwd = mkdtempSync(join(tmpdir(), 'dsrctl-wizard-'));
  KEY = join(cwd, 'id_ed25519');
  // ssh2 now and then generates an ed25519 key its own parser calls malformed: take one it reads
  let pair = ssh2.utils.generateKeyPairSync('ed25519');
  while (ssh2.utils.parseKey(pair.private) instanceof Error) pair = ssh2.utils.generateKeyPairSync('ed25519');
  writeFileSync(KEY, pair.private, { mode: 0o600 });
  writeFileSync(`${KEY}.pub`, pair.public);
  out = [];
  planned = [];
  connected = [];
});
afterEach(() => rmSync(cwd, { recursive: true, force: true }));

function io(ask: Prompter, readFacts: (t: ConnectTarget) => Promise<HostFacts> = async (t) => labFacts(t.host)): WizardIo {
  return {
    ask,
    say: (t = '') => out.push(...t.split('\n')),
    readFacts: async (t) => {
      connected.push(t);
      return readFacts(t);
    },
    cwd,
    env: {},
    runPlan: async (file, secrets) => {
      planned.push({ file, secrets });
      return 0;
    },
    runApply: async () => {
      throw new Error('apply must not run in these tests');
    },
  };
}

const KH = () => join(cwd, 'known_hosts');

/** The lab's inventory, answered the way an engineer would: facts read, upstreams as a range. */
function labScript(over: { save?: Answer[]; tail?: [RegExp, ...Answer[]][] } = {}): Script {
  return new Script([
    [/Which method/, 'ip-transparency'],
    [/Service protocol/, 'http'],
    [/Port clients connect to/, ''],
    [/Port the upstreams listen on/, 'abc', '70000', '8080'],
    [/Networks the clients come from/, '192.168.99.0/24'],
    [/Proxy's SSH address/, 'bad host!', '10.211.7.10'],
    [/SSH user/, ''],
    [/SSH port/, ''],
    [/How does dsrctl log in/, 'key'],
    [/Private key file/, join(cwd, 'missing-key'), `${KEY}.pub`, KEY],
    [/known_hosts file/, join(cwd, 'no-known-hosts'), KH()],
    [/Connect to root@10\.211\.7\.10:22 now/, true],
    [/Public interface/, 'pub0'],
    [/public address/, '192.168.99.10'],
    [/Private interface/, 'priv0'],
    [/private address/, '172.16.0.1'],
    [/nginx config file/, '/etc/nginx/conf.d/app.conf'],
    [/Enter the upstreams/, 'range'],
    [/Read each upstream's interfaces/, true],
    [/Upstream addresses/, '172.16.0.1-12', '10.0.0.11-12', '172.16.0.11-12'],
    [/Name prefix/, ''],
    [/Where does SSH reach them/, 'range'],
    [/Their SSH addresses/, '10.211.7.11-13', '10.211.7.11-12'],
    [/Their interface on the private network/, 'priv0'],
    [/Masquerade/, false],
    [/Addresses every upstream must reach/, ''],
    [/Is there a host that plays the remote client/, true],
    [/Remote client's SSH address/, '10.211.7.2'],
    [/own address, as the upstreams must see it/, '192.168.99.1'],
    [/Save it as/, ...(over.save ?? [''])],
    ...(over.tail ?? [
      [/Run dsrctl plan/, true],
      [/Run dsrctl apply/, false],
    ]),
  ]);
}

describe('dsrctl wizard, scripted', () => {
  it('asks in order, re-asks with the schema\'s reasons, reads facts, writes an inventory that loads, and offers plan', async () => {
    writeFileSync(KH(), '');
    const ask = labScript();
    const code = await runWizard(io(ask));
    ask.done();
    expect(code).toBe(0);
    expect(ask.refused).toEqual([
      'service.upstream_port: must be a port number (got "abc")',
      'service.upstream_port: must be 1-65535 (got 70000)',
      'proxy.ssh_host: must be an IP address or a DNS name (got "bad host!")',
      `${join(cwd, 'missing-key')} does not exist`,
      `${KEY}.pub holds a public key; give the private key (${KEY}?)`,
      `${join(cwd, 'no-known-hosts')} does not exist: give the file that holds the hosts' keys, or leave the answer empty to record the hosts' keys in a new file`,
      "upstreams[0].ip: 172.16.0.1 is the proxy's own address (got \"172.16.0.1\")",
      "10.0.0.11 is not on the proxy's private network: priv0 has 172.16.0.0/24 (the proxy reaches the upstreams only there)",
      '3 addresses for 2 upstreams',
    ]);
    // facts: the proxy, then both upstreams, all with the same SSH settings
    expect(connected.map((t) => `${t.name}@${t.host}`)).toEqual(['proxy@10.211.7.10', 'dev1@10.211.7.11', 'dev2@10.211.7.12']);
    expect(connected[0]).toMatchObject({ user: 'root', port: 22, privateKey: KEY, knownHosts: KH() });
    expect(out).toContain('    pub0       UP      192.168.99.10/24  rp_filter=0');
    // interfaces offered from the facts, the ssh address's interface not first
    expect(ask.choices.get('Public interface (where clients reach nginx)?')!.map((c) => c.value)).toEqual(['pub0', 'priv0', 'mgmt0', expect.any(String)]);

    const file = join(cwd, 'inventory', 'proxy-ip-transparency.yaml');
    expect(planned).toEqual([{ file, secrets: {} }]);
    const inv = loadInventory(file).inventory;
    expect(inv).toMatchObject({
      mode: 'ip-transparency',
      service: { protocol: 'http', listen_port: 80, upstream_port: 8080, client_networks: ['192.168.99.0/24'] },
      ssh: { user: 'root', port: 22, private_key: KEY, known_hosts: KH() },
      proxy: { ssh_host: '10.211.7.10', public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0', masquerade: false, managed_config: '/etc/nginx/conf.d/app.conf' },
      upstreams: [
        { name: 'dev1', ssh_host: '10.211.7.11', ip: '172.16.0.11', interface: 'priv0' },
        { name: 'dev2', ssh_host: '10.211.7.12', ip: '172.16.0.12', interface: 'priv0' },
      ],
      verify: { ping_targets: [], probe: { ssh_host: '10.211.7.2', expect_source: '192.168.99.1' } },
    });
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/^# dsrctl inventory, written by `dsrctl wizard`/);
    expect(text).toContain('# Interfaces and addresses were read over SSH from: proxy, dev1, dev2.');
    // the default is written out, with what it means, so the file says what a reboot does
    expect(text).toMatch(/# Keep the applied state across reboots[^]*\npersist: true\n/);
    expect(readdirSync(join(cwd, 'inventory'))).toEqual(['proxy-ip-transparency.yaml']); // no temp file left
  });

  it('offers only udp for DSR, with the reason beside tcp and http', async () => {
    const ask = new Script([
      [/Which method/, 'dsr-router-nat'],
      [/Service protocol/, CTRL_C],
    ]);
    await expect(runWizard(io(ask))).rejects.toThrow(/SIGINT/);
    const offered = ask.choices.get('Service protocol?')!;
    expect(offered.filter((c) => !c.disabled).map((c) => c.value)).toEqual(['udp']);
    expect(offered.filter((c) => c.disabled).map((c) => `${String(c.value)} ${c.disabled}`)).toEqual(['http (DSR: UDP only)', 'tcp (DSR: UDP only)']);
    expect(out).toContain('Protocol: DSR works for UDP only (the guide: "DSR is of limited use for TCP protocols"); choose ip-transparency for TCP or HTTP.');
    expect(ask.choices.get('Which method?')!.map((c) => c.description)).toEqual([
      expect.stringMatching(/^TCP and UDP; .*terminated.*passive.*standard$/),
      expect.stringMatching(/^UDP only; .*through the proxy.*active required.*better$/),
      expect.stringMatching(/^UDP only; .*routed normally.*active required.*best$/),
    ]);
  });

  it('Ctrl-C at any question leaves nothing behind', async () => {
    writeFileSync(KH(), '');
    const before = readdirSync(cwd);
    for (const at of [/Port clients connect to/, /Connect to root/, /Their SSH addresses/, /Save it as/]) {
      const steps = (labScript() as unknown as { steps: [RegExp, ...Answer[]][] }).steps;
      const i = steps.findIndex((s) => s[0].source.startsWith(at.source));
      expect(i).toBeGreaterThan(0);
      steps[i] = [at, CTRL_C];
      await expect(runWizard(io(new Script(steps.slice(0, i + 1))))).rejects.toMatchObject({ name: 'ExitPromptError' });
      expect(readdirSync(cwd)).toEqual(before);
    }
  });

  it('never overwrites an existing file without asking; declining leaves it untouched', async () => {
    writeFileSync(KH(), '');
    mkdirSync(join(cwd, 'inventory'));
    const file = join(cwd, 'inventory', 'proxy-ip-transparency.yaml');
    writeFileSync(file, 'precious\n');
    const ask = labScript({ tail: [[/exists\. Overwrite it\?/, ''], [/Save under another name/, '']] });
    expect(await runWizard(io(ask))).toBe(0);
    ask.done();
    expect(readFileSync(file, 'utf8')).toBe('precious\n');
    expect(readdirSync(join(cwd, 'inventory'))).toEqual(['proxy-ip-transparency.yaml']);
    expect(out).toContain('Nothing was written; inventory/proxy-ip-transparency.yaml is unchanged.');
    expect(planned).toEqual([]);

    // saying no, then giving another name, writes there; saying yes overwrites
    const ask2 = labScript({ tail: [[/exists\. Overwrite it\?/, false], [/Save under another name/, 'inventory/other.yaml'], [/Run dsrctl plan/, false], [/Run dsrctl apply/, false]] });
    expect(await runWizard(io(ask2))).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe('precious\n');
    expect(loadInventory(join(cwd, 'inventory', 'other.yaml')).inventory.mode).toBe('ip-transparency');
    const ask3 = labScript({ tail: [[/exists\. Overwrite it\?/, true], [/Run dsrctl plan/, false], [/Run dsrctl apply/, false]] });
    expect(await runWizard(io(ask3))).toBe(0);
    expect(loadInventory(file).inventory.upstreams).toHaveLength(2);
  });

  it('shows an unknown host key with the commands to check and add it, and never adds it', async () => {
    writeFileSync(KH(), '');
    const hostKey = (t: ConnectTarget) =>
      new HostKeyError(t.name, `root@${t.host}:22`, `${t.name}: host key SHA256:abc (ssh-ed25519) is not in ${t.knownHosts}`, {
        reason: 'unknown',
        fingerprint: 'SHA256:abc',
        keyType: 'ssh-ed25519',
        knownHostsPath: t.knownHosts,
      });
    let tries = 0;
    const ask = new Script([
      [/Which method/, 'dsr-origin-nat'],
      [/Service protocol/, ''],
      [/Port clients connect to/, ''],
      [/Port the upstreams listen on/, ''],
      [/Networks the clients come from/, ''],
      [/Proxy's SSH address/, '10.211.7.10'],
      [/SSH user/, 'ops'],
      [/SSH port/, '2222'],
      [/How does dsrctl log in/, 'password'],
      [/SSH password/, '', 'hunter2'],
      [/known_hosts file/, KH()],
      [/Connect to ops@10\.211\.7\.10:2222 now/, true],
      [/proxy: what now/, 'retry'],
      [/proxy: what now/, 'skip'],
      [/Public interface/, 'eth0'],
      [/public address/, '192.168.99.10'],
      [/Private interface/, 'eth 2', 'eth2'],
      [/private address/, '192.168.99.10', '172.16.0.1'],
      [/nginx config file/, ''],
      [/Enter the upstreams/, 'one'],
      [/Read each upstream's interfaces/, ''],
      [/Upstream 1: name/, ''],
      [/dev1: SSH address/, '10.0.0.11'],
      [/dev1: its address/, '172.16.0.11'],
      [/dev1: interface/, '', 'eth2'],
      [/Add another upstream/, true],
      [/Upstream 2: name/, 'dev1', 'dev2'],
      [/dev2: SSH address/, '10.0.0.12'],
      [/dev2: its address/, '172.16.0.11', '172.16.0.12'],
      [/dev2: interface/, 'eth2'],
      [/Add another upstream/, false],
      [/Addresses every upstream must reach/, '8.8.8.8, 1.1.1', '8.8.8.8'],
      [/Is there a host that plays the remote client/, false],
      [/Save it as/, 'dns.yaml'],
      [/Run dsrctl plan/, true],
      [/Run dsrctl apply/, false],
    ]);
    const code = await runWizard(
      io(ask, async (t) => {
        tries++;
        throw hostKey(t);
      }),
    );
    ask.done();
    expect(code).toBe(0);
    expect(tries).toBe(2);
    expect(readFileSync(KH(), 'utf8')).toBe('');
    expect(out).toEqual(
      expect.arrayContaining([
        `  10.211.7.10's host key is not in ${KH()}. It presents SHA256:abc (ssh-ed25519).`,
        '  dsrctl never adds a host key by itself. Check it, then add it:',
        '    key=$(mktemp)',
        '    ssh-keyscan -p 2222 -t ed25519 10.211.7.10 > "$key"',
        `    cat "$key" >> ${KH()} && rm -f "$key"`,
      ]),
    );
    expect(ask.refused).toEqual([
      'type the password',
      'proxy.private_interface: must be a Linux interface name (1-15 letters, digits, "_", ".", "-", "@"; no spaces or shell characters) (got "eth 2")',
      'proxy.private_ip: must differ from proxy.public_ip (got "192.168.99.10")',
      'upstreams[0].interface: is required for dsr-origin-nat: the interface whose egress rewrites the replies',
      'upstreams[1].name: "dev1" is listed twice (also upstreams[0]) (got "dev1")',
      'upstreams[1].ip: 172.16.0.11 is listed twice (also upstreams[0]) (got "172.16.0.11")',
      'verify.ping_targets[1]: must be an IPv4 address like 172.16.0.11 (not a CIDR or a name) (got "1.1.1")',
    ]);

    // the password is used for this session (plan) but written nowhere
    const file = join(cwd, 'dns.yaml');
    expect(planned).toEqual([{ file, secrets: { DSRCTL_SSH_PASSWORD: 'hunter2' } }]);
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain('hunter2');
    expect(text).toMatch(/^ {2}password: \$\{DSRCTL_SSH_PASSWORD\}/m);
    expect(out.join('\n')).toMatch(/put DSRCTL_SSH_PASSWORD=<the value> in \.env/);
    expect(existsSync(join(cwd, '.env'))).toBe(false);
    process.env.DSRCTL_SSH_PASSWORD = 'from-env';
    try {
      const inv = loadInventory(file).inventory;
      expect(inv).toMatchObject({ mode: 'dsr-origin-nat', service: { protocol: 'udp', listen_port: 53, upstream_port: 53 }, ssh: { user: 'ops', port: 2222, password: 'from-env' } });
      expect(inv.upstreams.map((u) => u.interface)).toEqual(['eth2', 'eth2']);
      expect(inv.proxy.managed_config).toBe('/etc/nginx/dsrctl/stream.conf');
    } finally {
      delete process.env.DSRCTL_SSH_PASSWORD;
    }
  });

  it('DSR on a UDP port other than 53: asks whether it speaks DNS (verify.check), and says a probe host is the only end-to-end proof', async () => {
    writeFileSync(KH(), '');
    const ask = new Script([
      [/Which method/, 'dsr-router-nat'],
      [/Service protocol/, ''],
      [/Port clients connect to/, '5353'],
      [/Port the upstreams listen on/, '5353'],
      [/Networks the clients come from/, ''],
      [/Proxy's SSH address/, '10.211.7.10'],
      [/SSH user/, ''],
      [/SSH port/, ''],
      [/How does dsrctl log in/, 'key'],
      [/Private key file/, KEY],
      [/known_hosts file/, KH()],
      [/Connect to root@10\.211\.7\.10:22 now/, false],
      [/Public interface/, 'eth0'],
      [/public address/, '192.168.99.10'],
      [/Private interface/, 'eth2'],
      [/private address/, '172.16.0.1'],
      [/nginx config file/, ''],
      [/Enter the upstreams/, 'one'],
      [/Read each upstream's interfaces/, false],
      [/Upstream 1: name/, ''],
      [/dev1: SSH address/, '10.0.0.11'],
      [/dev1: its address/, '172.16.0.11'],
      [/dev1: interface/, 'eth2'],
      [/Add another upstream/, false],
      [/Masquerade/, false],
      [/Addresses every upstream must reach/, ''],
      [/Does the UDP service on port 5353 speak DNS/, true],
      [/Is there a host that plays the remote client/, false],
      [/Save it as/, 'dns5353.yaml'],
      [/Run dsrctl plan/, false],
      [/Run dsrctl apply/, false],
    ]);
    expect(await runWizard(io(ask))).toBe(0);
    ask.done();
    expect(out.join('\n')).toContain('Only a host that plays the remote client can prove the DSR path end to end');
    const inv = loadInventory(join(cwd, 'dns5353.yaml')).inventory;
    expect(inv.verify.check).toBe('dns');
    expect(inv.verify.probe).toBeUndefined();
  });

  it('-o names the file; an existing one still needs a yes', async () => {
    writeFileSync(KH(), '');
    const file = join(cwd, 'given.yaml');
    writeFileSync(file, 'keep\n');
    const steps = (labScript() as unknown as { steps: [RegExp, ...Answer[]][] }).steps;
    const i = steps.findIndex((s) => /Save it as/.test(s[0].source));
    const ask = new Script([...steps.slice(0, i), [/given\.yaml exists\. Overwrite it\?/, ''], [/Save under another name/, '']]);
    expect(await runWizard(io(ask), { output: 'given.yaml' })).toBe(0);
    ask.done();
    expect(readFileSync(file, 'utf8')).toBe('keep\n');
  });
});

describe('dsrctl wizard: SSH answers checked as typed, one answer changed after a failed connect', () => {
  it('records a host key the user confirms by its fingerprint in the file they named; changes only the SSH user after an auth failure', async () => {
    const rec = join(cwd, 'inventory', 'known_hosts');
    const line = '10.211.7.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyOfTheProxyForTheTestOnly0000000000000';
    let attempt = 0;
    const readFacts = async (t: ConnectTarget) => {
      attempt++;
      if (attempt === 1) {
        expect(t.knownHosts).toBe('/dev/null'); // nothing recorded yet: every key is unknown
        throw new HostKeyError(t.name, `root@${t.host}:22`, 'unknown', { reason: 'unknown', fingerprint: 'SHA256:proxykey', keyType: 'ssh-ed25519', knownHostsPath: t.knownHosts, knownHostsLine: line });
      }
      expect(t.knownHosts).toBe(rec);
      if (t.user !== 'ops') throw new Error('authentication failed');
      return labFacts(t.host);
    };
    const ask = new Script([
      [/Which method/, 'ip-transparency'],
      [/Service protocol/, 'http'],
      [/Port clients connect to/, ''],
      [/Port the upstreams listen on/, '8080'],
      [/Networks the clients come from/, ''],
      [/Proxy's SSH address/, '10.211.7.10'],
      [/SSH user/, ''],
      [/SSH port/, ''],
      [/How does dsrctl log in/, 'key'],
      [/Private key file/, KEY],
      [/known_hosts file/, ''],
      [/File to record the hosts' keys in/, ''],
      [/Connect to root@10\.211\.7\.10:22 now/, true],
      [/^Record 10\.211\.7\.10's host key SHA256:proxykey\?$/, true],
      [/proxy: what now/, 'user'],
      [/SSH user/, 'ops'],
      [/Public interface/, CTRL_C],
    ]);
    await expect(runWizard(io(ask, readFacts))).rejects.toMatchObject({ name: 'ExitPromptError' });
    ask.done();
    expect(attempt).toBe(3);
    expect(readFileSync(rec, 'utf8')).toBe(`${line}\n`);
    const offered = ask.choices.get('proxy: what now?')!.map((c) => c.name);
    expect(offered).toEqual(['try again', 'change the SSH address (10.211.7.10)', 'change the SSH user (root)', 'change the SSH port (22)', `change how dsrctl logs in (key ${KEY})`, `change the known_hosts file (${rec})`, 'go on without facts']);
    expect(out).toContain(`  The wizard can record it in ${rec}: say yes only if 10.211.7.10 itself shows this fingerprint`);
    expect(out).toContain(`  Recorded 10.211.7.10's key in ${rec}.`);
    expect(out.some((l) => l.includes('/var/lib/dsrctl-lab/<prefix>/id_ed25519') && l.includes('/var/lib/dsrctl-lab/<prefix>/known_hosts'))).toBe(true);
  });
});

describe('dsrctl wizard: the nginx server already on the service port', () => {
  const withNginx = (nginxConfig: HostFacts['nginxConfig']) => async (t: ConnectTarget) => ({ ...labFacts(t.host), nginxConfig });
  const upTo = (answer: [RegExp, ...Answer[]][]): Script =>
    new Script([
      [/Which method/, 'ip-transparency'],
      [/Service protocol/, 'http'],
      [/Port clients connect to/, ''],
      [/Port the upstreams listen on/, '8080'],
      [/Networks the clients come from/, ''],
      [/Proxy's SSH address/, '10.211.7.10'],
      [/SSH user/, ''],
      [/SSH port/, ''],
      [/How does dsrctl log in/, 'key'],
      [/Private key file/, KEY],
      [/known_hosts file/, KH()],
      [/Connect to root@10\.211\.7\.10:22 now/, true],
      [/Public interface/, 'pub0'],
      [/public address/, '192.168.99.10'],
      [/Private interface/, 'priv0'],
      [/private address/, '172.16.0.1'],
      ...answer,
      [/Enter the upstreams/, CTRL_C],
    ]);

  it('a regular site file on the port (the lab\'s conf.d/app.conf) is offered as the file dsrctl manages', async () => {
    writeFileSync(KH(), '');
    const dump = [
      '# configuration file /etc/nginx/nginx.conf:',
      'events {}',
      'http {',
      '\tinclude /etc/nginx/conf.d/*.conf;',
      '}',
      '',
      '# configuration file /etc/nginx/conf.d/app.conf:',
      'server {',
      '    listen 80;',
      '    location / { proxy_pass http://127.0.0.1:8080; }',
      '}',
      '',
    ].join('\n');
    const ask = upTo([
      [/Port 80 is taken on the proxy: what should dsrctl do/, 'manage'],
      [/nginx config file dsrctl owns/, ''],
    ]);
    const state = newState();
    await expect(runWizard(io(ask, withNginx({ status: 'ok', dump, links: {} })), {}, state)).rejects.toMatchObject({ name: 'ExitPromptError' });
    ask.done();
    expect(out).toContain('On the proxy, port 80/tcp on 192.168.99.10 is already served by another nginx server, which would answer clients instead of the upstreams:');
    expect(out.some((l) => l.startsWith('  /etc/nginx/conf.d/app.conf:2  listen 80;'))).toBe(true);
    expect(ask.choices.get('Port 80 is taken on the proxy: what should dsrctl do?')!.map((c) => c.value)).toEqual(['manage', 'keep']);
    expect(state.draft.proxy!.managed_config).toBe('/etc/nginx/conf.d/app.conf');
  });

  it('Debian\'s default site: offers proxy.take_over_port, which the inventory then has', async () => {
    writeFileSync(KH(), '');
    const stock = parseFacts(readFileSync(new URL('../../test/fixtures/facts/stock-proxy-default-site.txt', import.meta.url), 'utf8'));
    const ask = upTo([
      [/Port 80 is taken on the proxy/, 'take'],
      [/nginx config file dsrctl owns/, ''],
    ]);
    const state = newState();
    await expect(runWizard(io(ask, withNginx(stock.nginxConfig)), {}, state)).rejects.toMatchObject({ name: 'ExitPromptError' });
    ask.done();
    expect(ask.choices.get('Port 80 is taken on the proxy: what should dsrctl do?')!.map((c) => c.name)).toEqual([
      'take over the port: disable /etc/nginx/sites-enabled/default',
      'keep /etc/nginx/conf.d/dsrctl.conf; I will free the port myself',
    ]);
    expect(state.draft.proxy).toMatchObject({ take_over_port: true, managed_config: '/etc/nginx/conf.d/dsrctl.conf' });
  });
});

describe('state', () => {
  it('starts empty', () => {
    expect(newState()).toMatchObject({ draft: {}, secrets: {} });
  });
});
