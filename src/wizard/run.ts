/**
 * The wizard's conversation: asks, validates each answer with the inventory schema (questions.ts),
 * reads facts over SSH when the user agrees, warns (overlap.ts), writes the YAML (render-yaml.ts)
 * atomically, then offers plan and apply. Every prompt and every side effect goes through
 * `WizardIo`, so tests drive the whole flow with scripted answers and fake hosts.
 *
 * Order: method, service, proxy SSH address, SSH access, (facts), proxy addresses and interfaces,
 * upstreams, masquerade, verification. SSH access comes right after the proxy's SSH address rather
 * than after the upstreams, because reading the proxy's interfaces (so they can be picked rather
 * than typed) needs it.
 *
 * Nothing is written before the last question: Ctrl-C (inquirer's ExitPromptError) anywhere
 * before it leaves nothing behind. The caller maps it to exit code 130.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import ssh2 from 'ssh2';
import type { HostFacts } from '../facts/types.js';
import { expandVars, validateInventory } from '../inventory/load.js';
import type { SshOptions } from '../inventory/schema.js';
import { HostKeyError, SshError } from '../ssh/errors.js';
import { connectTarget } from '../ssh/targets.js';
import { publicKeyProblem } from '../ssh/local-files.js';
import type { Inventory } from '../inventory/schema.js';
import { describeConflict, serviceConflicts, type ServiceConflicts } from '../resources/nginx-port.js';
import { connectedNetworks, insideAny } from '../plan/upstream-reach.js';
import type { ConnectTarget } from '../ssh/types.js';
import { UserError } from '../util/errors.js';
import { hostNet, interfaceOf, networkWarnings, type HostNet } from './overlap.js';
import {
  METHODS,
  defaultManagedConfig,
  defaultPorts,
  listAnswer,
  masqueradeApplies,
  methodSummary,
  methodTable,
  portAnswer,
  protocolChoices,
  pruneDraft,
  validateAt,
  DSR_TCP_REASON,
  type Choice,
  type Draft,
  type Mode,
  type Path,
  type Protocol,
  type SshDraft,
  type UpstreamDraft,
} from './questions.js';
import { parseRange, rangeNames } from './range.js';
import { renderInventory } from './render-yaml.js';

type Validate = (s: string) => true | string;

/** The prompts the wizard uses (the @inquirer/prompts functions, or a test's script). */
export interface Prompter {
  select<T>(q: { message: string; choices: Choice<T>[]; default?: T }): Promise<T>;
  input(q: { message: string; default?: string; validate?: Validate }): Promise<string>;
  confirm(q: { message: string; default?: boolean }): Promise<boolean>;
  password(q: { message: string; validate?: Validate }): Promise<string>;
}

export interface WizardIo {
  ask: Prompter;
  /** one line (or several) of text for the user */
  say(text?: string): void;
  /** connect, read the host's facts (rp_filter keys included), disconnect */
  readFacts(target: ConnectTarget): Promise<HostFacts>;
  /** directory relative paths are resolved against (default inventory/ lives there) */
  cwd: string;
  /** environment for ${VAR} references when connecting (process env + .env) */
  env: Record<string, string | undefined>;
  /** run `dsrctl plan` / `apply` on the written file; `secrets` are the values behind the ${VAR}s */
  runPlan?(file: string, secrets: Record<string, string>): Promise<number>;
  runApply?(file: string, secrets: Record<string, string>): Promise<number>;
  /** for the YAML header */
  date?: string;
  /** where the built-in lab keeps its state (default /var/lib/dsrctl-lab) */
  labRoot?: string;
}

const LAB_ROOT = '/var/lib/dsrctl-lab';

export interface WizardState {
  draft: Draft;
  /** the file written, once it is */
  saved?: string;
  /** ${VAR} name -> value typed in this session (never written anywhere) */
  secrets: Record<string, string>;
  facts: Map<string, HostNet>;
  /** host name -> its hostname, from the facts */
  factsHostnames: Map<string, string>;
  /** the proxy's facts as read (nginx -T: the servers already on the service's port) */
  proxyFacts?: HostFacts;
  /** ssh.known_hosts is a file the wizard records confirmed host keys in */
  recordKeys?: boolean;
}

const OTHER = '\u0000other';
const SECRET = { password: 'DSRCTL_SSH_PASSWORD', passphrase: 'DSRCTL_SSH_PASSPHRASE' } as const;

