import { z } from 'zod';
import { quote } from 'shell-quote';
import { PlanError, type ResourceKind, type PlanContext } from './types.js';
import type { Change, Step } from '../plan/types.js';
import type { HostFacts } from '../facts/types.js';
import { chooseNatBackend } from './nat-backend.js';
import { unifiedDiff } from './nginx/diff.js';

/**
 * The guide's stateless NAT for DSR: rewrite the source of each upstream's replies (source address
 * and source port = the service) to the proxy's public address, on the egress of one interface.
 * `sources: upstreams` on the proxy (router NAT), `sources: self` on an upstream (origin NAT).
 */
const schema = z.object({
  interface: z.string().regex(/^[A-Za-z0-9_.@-]{1,15}$/),
  sources: z.enum(['upstreams', 'self']),
  /** leave packets to this address alone (origin NAT: the proxy's own health checks get real replies) */
  exclude_dst: z.string().optional(),
});
type Spec = z.infer<typeof schema>;

export interface NatRule {
  name: string;
  src: string;
  sport: number;
  to: string;
  /** rewrite the source port too (nft only) */
  toPort?: number;
  excludeDst?: string;
}

export function natRules(spec: Spec, ctx: PlanContext): NatRule[] {
  const inv = ctx.inventory;
  const ups = spec.sources === 'upstreams' ? inv.upstreams : inv.upstreams.filter((u) => u.name === ctx.host);
  return ups.map((u) => ({
    name: u.name,
    src: u.ip,
    sport: inv.service.upstream_port,
    to: inv.proxy.public_ip,
    toPort: inv.service.listen_port !== inv.service.upstream_port ? inv.service.listen_port : undefined,
    excludeDst: spec.exclude_dst,
  }));
}

// ---- nftables netdev egress ----

export const nftTableName = (iface: string) => `dsrctl_nat_${iface.replace(/[^A-Za-z0-9_]/g, '_')}`;

/** The table exactly as `nft list ruleset` prints it (nft 1.0.6), so facts compare byte for byte. */
export function renderNftTable(iface: string, rules: NatRule[]): string {
  const lines = rules.map((r) => {
    const parts = [`ip saddr ${r.src}`];
    if (r.excludeDst) parts.push(`ip daddr != ${r.excludeDst}`);
    parts.push(`udp sport ${r.sport}`, `ip saddr set ${r.to}`);
    if (r.toPort) parts.push(`udp sport set ${r.toPort}`);
    parts.push(`comment "dsrctl ${r.name}"`);
    return `\t\t${parts.join(' ')}`;
  });
  return [
    `table netdev ${nftTableName(iface)} {`,
    '\tchain egress {',
    `\t\ttype filter hook egress device "${iface}" priority filter; policy accept;`,
    ...lines,
    '\t}',
    '}',
    '',
  ].join('\n');
}

/** nft -f from stdin: the table text travels as base64, whose alphabet needs no quoting beyond '…'. */
export const nftLoad = (text: string, display = `nft -f - <<'EOF' (the table shown below)`): Step => ({
  sh: `printf '%s' '${Buffer.from(text).toString('base64')}' | base64 -d | nft -f /dev/stdin`,
  display,
});

function planNft(spec: Spec, rules: NatRule[], facts: HostFacts): Change | null {
  const name = nftTableName(spec.interface);
  const want = renderNftTable(spec.interface, rules);
  const have = facts.nft.tables[`netdev ${name}`];
  const old = tcLeftover(spec.interface, rules, facts);
  if (have === want && !old) return null;
  const del: Step = { run: ['nft', 'delete', 'table', 'netdev', name] };
  if (have === want && old)
    return { kind: 'stateless-nat', id: `tc nat on ${spec.interface}`, action: 'delete', summary: `remove the tc stateless NAT on ${spec.interface} (the nft backend does it now)`, do: old.do, undo: old.undo };
  return {
    kind: 'stateless-nat',
    id: `nft table netdev ${name}`,
    action: have ? 'update' : 'create',
    summary: `${have ? 'replace' : 'add'} nftables netdev egress NAT on ${spec.interface}: ${rules.map((r) => `${r.src}:${r.sport} -> ${r.to}${r.toPort ? `:${r.toPort}` : ''}`).join(', ')}`,
    diff: unifiedDiff(`nft table netdev ${name}`, have ?? null, want),
    // both backends at once would rewrite twice: an earlier run's tc NAT goes first
    do: [...(old?.do ?? []), ...(have ? [del] : []), nftLoad(want)],
    undo: [del, ...(have ? [nftLoad(have)] : []), ...(old?.undo ?? [])],
  };
}

