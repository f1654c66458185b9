/** The wizard's SSH questions: user, port, login, known_hosts, each checked as typed. */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import ssh2 from 'ssh2';
import { expandVars } from '../inventory/load.js';
import { publicKeyProblem } from '../ssh/local-files.js';
import { portAnswer, validateAt, type SshDraft } from './questions.js';
import { LAB_ROOT, SECRET, type WizardIo, type WizardState } from './state.js';
import { checkTargetPath, expandHome, validator } from './util.js';

// ------------------------------------------------------------------------------- SSH access

export type SshField = 'user' | 'port' | 'auth' | 'known_hosts';

export async function askSsh(io: WizardIo, state: WizardState): Promise<SshDraft> {
  state.draft.ssh = {};
  for (const f of ['user', 'port', 'auth', 'known_hosts'] as const) await askSshField(io, state, f);
  return state.draft.ssh;
}

/** Where the built-in lab keeps its key and known_hosts, and the labs up on this machine. */
export function labHint(io: WizardIo): string[] {
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
export async function askSshField(io: WizardIo, state: WizardState, field: SshField): Promise<void> {
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
export async function askKnownHosts(io: WizardIo, state: WizardState): Promise<void> {
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
export function existingFile(p: string, orElse: string): true | string {
  if (!p) return 'the variable is not set (in the environment or .env)';
  let st;
  try {
    st = statSync(p);
  } catch {
    return `${p} does not exist${orElse ? `: give the file that holds the hosts' keys, or ${orElse}` : ''}`;
  }
  return st.isFile() ? true : `${p} is not a regular file`;
}

export function resolveMaybeVar(io: WizardIo, s: string): string {
  const t = s.trim();
  return t.includes('${') ? t : resolve(io.cwd, expandHome(t));
}

/** ${VAR} expanded with the environment and this session's secrets; '' when a variable is unset. */
export function expand(io: WizardIo, state: WizardState, s: string): string {
  try {
    return expandVars(s, { ...io.env, ...state.secrets }) as string;
  } catch {
    return '';
  }
}

export function readKey(path: string): Buffer | string {
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