export async function runWizard(io: WizardIo, opts: { output?: string } = {}, state: WizardState = newState()): Promise<number> {
  const d = state.draft;
  const draft = () => d;
  const { ask, say } = io;

  say('dsrctl wizard: a few questions, then a commented inventory file. Ctrl-C quits at any point');
  say('without writing anything. Nothing on any host changes unless you run apply at the end.');
  say('');

  // ------------------------------------------------------------------------------- method
  say("The guide's three methods:");
  for (const l of methodTable()) say(l);
  d.mode = await ask.select<Mode>({
    message: 'Which method?',
    choices: METHODS.map((m) => ({ value: m.value, short: m.value, name: `${m.value.padEnd(16)} ${m.title}`, description: methodSummary(m) })),
  });
  const mode = d.mode;
  const dsr = mode !== 'ip-transparency';

  // ------------------------------------------------------------------------------- service
  if (dsr) say(`Protocol: ${DSR_TCP_REASON}.`);
  const protocol = await ask.select<Protocol>({
    message: 'Service protocol?',
    choices: protocolChoices(mode),
    default: dsr ? 'udp' : 'http',
  });
  d.service = { protocol };
  const ports = defaultPorts(protocol);
  d.service.listen_port = portAnswer(
    await ask.input({
      message: "Port clients connect to on the proxy's public address?",
      ...(ports ? { default: String(ports.listen) } : {}),
      validate: validator(draft, ['service', 'listen_port'], portAnswer),
    }),
  ) as number;
  d.service.upstream_port = portAnswer(
    await ask.input({
      message: 'Port the upstreams listen on?',
      default: String(d.service.listen_port),
      validate: validator(draft, ['service', 'upstream_port'], portAnswer),
    }),
  ) as number;
  const clientNets = listAnswer(
    await ask.input({
      message: 'Networks the clients come from (CIDRs, comma separated; empty if unknown)?',
      default: '',
      validate: validator(draft, ['service', 'client_networks'], (s) => (listAnswer(s).length ? listAnswer(s) : undefined)),
    }),
  );
  if (clientNets.length) d.service.client_networks = clientNets;

  // ------------------------------------------------------------------------------- proxy + SSH
  say('');
  say('The proxy (the host that runs NGINX).');
  d.proxy = {};
  d.proxy.ssh_host = (
    await ask.input({ message: "Proxy's SSH address (IP or DNS name)?", validate: validator(draft, ['proxy', 'ssh_host']) })
  ).trim();

  say('');
  say('SSH access (used for every host: the proxy, the upstreams and the probe).');
  d.ssh = await askSsh(io, state);

  const proxyFacts = await offerFacts(io, state, 'proxy', d.proxy.ssh_host, true, { path: ['proxy', 'ssh_host'], set: (h) => (d.proxy!.ssh_host = h) });

  // ------------------------------------------------------------------------------- proxy addresses
  say('');
  const ifChoices = (h: HostNet | undefined, except?: string) =>
    (h?.interfaces ?? [])
      .filter((i) => i.name !== except)
      .map((i) => ({ value: i.name, short: i.name, name: `${i.name.padEnd(10)} ${i.addresses.map((a) => `${a.address}/${a.prefixlen}`).join(', ') || '(no IPv4)'}  ${i.state}` }));
  const addrChoices = (h: HostNet | undefined, iface: string) =>
    (h?.interfaces.find((i) => i.name === iface)?.addresses ?? []).map((a) => ({ value: a.address, short: a.address, name: `${a.address}/${a.prefixlen} on ${iface}` }));
  const notSsh = proxyFacts?.interfaces.find((i) => !i.addresses.some((a) => a.address === d.proxy!.ssh_host) && i.addresses.length);
  d.proxy.public_interface = await pickOrType(io, draft, ['proxy', 'public_interface'], 'Public interface (where clients reach nginx)?', ifChoices(proxyFacts), notSsh?.name);
  d.proxy.public_ip = await pickOrType(io, draft, ['proxy', 'public_ip'], "Proxy's public address (clients connect to it)?", addrChoices(proxyFacts, d.proxy.public_interface));
  const notPublic = proxyFacts?.interfaces.find((i) => i.name !== d.proxy!.public_interface && i.addresses.length && !i.addresses.some((a) => a.address === d.proxy!.ssh_host));
  d.proxy.private_interface = await pickOrType(
    io,
    draft,
    ['proxy', 'private_interface'],
    'Private interface (towards the upstreams)?',
    ifChoices(proxyFacts, d.proxy.public_interface),
    notPublic?.name,
  );
  d.proxy.private_ip = await pickOrType(
    io,
    draft,
    ['proxy', 'private_ip'],
    `Proxy's private address (${dsr && mode === 'dsr-origin-nat' ? 'nginx reaches the upstreams from it' : "the upstreams' gateway"})?`,
    addrChoices(proxyFacts, d.proxy.private_interface),
  );
  const managedDefault = await offerServerOnPort(io, state, protocol);
  d.proxy.managed_config = (
    await ask.input({
      message: 'nginx config file dsrctl owns on the proxy (backed up, restored on rollback; an existing site file is fine)?',
      default: managedDefault,
      validate: validator(draft, ['proxy', 'managed_config']),
    })
  ).trim();

  // ------------------------------------------------------------------------------- upstreams
  say('');
  say(
    mode === 'dsr-origin-nat'
      ? 'The upstreams. Origin NAT rewrites their replies on their own egress interface: each needs one.'
      : "The upstreams. Their default route will point at the proxy's private address.",
  );
  const how = await ask.select<'range' | 'one'>({
    message: 'Enter the upstreams',
    choices: [
      { value: 'range', name: 'as a range', description: 'e.g. 172.16.0.11-14, named dev1, dev2, ...' },
      { value: 'one', name: 'one by one', description: 'name, SSH address, address and interface of each' },
    ],
  });
  const readUpstreams = await ask.confirm({
    message: "Read each upstream's interfaces over SSH too (read-only), to pick from them?",
    default: proxyFacts !== undefined,
  });
  d.upstreams = [];
  if (how === 'range') await upstreamRange(io, state, readUpstreams);
  else await upstreamsOneByOne(io, state, readUpstreams);

  // ------------------------------------------------------------------------------- masquerade
  if (masqueradeApplies(mode)) {
    say('');
    d.proxy.masquerade = await ask.confirm({
      message: `Masquerade: let the upstreams reach external hosts through the proxy (ip_forward + MASQUERADE on ${d.proxy.public_interface})?`,
      default: false,
    });
  }

  // ------------------------------------------------------------------------------- warnings
  const warnings = networkWarnings({
    mode,
    clientNetworks: d.service.client_networks ?? [],
    proxy: { ...d.proxy, ...(proxyFacts ? { facts: proxyFacts } : {}) },
    upstreams: d.upstreams.map((u) => ({ name: u.name!, ip: u.ip!, ...(u.interface ? { interface: u.interface } : {}), ...(state.facts.get(u.name!) ? { facts: state.facts.get(u.name!)! } : {}) })),
  });
  if (warnings.length) {
    say('');
    say("Warnings (the guide's Troubleshooting):");
    for (const w of warnings) say(`  ! ${w}`);
  }

  // ------------------------------------------------------------------------------- verification
  say('');
  say('Verification after apply (a failing check rolls every host back).');
  if (dsr) say('DSR needs active health checks: dsrctl queries each upstream directly from the proxy after apply.');
  const pings = listAnswer(
    await ask.input({
      message: `Addresses every upstream must reach after apply (ping; comma separated, empty for none)${d.proxy.masquerade ? '' : '; external ones need masquerade'}?`,
      default: '',
      validate: validator(draft, ['verify', 'ping_targets'], (s) => listAnswer(s)),
    }),
  );
  d.verify = { ping_targets: pings };
  // udp/53 is checked as DNS by default; any other UDP port only when the user says it speaks DNS
  if (protocol === 'udp' && d.service.upstream_port !== 53) {
    const speaksDns = await ask.confirm({ message: `Does the UDP service on port ${d.service.upstream_port} speak DNS (then dsrctl checks each upstream with a DNS query; otherwise it has no check for it)?`, default: false });
    d.verify.check = speaksDns ? 'dns' : 'none';
  }
  const kindDefault = protocol === 'udp' ? 'dns' : 'http';
  if (dsr) say('Only a host that plays the remote client can prove the DSR path end to end (the proxy cannot ask itself through DSR); without one, plan and verify say the path is unproven.');
  const wantProbe = await ask.confirm({
    message: `Is there a host that plays the remote client (reached over SSH; it sends ${kindDefault === 'dns' ? 'DNS queries' : 'HTTP requests'} to ${d.proxy.public_ip}:${d.service.listen_port})?`,
    default: false,
  });
  if (wantProbe) {
    d.verify.probe = {};
    d.verify.probe.ssh_host = (
      await ask.input({ message: "Remote client's SSH address?", validate: validator(draft, ['verify', 'probe', 'ssh_host']) })
    ).trim();
    let kind: 'http' | 'dns' = kindDefault;
    if (protocol === 'tcp')
      kind = await ask.select<'http' | 'dns'>({
        message: 'What does the TCP service speak, for the probe?',
        choices: [
          { value: 'http', name: 'HTTP', description: 'curl through the proxy' },
          { value: 'dns', name: 'DNS over TCP', description: 'dig through the proxy' },
        ],
      });
    if (protocol === 'tcp') d.verify.probe.kind = kind;
    if (kind === 'http') {
      const src = (
        await ask.input({
          message: "The remote client's own address, as the upstreams must see it (empty: only check that requests succeed)?",
          default: '',
          validate: validator(draft, ['verify', 'probe', 'expect_source'], (s) => s.trim() || undefined),
        })
      ).trim();
      if (src) d.verify.probe.expect_source = src;
    } else {
      const name = (
        await ask.input({
          message: 'A name the upstreams must really answer, to query through the proxy (empty: ". SOA", any response code counts)?',
          default: '',
          validate: validator(draft, ['verify', 'probe', 'dns_query'], (s) => s.trim() || undefined),
        })
      ).trim();
      if (name) d.verify.probe.dns_query = name;
    }
  }

  // ------------------------------------------------------------------------------- write
  const final = pruneDraft(d);
  try {
    validateInventory(final, 'the new inventory');
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    say(e.message);
    say('Nothing was written.');
    return 2;
  }
  const secretVars = Object.keys(state.secrets);
  const factsFrom = ['proxy', ...d.upstreams.map((u) => u.name!)].filter((n) => state.facts.has(n));

  let path = opts.output ? resolve(io.cwd, expandHome(opts.output)) : undefined;
  const suggested = `inventory/${suggestName(proxyFacts ? state.factsHostnames.get('proxy') : undefined, mode)}.yaml`;
  const render = (p: string) =>
    renderInventory(final, { path: displayPath(io.cwd, p), secretVars, ...(factsFrom.length ? { factsFrom } : {}), ...(io.date ? { date: io.date } : {}) });
  say('');
  say('The inventory:');
  say('');
  say(indent(render(path ?? resolve(io.cwd, suggested))));
  for (;;) {
    if (!path) {
      const answer = (
        await ask.input({ message: 'Save it as?', default: suggested, validate: (s) => checkTargetPath(resolve(io.cwd, expandHome(s.trim() || suggested))) })
      ).trim();
      path = resolve(io.cwd, expandHome(answer || suggested));
    }
    if (existsSync(path)) {
      const overwrite = await ask.confirm({ message: `${displayPath(io.cwd, path)} exists. Overwrite it?`, default: false });
      if (!overwrite) {
        const other = (
          await ask.input({
            message: 'Save under another name (empty: quit without saving)?',
            default: '',
            validate: (s) => (s.trim() === '' ? true : checkTargetPath(resolve(io.cwd, expandHome(s.trim())))),
          })
        ).trim();
        if (!other) {
          say(`Nothing was written; ${displayPath(io.cwd, path)} is unchanged.`);
          return 0;
        }
        path = resolve(io.cwd, expandHome(other));
        continue;
      }
    }
    break;
  }
  writeAtomic(path, render(path));
  state.saved = path;
  const shown = displayPath(io.cwd, path);
  say('');
  say(`Wrote ${shown}.`);
  for (const v of secretVars)
    say(`  It refers to \${${v}}: put ${v}=<the value> in .env (see .env.example) or the environment; the wizard wrote it nowhere.`);
  say(`  Look first: dsrctl plan -i ${shown}   then: dsrctl apply -i ${shown}`);

  // ------------------------------------------------------------------------------- plan / apply
  let code = 0;
  if (io.runPlan && (await ask.confirm({ message: `Run dsrctl plan -i ${shown} now (read-only)?`, default: true }))) {
    code = await io.runPlan(path, state.secrets);
    if (code !== 0) {
      say(`plan exited with ${code}; fix what it says, then run dsrctl plan -i ${shown} again.`);
      return code;
    }
  }
  if (io.runApply && (await ask.confirm({ message: `Run dsrctl apply -i ${shown} now (changes the hosts; it shows the plan and asks first)?`, default: false })))
    code = await io.runApply(path, state.secrets);
  return code;
}