/** dsrctl's tc NAT on this interface (htb 10: with these rules' filters), to remove when nft takes over; exact undo. */
function tcLeftover(iface: string, rules: NatRule[], facts: HostFacts): { do: Step[]; undo: Step[] } | null {
  const tc = facts.tc[iface];
  if (!tc || tc.rootQdisc?.kind !== 'htb' || tc.rootQdisc.handle !== TC_PARENT) return null;
  const present = rules.filter((r) => tcHasRule(tc.filters, r));
  if (!present.length) return null;
  return {
    do: [{ run: ['tc', 'qdisc', 'del', 'dev', iface, 'root'] }],
    undo: [{ run: ['tc', 'qdisc', 'add', 'dev', iface, 'root', 'handle', TC_PARENT, 'htb'] }, ...present.flatMap((r) => tcFilterArgs(iface, r)).map((argv) => ({ run: argv }))],
  };
}

// ---- tc: the guide's commands ----

const TC_PARENT = '10:';
const TC_PRIO = '10';

/** The guide's filter, one per upstream; the exclusion (origin NAT) is a higher-priority `action ok`. */
export function tcFilterArgs(iface: string, r: NatRule): string[][] {
  const nat = ['tc', 'filter', 'add', 'dev', iface, 'parent', TC_PARENT, 'protocol', 'ip', 'prio', TC_PRIO, 'u32', 'match', 'ip', 'src', `${r.src}/32`, 'match', 'ip', 'sport', String(r.sport), '0xffff', 'action', 'nat', 'egress', `${r.src}/32`, r.to];
  if (!r.excludeDst) return [nat];
  const pass = ['tc', 'filter', 'add', 'dev', iface, 'parent', TC_PARENT, 'protocol', 'ip', 'prio', String(Number(TC_PRIO) - 1), 'u32', 'match', 'ip', 'src', `${r.src}/32`, 'match', 'ip', 'dst', `${r.excludeDst}/32`, 'action', 'ok'];
  return [pass, nat];
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');
const ipHex = (ip: string) => ip.split('.').map((o) => hex(Number(o), 2)).join('');

/**
 * Is the guide's filter for this rule in `tc filter show`? u32 prints its keys in hex
 * ("match ac10000b/ffffffff at 12" is the source address, "match 00350000/ffff0000 at 20" the
 * source port) and the action as "nat egress 172.16.0.11/32 192.168.99.10 pass" (iproute2 6.1).
 */
export function tcHasRule(filters: string, r: NatRule): boolean {
  const blocks = filters.split(/\n(?=filter )/);
  return blocks.some(
    (b) =>
      new RegExp(`^filter parent ${TC_PARENT} protocol ip pref ${TC_PRIO} u32 `).test(b) &&
      b.includes(`match ${ipHex(r.src)}/ffffffff at 12`) &&
      b.includes(`match ${hex(r.sport, 4)}0000/ffff0000 at 20`) &&
      new RegExp(`nat egress ${r.src.replace(/\./g, '\\.')}/32 ${r.to.replace(/\./g, '\\.')} `).test(`${b} `),
  );
}

function planTc(spec: Spec, rules: NatRule[], facts: HostFacts, ctx: PlanContext): Change | null {
  const iface = spec.interface;
  const tc = facts.tc[iface];
  if (!tc) throw new Error(`${ctx.host}: facts did not include tc for ${iface}`);
  const ours = tc.rootQdisc?.kind === 'htb' && tc.rootQdisc.handle === TC_PARENT;
  if (tc.rootQdisc && !ours)
    throw new PlanError(
      ctx.host,
      `${iface} already has a root qdisc (${tc.rootQdisc.kind} ${tc.rootQdisc.handle}) that dsrctl did not make; it is left alone. Remove it, or use nat.backend: nft`,
      { usage: true },
    );
  const missing = rules.filter((r) => !tcHasRule(tc.filters, r));
  const present = rules.filter((r) => !missing.includes(r));
  // nat filters this inventory does not want (an upstream removed, another public address) would
  // still rewrite first: dsrctl does not guess how to rebuild them, it stops and says so
  const natFilters = tc.filters.split(/\n(?=filter )/).filter((b) => / nat egress /.test(b)).length;
  if (ours && natFilters > present.length)
    throw new PlanError(
      ctx.host,
      `${iface} has ${natFilters - present.length} tc nat filter(s) this inventory does not want (from an earlier run with other upstreams, ports or public address); run dsrctl rollback with the earlier inventory first`,
      { usage: true },
    );
  // an earlier run's nft NAT on this interface would rewrite a second time: it goes
  const name = nftTableName(iface);
  const nftOld = facts.nft.tables[`netdev ${name}`];
  if (ours && missing.length === 0 && !nftOld) return null;
  const filters = missing.flatMap((r) => tcFilterArgs(iface, r)).map((argv) => ({ run: argv }));
  const qdisc = ours ? [] : [{ run: ['tc', 'qdisc', 'add', 'dev', iface, 'root', 'handle', TC_PARENT, 'htb'] }];
  const nftDo: Step[] = nftOld ? [{ run: ['nft', 'delete', 'table', 'netdev', name] }] : [];
  const nftUndo: Step[] = nftOld ? [nftLoad(nftOld)] : [];
  const prios = [TC_PRIO, ...(rules.some((r) => r.excludeDst) ? [String(Number(TC_PRIO) - 1)] : [])];
  return {
    kind: 'stateless-nat',
    id: `tc nat on ${iface}`,
    action: ours ? 'update' : 'create',
    summary: `${ours ? 'add to' : 'add'} tc stateless NAT on ${iface}: ${missing.map((r) => `${r.src}:${r.sport} -> ${r.to}`).join(', ') || '(filters present)'}${nftOld ? `; remove nft table ${name}` : ''}`,
    do: [...nftDo, ...qdisc, ...filters],
    // removing the qdisc this plan made removes its filters with it; in a qdisc that was there, dsrctl's
    // priorities are emptied and the filters that were there before are put back
    undo: [
      ...(ours
        ? [
            ...prios.map((p) => ({ run: ['tc', 'filter', 'del', 'dev', iface, 'parent', TC_PARENT, 'prio', p] })),
            ...present.flatMap((r) => tcFilterArgs(iface, r)).map((argv) => ({ run: argv })),
          ]
        : [{ run: ['tc', 'qdisc', 'del', 'dev', iface, 'root'] }]),
      ...nftUndo,
    ],
  };
}

/**
 * At boot: nft replaces the table in one transaction (create it if absent, delete, define: no
 * moment without NAT on a re-run); tc rebuilds the qdisc only when its nat filters are not all
 * there. Pure.
 */
export function natBoot(backend: 'tc' | 'nft', iface: string, rules: NatRule[]): string[] {
  if (backend === 'nft') {
    const name = nftTableName(iface);
    const text = `table netdev ${name}\ndelete table netdev ${name}\n${renderNftTable(iface, rules)}`;
    return [`printf '%s' '${Buffer.from(text).toString('base64')}' | base64 -d | nft -f /dev/stdin`];
  }
  const filters = rules.flatMap((r) => tcFilterArgs(iface, r)).map((a) => `  ${quote(a)} &&`);
  return [
    [
      `if ! { ${quote(['tc', 'qdisc', 'show', 'dev', iface, 'root'])} | grep -q ${quote([`^qdisc htb ${TC_PARENT} `])} && [ "$(${quote(['tc', 'filter', 'show', 'dev', iface, 'parent', TC_PARENT])} | grep -c ' nat egress ')" = ${rules.length} ]; }; then`,
      `  ${quote(['tc', 'qdisc', 'del', 'dev', iface, 'root'])} 2>/dev/null`,
      `  ${quote(['tc', 'qdisc', 'add', 'dev', iface, 'root', 'handle', TC_PARENT, 'htb'])} &&`,
      ...filters,
      '  true',
      'fi',
    ].join('\n'),
  ];
}

export const statelessNat: ResourceKind<Spec> = {
  kind: 'stateless-nat',
  schema,
  facts: (spec) => ({ interfaces: [spec.interface], sections: ['nat'] }),
  plan(spec, facts, ctx) {
    if (!facts.interfaces.some((i) => i.name === spec.interface)) throw new PlanError(ctx.host, `interface ${spec.interface} does not exist on this host`, { usage: true });
    const rules = natRules(spec, ctx);
    const viaProxy = facts.routes.find((r) => (r.table ?? 'main') === 'main' && r.dst === 'default' && r.gateway === ctx.inventory.proxy.private_ip);
    if (spec.sources === 'self' && viaProxy)
      throw new PlanError(
        ctx.host,
        `its default route goes via the proxy (${ctx.inventory.proxy.private_ip}), as an earlier ip-transparency or router-NAT run left it; origin NAT needs the upstream's own route to the clients: run dsrctl rollback with the earlier inventory first`,
        { usage: true },
      );
    const choice = chooseNatBackend(ctx.inventory.nat.backend, facts, rules.some((r) => r.toPort !== undefined), ctx.host);
    ctx.notes.push(`stateless NAT backend: ${choice.backend} (${choice.reason})`);
    return choice.backend === 'nft' ? planNft(spec, rules, facts) : planTc(spec, rules, facts, ctx);
  },
  boot(spec, facts, ctx) {
    const rules = natRules(spec, ctx);
    const { backend } = chooseNatBackend(ctx.inventory.nat.backend, facts, rules.some((r) => r.toPort !== undefined), ctx.host);
    return [{ what: `stateless NAT (${backend}) on ${spec.interface}: ${rules.map((r) => `${r.src}:${r.sport} -> ${r.to}${r.toPort ? `:${r.toPort}` : ''}`).join(', ')}`, lines: natBoot(backend, spec.interface, rules) }];
  },
};
