/** Reading hosts during the wizard: connect, show what was found, host keys, what to do after a failure. */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { HostFacts } from '../facts/types.js';
import { expandVars } from '../inventory/load.js';
import type { SshOptions } from '../inventory/schema.js';
import { HostKeyError, SshError } from '../ssh/errors.js';
import { connectTarget } from '../ssh/targets.js';
import type { ConnectTarget } from '../ssh/types.js';
import { hostNet, type HostNet } from './overlap.js';
import { pruneDraft, type Choice, type Path } from './questions.js';
import type { WizardIo, WizardState } from './state.js';
import { validator } from './util.js';
import { askSshField, expand, type SshField } from './ssh-answers.js';

// ------------------------------------------------------------------------------- facts

export function targetFor(io: WizardIo, state: WizardState, name: string, host: string): ConnectTarget {
  const ssh = expandVars(pruneDraft(state.draft.ssh ?? {}), { ...io.env, ...state.secrets }) as SshOptions;
  return connectTarget(name, host, ssh, undefined, name === 'proxy' ? 'proxy.ssh' : `${name}.ssh`);
}

/** Print a host's interfaces the way the questions will offer them. */
export function showHost(io: WizardIo, name: string, facts: HostFacts, net: HostNet): void {
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

export const keyFileType = (t: string) => t.replace(/^ssh-/, '').replace(/^ecdsa-sha2-.*/, 'ecdsa');

/**
 * An unknown host key: offer to record it in the known_hosts file of the answers, once the user
 * says it is the fingerprint the host itself shows. Returns whether it was recorded.
 */
export async function offerRecord(io: WizardIo, state: WizardState, host: string, e: HostKeyError): Promise<boolean> {
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

export type Next = 'retry' | 'skip' | 'host' | SshField;

/** After a failed connect: try again, change one answer (then try again), or go on without facts. */
export function nextChoices(state: WizardState, hostKey: boolean, host?: string): Choice<Next>[] {
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
export async function offerFacts(
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

export type ReadResult = { ok: true; facts: HostFacts; net: HostNet } | { ok: false; lines: string[]; hostKey?: HostKeyError };

export async function readOne(io: WizardIo, state: WizardState, name: string, host: string): Promise<ReadResult> {
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