export function newState(): WizardState {
  return { draft: {}, secrets: {}, facts: new Map(), factsHostnames: new Map() };
}

// ---------------------------------------------------------------------------------------------

function validator(draft: () => Draft, path: Path, parse: (s: string) => unknown = (s) => s.trim()): Validate {
  return (s: string) => validateAt(draft(), path, parse(s));
}

function expandHome(p: string): string {
  return p === '~' ? homedir() : p.startsWith('~/') ? join(homedir(), p.slice(2)) : p;
}

function displayPath(cwd: string, p: string): string {
  const rel = relative(cwd, p);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : p;
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

function suggestName(hostname: string | undefined, mode: Mode): string {
  const h = hostname?.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '');
  return h ? `${h}-${mode}` : mode;
}

function checkTargetPath(p: string): true | string {
  if (existsSync(p) && statSync(p).isDirectory()) return `${p} is a directory`;
  let dir = dirname(p);
  while (!existsSync(dir)) dir = dirname(dir);
  if (!statSync(dir).isDirectory()) return `${dir} is not a directory`;
  return true;
}

/** Write through a temp file in the same directory and rename: a reader never sees half a file. */
export function writeAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, text, { mode: 0o644, flag: 'wx' });
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* not there */
    }
    throw e;
  }
}

/** Pick from what the facts show, or type it; either way the schema checks it. */
async function pickOrType(
  io: WizardIo,
  draft: () => Draft,
  path: Path,
  message: string,
  choices: Choice<string>[],
  def?: string,
  more?: (value: string) => true | string,
): Promise<string> {
  const schema = validator(draft, path);
  const check = (s: string) => {
    const r = schema(s);
    return r === true && more ? more(s.trim()) : r;
  };
  for (;;) {
    let value: string;
    if (choices.length) {
      value = await io.ask.select<string>({
        message,
        choices: [...choices, { value: OTHER, name: 'type another' }],
        ...(def && choices.some((c) => c.value === def) ? { default: def } : {}),
      });
      if (value === OTHER) value = (await io.ask.input({ message, validate: check })).trim();
    } else value = (await io.ask.input({ message, ...(def ? { default: def } : {}), validate: check })).trim();
    const ok = check(value);
    if (ok === true) return value;
    io.say(`  ${ok}`); // a picked choice the schema refuses (e.g. the public address again)
  }
}

