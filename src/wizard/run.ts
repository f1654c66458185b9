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
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { validateInventory } from '../inventory/load.js';
import { UserError } from '../util/errors.js';
import { networkWarnings, type HostNet } from './overlap.js';
import { METHODS, defaultPorts, listAnswer, masqueradeApplies, methodSummary, methodTable, portAnswer, protocolChoices, pruneDraft, DSR_TCP_REASON, type Mode, type Protocol } from './questions.js';
import { renderInventory } from './render-yaml.js';
import type { WizardIo, WizardState } from './state.js';
import { checkTargetPath, displayPath, expandHome, indent, pickOrType, suggestName, validator, writeAtomic } from './util.js';
import { askSsh } from './ssh-answers.js';
import { offerFacts } from './read-hosts.js';
import { offerServerOnPort } from './service-port.js';
import { upstreamRange, upstreamsOneByOne } from './upstreams.js';

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
  // the default, written out so the file says what a reboot does
  d.persist ??= true;
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

export type { Prompter, WizardIo, WizardState } from './state.js';
export { writeAtomic } from './util.js';
export { hostKeyAdvice } from './read-hosts.js';
