/** The upstreams: a range or one by one, each address checked against what the proxy has. */
import { interfaceOf } from './overlap.js';
import { validateAt, type Choice, type Draft, type Path, type UpstreamDraft } from './questions.js';
import { parseRange, rangeNames } from './range.js';
import { OTHER, type WizardIo, type WizardState } from './state.js';
import { pickOrType, validator } from './util.js';
import { askSshField } from './ssh-answers.js';
import { nextChoices, offerFacts, offerRecord, readOne, showHost, type Next } from './read-hosts.js';
import { outsidePrivate } from './service-port.js';

// ------------------------------------------------------------------------------- upstreams

export async function upstreamRange(io: WizardIo, state: WizardState, readFacts: boolean): Promise<void> {
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
export function checkEach(d: Draft, items: readonly (readonly [Path, unknown])[], partial?: (i: number) => UpstreamDraft): true | string {
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

export async function readMany(io: WizardIo, state: WizardState, hosts: { name: string; host: string }[]): Promise<void> {
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

export async function upstreamsOneByOne(io: WizardIo, state: WizardState, readFacts: boolean): Promise<void> {
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