// ------------------------------------------------------------------------------- SSH access

type SshField = 'user' | 'port' | 'auth' | 'known_hosts';

async function askSsh(io: WizardIo, state: WizardState): Promise<SshDraft> {
  state.draft.ssh = {};
  for (const f of ['user', 'port', 'auth', 'known_hosts'] as const) await askSshField(io, state, f);
  return state.draft.ssh;
}

/** Where the built-in lab keeps its key and known_hosts, and the labs up on this machine. */
function labHint(io: WizardIo): string[] {
  const root = io.labRoot ?? LAB_ROOT;
  let up: string[] = [];
  try {
    up = readdirSync(root).filter((p) => existsSync(join(root, p, 'id_ed25519')) && existsSync(join(root, p, 'known_hosts')));
  } catch {
    /* no lab here */
  }
  return [
    `  The built-in lab (dsrctl lab up) keeps its key in ${root}/<prefix>/id_ed25519 and its known_hosts in ${root}/<prefix>/known_hosts (prefix dsr unless DSR_LAB_PREFIX says otherwise).`,
    ...(up.length ? [`  Labs on this machine: ${up.slice(0, 4).map((p) => join(root, p, 'id_ed25519')).join(', ')}${up.length > 4 ? ', ...' : ''}`] : []),
  ];
}

/** One SSH answer, asked (again). Each is checked as it is typed: the key parses, the file exists. */
async function askSshField(io: WizardIo, state: WizardState, field: SshField): Promise<void> {
  const { ask, say } = io;
  const d = state.draft;
  const ssh = d.ssh!;
  const draft = () => d;
  if (field === 'user') {
    ssh.user = (await ask.input({ message: 'SSH user?', default: ssh.user ?? 'root', validate: validator(draft, ['ssh', 'user']) })).trim();
    return;
  }
  if (field === 'port') {
    ssh.port = portAnswer(await ask.input({ message: 'SSH port?', default: String(ssh.port ?? 22), validate: validator(draft, ['ssh', 'port'], portAnswer) })) as number;
    return;
  }
  if (field === 'known_hosts') {
    await askKnownHosts(io, state);
    return;
  }
  for (const k of ['private_key', 'passphrase', 'agent', 'password'] as const) delete ssh[k];
  delete state.secrets[SECRET.password];
  delete state.secrets[SECRET.passphrase];
  const agentSock = io.env.SSH_AUTH_SOCK;
  const auth = await ask.select<'key' | 'agent' | 'password'>({
    message: 'How does dsrctl log in?',
    choices: [
      { value: 'key', name: 'a private key file' },
      { value: 'agent', name: 'ssh-agent', description: agentSock ? `SSH_AUTH_SOCK=${agentSock}` : 'SSH_AUTH_SOCK is not set in this shell' },
      { value: 'password', name: 'a password', description: 'written to the inventory as ${DSRCTL_SSH_PASSWORD}: the value goes in .env' },
    ],
  });
  if (auth === 'key') {
    for (const l of labHint(io)) say(l);
    const def = ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((k) => join(homedir(), '.ssh', k)).find((p) => existsSync(p));
    const keyPath = (s: string) => {
      const t = s.trim();
      return t.includes('${') ? t : resolve(io.cwd, expandHome(t));
    };
    const raw = await ask.input({
      message: 'Private key file (a path, or a ${VAR} from .env)?',
      ...(def ? { default: def } : {}),
      validate: (s) => {
        const schema = validateAt(d, ['ssh', 'private_key'], keyPath(s) || undefined);
        if (schema !== true) return schema;
        const key = readKey(expand(io, state, keyPath(s)));
        return typeof key === 'string' ? key : true;
      },
    });
    ssh.private_key = keyPath(raw);
    const key = readKey(expand(io, state, ssh.private_key)) as Buffer;
    const parsed = ssh2.utils.parseKey(key);
    if (parsed instanceof Error && /passphrase|encrypted/i.test(parsed.message)) {
      say('The key is encrypted.');
      const pass = await ask.password({
        message: 'Its passphrase (used now to connect; the file gets ${DSRCTL_SSH_PASSPHRASE})?',
        validate: (s) => (ssh2.utils.parseKey(key, s) instanceof Error ? 'this passphrase does not decrypt the key' : true),
      });
      state.secrets[SECRET.passphrase] = pass;
      ssh.passphrase = `\${${SECRET.passphrase}}`;
    }
  } else if (auth === 'agent') {
    const sock = (
      await ask.input({
        message: 'ssh-agent socket (the default writes ${SSH_AUTH_SOCK}, read when dsrctl runs)?',
        default: agentSock ? '${SSH_AUTH_SOCK}' : '',
        validate: (s) => (s.trim() ? validateAt(d, ['ssh', 'agent'], s.trim()) : 'start ssh-agent (or give the socket path)'),
      })
    ).trim();
    ssh.agent = sock;
  } else {
    const pw = await ask.password({ message: 'SSH password (used now to connect; the file gets ${DSRCTL_SSH_PASSWORD})?', validate: (s) => (s ? true : 'type the password') });
    state.secrets[SECRET.password] = pw;
    ssh.password = `\${${SECRET.password}}`;
  }
}

/**
 * known_hosts: a file that exists (checked as typed), or, with an empty answer, a file the wizard
 * records each host's key in once the user has confirmed its SHA256 fingerprint.
 */
async function askKnownHosts(io: WizardIo, state: WizardState): Promise<void> {
  const d = state.draft;
  const ssh = d.ssh!;
  const kh = (
    await io.ask.input({
      message: "known_hosts file with the hosts' keys (dsrctl never accepts an unknown host key; empty: record them in a new file after you confirm each key's fingerprint)?",
      ...(ssh.known_hosts && !state.recordKeys ? { default: ssh.known_hosts } : {}),
      validate: (s) => {
        if (!s.trim()) return true;
        const p = resolveMaybeVar(io, s);
        const schema = validateAt(d, ['ssh', 'known_hosts'], p);
        if (schema !== true) return schema;
        return existingFile(expand(io, state, p), 'leave the answer empty to record the hosts\' keys in a new file');
      },
    })
  ).trim();
  if (kh) {
    ssh.known_hosts = resolveMaybeVar(io, kh);
    state.recordKeys = false;
    return;
  }
  const rec = (
    await io.ask.input({
      message: "File to record the hosts' keys in (written only when you confirm a key)?",
      default: join(io.cwd, 'inventory', 'known_hosts'),
      validate: (s) => {
        const p = resolve(io.cwd, expandHome(s.trim()));
        const schema = validateAt(d, ['ssh', 'known_hosts'], p);
        if (schema !== true) return schema;
        return existsSync(p) ? existingFile(p, '') : checkTargetPath(p);
      },
    })
  ).trim();
  ssh.known_hosts = resolve(io.cwd, expandHome(rec));
  state.recordKeys = true;
}

/** true, or why `p` is not a readable regular file. */
function existingFile(p: string, orElse: string): true | string {
  if (!p) return 'the variable is not set (in the environment or .env)';
  let st;
  try {
    st = statSync(p);
  } catch {
    return `${p} does not exist${orElse ? `: give the file that holds the hosts' keys, or ${orElse}` : ''}`;
  }
  return st.isFile() ? true : `${p} is not a regular file`;
}

function resolveMaybeVar(io: WizardIo, s: string): string {
  const t = s.trim();
  return t.includes('${') ? t : resolve(io.cwd, expandHome(t));
}

/** ${VAR} expanded with the environment and this session's secrets; '' when a variable is unset. */
function expand(io: WizardIo, state: WizardState, s: string): string {
  try {
    return expandVars(s, { ...io.env, ...state.secrets }) as string;
  } catch {
    return '';
  }
}

function readKey(path: string): Buffer | string {
  if (!path) return 'the variable is not set (in the environment or .env)';
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? `${path} does not exist` : `${path} cannot be read: ${(e as Error).message}`;
  }
  const parsed = ssh2.utils.parseKey(buf);
  if (parsed instanceof Error && !/passphrase|encrypted/i.test(parsed.message)) return `${path} is not a private key dsrctl can use: ${parsed.message}`;
  return publicKeyProblem(parsed, path) ?? buf;
}

// ------------------------------------------------------------------------------- facts

function targetFor(io: WizardIo, state: WizardState, name: string, host: string): ConnectTarget {
  const ssh = expandVars(pruneDraft(state.draft.ssh ?? {}), { ...io.env, ...state.secrets }) as SshOptions;
  return connectTarget(name, host, ssh, undefined, name === 'proxy' ? 'proxy.ssh' : `${name}.ssh`);
}

/** Print a host's interfaces the way the questions will offer them. */
function showHost(io: WizardIo, name: string, facts: HostFacts, net: HostNet): void {
  io.say(`  ${name}: ${facts.hostname}, kernel ${facts.kernel}, nginx ${facts.nginx.installed ? facts.nginx.version ?? 'installed' : 'not installed'}`);
  for (const i of net.interfaces)
    io.say(`    ${i.name.padEnd(10)} ${i.state.padEnd(7)} ${i.addresses.map((a) => `${a.address}/${a.prefixlen}`).join(', ') || '-'}${net.rpFilter[i.name] !== undefined ? `  rp_filter=${net.rpFilter[i.name]}` : ''}`);
  io.say(`    rp_filter: all=${net.rpFilter.all ?? '?'} default=${net.rpFilter.default ?? '?'}${net.defaultDev ? `; default route via ${net.defaultDev}` : ''}`);
}

/** What to tell the user when a host's key is not (or not correctly) in known_hosts. */
export function hostKeyAdvice(e: HostKeyError, host: string, port: number, knownHosts = e.knownHostsPath): string[] {
  const type = keyFileType(e.keyType);
  const kh = knownHosts;
  if (e.reason !== 'unknown')
    return [
      `  ${e.message}`,
      `  The key ${host} presents: ${e.fingerprint} (${e.keyType}). Find out why it changed before anything else.`,
    ];
  return [
    `  ${host}'s host key is not in ${kh}. It presents ${e.fingerprint} (${e.keyType}).`,
    '  dsrctl never adds a host key by itself. Check it, then add it:',
    // a private temp file: a predictable /tmp name could be planted by another user beforehand
    '    key=$(mktemp)',
    `    ssh-keyscan -p ${port} -t ${type} ${host} > "$key"`,
    `    ssh-keygen -lf "$key"          # must print ${e.fingerprint}; compare with the host's`,
    `                                   # console: ssh-keygen -lf /etc/ssh/ssh_host_${type}_key.pub`,
    `    cat "$key" >> ${kh} && rm -f "$key"`,
  ];
}

const keyFileType = (t: string) => t.replace(/^ssh-/, '').replace(/^ecdsa-sha2-.*/, 'ecdsa');

/**
 * An unknown host key: offer to record it in the known_hosts file of the answers, once the user
 * says it is the fingerprint the host itself shows. Returns whether it was recorded.
 */
async function offerRecord(io: WizardIo, state: WizardState, host: string, e: HostKeyError): Promise<boolean> {
  if (e.reason !== 'unknown' || !e.knownHostsLine) return false;
  const kh = expand(io, state, state.draft.ssh?.known_hosts ?? '');
  if (!kh) return false;
  io.say(`  The wizard can record it in ${kh}: say yes only if ${host} itself shows this fingerprint`);
  io.say(`  (on its console: ssh-keygen -lf /etc/ssh/ssh_host_${keyFileType(e.keyType)}_key.pub).`);
  const ok = await io.ask.confirm({ message: `Record ${host}'s host key ${e.fingerprint}?`, default: false });
  if (!ok) return false;
  mkdirSync(dirname(kh), { recursive: true });
  const text = existsSync(kh) ? readFileSync(kh, 'utf8') : '';
  appendFileSync(kh, `${text && !text.endsWith('\n') ? '\n' : ''}${e.knownHostsLine}\n`, { mode: 0o600 });
  io.say(`  Recorded ${host}'s key in ${kh}.`);
  return true;
}

type Next = 'retry' | 'skip' | 'host' | SshField;

/** After a failed connect: try again, change one answer (then try again), or go on without facts. */
function nextChoices(state: WizardState, hostKey: boolean, host?: string): Choice<Next>[] {
  const ssh = state.draft.ssh ?? {};
  const login = ssh.private_key ? `key ${ssh.private_key}` : ssh.agent ? 'ssh-agent' : 'a password';
  return [
    { value: 'retry', name: 'try again', description: hostKey ? 'after adding the host key to known_hosts' : 'after fixing the problem' },
    ...(host ? [{ value: 'host' as const, name: `change the SSH address (${host})` }] : []),
    { value: 'user', name: `change the SSH user (${ssh.user ?? 'root'})` },
    { value: 'port', name: `change the SSH port (${ssh.port ?? 22})` },
    { value: 'auth', name: `change how dsrctl logs in (${login})` },
    { value: 'known_hosts', name: `change the known_hosts file (${ssh.known_hosts ?? '-'})` },
    { value: 'skip', name: 'go on without facts', description: 'type the interfaces and addresses' },
  ];
}

/**
 * Offer to connect and read facts; returns the host's network view, or undefined when the user
 * declines or gives up. `offer` false: the user already said yes for this group of hosts.
 * `address`: where this host's SSH address lives in the answers, so that it can be changed.
 */
async function offerFacts(
  io: WizardIo,
  state: WizardState,
  name: string,
  host: string,
  offer: boolean,
  address?: { path: Path; set(h: string): void },
): Promise<HostNet | undefined> {
  const ssh = state.draft.ssh ?? {};
  const who = `${ssh.user ?? 'root'}@${host}:${ssh.port ?? 22}`;
  if (offer && !(await io.ask.confirm({ message: `Connect to ${who} now and read its interfaces and addresses (read-only)?`, default: true }))) return undefined;
  for (;;) {
    const r = await readOne(io, state, name, host);
    if (r.ok) {
      showHost(io, name, r.facts, r.net);
      return r.net;
    }
    for (const l of r.lines) io.say(l);
    if (r.hostKey && (await offerRecord(io, state, host, r.hostKey))) continue;
    const next = await io.ask.select<Next>({ message: `${name}: what now?`, choices: nextChoices(state, !!r.hostKey, address ? host : undefined) });
    if (next === 'skip') return undefined;
    if (next === 'host' && address) {
      host = (await io.ask.input({ message: `${name}: SSH address?`, default: host, validate: validator(() => state.draft, address.path) })).trim();
      address.set(host);
    } else if (next !== 'retry' && next !== 'host') await askSshField(io, state, next);
  }
}

type ReadResult = { ok: true; facts: HostFacts; net: HostNet } | { ok: false; lines: string[]; hostKey?: HostKeyError };

async function readOne(io: WizardIo, state: WizardState, name: string, host: string): Promise<ReadResult> {
  let target: ConnectTarget;
  try {
    target = targetFor(io, state, name, host);
  } catch (e) {
    return { ok: false, lines: [`  ${(e as Error).message}`] };
  }
  const knownHosts = target.knownHosts;
  // a file to record keys in that has none yet: every key is unknown, so each can be offered
  if (state.recordKeys && !existsSync(knownHosts)) target = { ...target, knownHosts: '/dev/null' };
  io.say(`  ${name}: connecting to ${target.user}@${host}:${target.port} ...`);
  try {
    const facts = await io.readFacts(target);
    const net = hostNet(name, facts);
    state.facts.set(name, net);
    state.factsHostnames.set(name, facts.hostname);
    if (name === 'proxy') state.proxyFacts = facts;
    return { ok: true, facts, net };
  } catch (e) {
    if (e instanceof HostKeyError) return { ok: false, lines: hostKeyAdvice(e, host, target.port, knownHosts), hostKey: e };
    const msg = e instanceof SshError ? e.message : `${name}: ${(e as Error).message}`;
    return { ok: false, lines: [`  ${msg}`] };
  }
}

// ------------------------------------------------------------------------------- the service port

/**
 * nginx servers already on the service's port (from the proxy's nginx -T): named with file:line,
 * and offered as the file dsrctl manages (a regular file holding all of them: backed up, replaced,
 * restored byte for byte on rollback) or taken over (proxy.take_over_port: their sites-enabled
 * links are removed and put back on rollback). Returns the default for the managed file question.
 */
async function offerServerOnPort(io: WizardIo, state: WizardState, protocol: Protocol): Promise<string> {
  const d = state.draft;
  const def = defaultManagedConfig(protocol);
  const cfg = state.proxyFacts?.nginxConfig;
  if (cfg?.status !== 'ok' || !d.proxy?.public_ip || !d.service?.listen_port) return def;
  const inv = { service: { protocol, listen_port: d.service.listen_port }, proxy: { public_ip: d.proxy.public_ip, managed_config: def } } as unknown as Inventory;
  let found: ServiceConflicts;
  try {
    found = serviceConflicts(inv, cfg.dump, cfg.links);
  } catch {
    return def; // plan reads nginx -T again and says what is wrong with it
  }
  if (!found.conflicts.length) return def;
  io.say('');
  io.say(`On the proxy, ${found.head}`);
  for (const c of found.conflicts) io.say(`  ${describeConflict(c)}`);
  const files = [...new Set(found.conflicts.map((c) => c.listen.serverFile))];
  const own = files.length === 1 && !cfg.links[files[0]!] && found.conflicts.every((c) => c.listen.serverInclude) ? files[0] : undefined;
  const canTake = found.takeOver.sites.length > 0 && found.takeOver.refused.length === 0;
  const choices: Choice<'manage' | 'take' | 'keep'>[] = [
    ...(own ? [{ value: 'manage' as const, name: `let dsrctl manage ${own}`, description: 'it is backed up and replaced by dsrctl\'s server; rollback restores it byte for byte' }] : []),
    ...(canTake ? [{ value: 'take' as const, name: `take over the port: disable ${found.takeOver.sites.map((x) => x.link).join(', ')}`, description: 'proxy.take_over_port: true; rollback puts the links back' }] : []),
    { value: 'keep', name: `keep ${def}; I will free the port myself`, description: 'plan refuses until no other server answers on the port' },
  ];
  const pick = await io.ask.select({ message: `Port ${d.service.listen_port} is taken on the proxy: what should dsrctl do?`, choices });
  if (pick === 'manage') return own!;
  if (pick === 'take') d.proxy.take_over_port = true;
  return def;
}

/** Why an upstream address cannot be reached from the proxy's private interface, per its facts. */
function outsidePrivate(state: WizardState, ip: string): true | string {
  const iface = state.draft.proxy?.private_interface;
  const f = state.proxyFacts;
  if (!f || !iface || !f.interfaces.some((i) => i.name === iface)) return true;
  const nets = connectedNetworks(f, iface);
  if (insideAny(ip, nets)) return true;
  return `${ip} is not on the proxy's private network: ${iface} has ${nets.length ? nets.join(', ') : 'no IPv4 network'} (the proxy reaches the upstreams only there)`;
}

// ------------------------------------------------------------------------------- upstreams

async function upstreamRange(io: WizardIo, state: WizardState, readFacts: boolean): Promise<void> {
  const { ask, say } = io;
  const d = state.draft;
  const ups = d.upstreams!;
  const ipText = await ask.input({
    message: "Upstream addresses on the proxy's private network (range: 172.16.0.11-14 or 172.16.0.11-172.16.0.14)?",
    validate: (s) => {
      const r = parseRange(s);
      if (!r.ok) return r.error;
      const each = checkEach(d, r.addresses.map((ip, i) => [['upstreams', i, 'ip'], ip] as const), (i) => ({ ip: r.addresses[i] }));
      if (each !== true) return each;
      for (const ip of r.addresses) {
        const out = outsidePrivate(state, ip);
        if (out !== true) return out;
      }
      return true;
    },
  });
  const ips = (parseRange(ipText) as { addresses: string[] }).addresses;
  const prefix = (
    await ask.input({
      message: `Name prefix (they become ${rangeNames('dev', Math.min(ips.length, 2)).join(', ')}${ips.length > 2 ? ', ...' : ''} with "dev")?`,
      default: 'dev',
      validate: (s) => {
        const names = rangeNames(s.trim(), ips.length);
        return checkEach(d, names.map((n, i) => [['upstreams', i, 'name'], n] as const), (i) => ({ ip: ips[i]! }));
      },
    })
  ).trim();
  const names = rangeNames(prefix, ips.length);
  ips.forEach((ip, i) => ups.push({ name: names[i]!, ip }));
  const sshHow = await ask.select<'same' | 'range'>({
    message: 'Where does SSH reach them?',
    choices: [
      { value: 'same', name: 'at these addresses' },
      { value: 'range', name: 'at other addresses (a management network)', description: 'another range of the same size' },
    ],
  });
  let sshHosts = ips;
  if (sshHow === 'range') {
    const t = await ask.input({
      message: `Their SSH addresses, in the same order (${ips.length})?`,
      validate: (s) => {
        const r = parseRange(s);
        if (!r.ok) return r.error;
        if (r.addresses.length !== ips.length) return `${r.addresses.length} addresses for ${ips.length} upstreams`;
        return checkEach(d, r.addresses.map((h, i) => [['upstreams', i, 'ssh_host'], h] as const));
      },
    });
    sshHosts = (parseRange(t) as { addresses: string[] }).addresses;
  }
  ups.forEach((u, i) => (u.ssh_host = sshHosts[i]!));

  // facts: all at once, then one interface question for all
  if (readFacts) await readMany(io, state, ups.map((u) => ({ name: u.name!, host: u.ssh_host! })));
  const holders = ups.map((u) => {
    const f = state.facts.get(u.name!);
    return f ? interfaceOf(f, u.ip!)?.name : undefined;
  });
  const known = [...new Set(holders.filter((h): h is string => !!h))];
  const required = d.mode === 'dsr-origin-nat';
  const msg = `Their interface on the private network (egress${required ? ', where origin NAT rewrites replies' : '; optional'})?`;
  const check = (s: string) =>
    checkEach(d, ups.map((_, i) => [['upstreams', i, 'interface'], s.trim() || undefined] as const));
  let iface: string;
  if (known.length) {
    const choices: Choice<string>[] = known.map((k) => ({ value: k, name: k, description: `holds the address on ${ups.filter((_, i) => holders[i] === k).map((u) => u.name).join(', ')}` }));
    if (!required) choices.push({ value: '', name: '(leave out)' });
    iface = await ask.select<string>({ message: msg, choices: [...choices, { value: OTHER, name: 'type another' }] });
    if (iface === OTHER) iface = (await ask.input({ message: msg, validate: check })).trim();
    if (known.length > 1) say(`  Note: the addresses sit on different interfaces (${known.join(', ')}); edit the file for the hosts that differ.`);
  } else iface = (await ask.input({ message: msg, validate: check })).trim();
  if (iface) ups.forEach((u) => (u.interface = iface));
}

/** validateAt for several fields at once (a range); `partial` fills the upstream being checked. */
function checkEach(d: Draft, items: readonly (readonly [Path, unknown])[], partial?: (i: number) => UpstreamDraft): true | string {
  const saved = d.upstreams;
  try {
    const ups: UpstreamDraft[] = [...(saved ?? [])];
    const probe: Draft = { ...d, upstreams: ups };
    for (const [path, value] of items) {
      const i = path[1] as number;
      if (!ups[i]) ups[i] = partial ? partial(i) : {};
      const r = validateAt(probe, path, value);
      if (r !== true) return r;
      ups[i] = { ...ups[i], [path[2] as string]: value };
    }
    return true;
  } finally {
    d.upstreams = saved;
  }
}

async function readMany(io: WizardIo, state: WizardState, hosts: { name: string; host: string }[]): Promise<void> {
  let todo = hosts;
  for (;;) {
    const results = await Promise.all(todo.map(async (h) => ({ h, r: await readOne(io, state, h.name, h.host) })));
    for (const { h, r } of results) {
      if (r.ok) showHost(io, h.name, r.facts, r.net);
      else for (const l of r.lines) io.say(l);
    }
    const failed = results.filter((x) => !x.r.ok);
    todo = failed.map((x) => x.h);
    if (!todo.length) return;
    // unknown keys the user confirms are recorded; when every failure was one, try again at once
    let recorded = 0;
    for (const { h, r } of failed) if (!r.ok && r.hostKey && (await offerRecord(io, state, h.host, r.hostKey))) recorded++;
    if (recorded === failed.length) continue;
    const next = await io.ask.select<Next>({ message: `${todo.map((h) => h.name).join(', ')}: what now?`, choices: nextChoices(state, failed.some((x) => !x.r.ok && x.r.hostKey)) });
    if (next === 'skip') return;
    if (next !== 'retry' && next !== 'host') await askSshField(io, state, next);
  }
}

async function upstreamsOneByOne(io: WizardIo, state: WizardState, readFacts: boolean): Promise<void> {
  const { ask } = io;
  const d = state.draft;
  const ups = d.upstreams!;
  const draft = () => d;
  for (let i = 0; ; i++) {
    const u: UpstreamDraft = {};
    ups.push(u);
    u.name = (await ask.input({ message: `Upstream ${i + 1}: name?`, default: `dev${i + 1}`, validate: validator(draft, ['upstreams', i, 'name']) })).trim();
    u.ssh_host = (await ask.input({ message: `${u.name}: SSH address?`, validate: validator(draft, ['upstreams', i, 'ssh_host']) })).trim();
    const facts = readFacts ? await offerFacts(io, state, u.name, u.ssh_host, false, { path: ['upstreams', i, 'ssh_host'], set: (h) => (u.ssh_host = h) }) : undefined;
    const addrs = (facts?.interfaces ?? []).flatMap((f) =>
      f.addresses.filter((a) => a.address !== u.ssh_host).map((a) => ({ value: a.address, short: a.address, name: `${a.address}/${a.prefixlen} on ${f.name}` })),
    );
    u.ip = await pickOrType(io, draft, ['upstreams', i, 'ip'], `${u.name}: its address on the proxy's private network (what nginx proxies to)?`, addrs, undefined, (v) => outsidePrivate(state, v));
    const holder = facts ? interfaceOf(facts, u.ip)?.name : undefined;
    const required = d.mode === 'dsr-origin-nat';
    const ifMsg = `${u.name}: interface on the private network${required ? ' (origin NAT rewrites replies there)' : ' (optional)'}?`;
    const ifs = (facts?.interfaces ?? []).map((f) => ({ value: f.name, short: f.name, name: `${f.name.padEnd(10)} ${f.addresses.map((a) => `${a.address}/${a.prefixlen}`).join(', ')}` }));
    if (ifs.length) {
      const check = validator(draft, ['upstreams', i, 'interface'], (s) => s.trim() || undefined);
      for (;;) {
        let v = await ask.select<string>({
          message: ifMsg,
          choices: [...ifs, ...(required ? [] : [{ value: '', name: '(leave out)' }]), { value: OTHER, name: 'type another' }],
          ...(holder ? { default: holder } : {}),
        });
        if (v === OTHER) v = (await ask.input({ message: ifMsg, validate: check })).trim();
        const ok = check(v);
        if (ok === true) {
          if (v) u.interface = v;
          break;
        }
        io.say(`  ${ok}`);
      }
    } else {
      const v = (
        await ask.input({ message: ifMsg, validate: validator(draft, ['upstreams', i, 'interface'], (s) => s.trim() || undefined) })
      ).trim();
      if (v) u.interface = v;
    }
    if (!(await ask.confirm({ message: 'Add another upstream?', default: false }))) return;
  }
}

