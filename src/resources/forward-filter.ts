import { z } from 'zod';
import { quote } from 'shell-quote';
import { PlanError, type ResourceKind, type PlanContext } from './types.js';
import type { Change, Step } from '../plan/types.js';
import type { HostFacts } from '../facts/types.js';
import type { Inventory } from '../inventory/schema.js';

/**
 * Where a mode needs the proxy to forward (router NAT, masquerade), forwarding between its public
 * and private interfaces is limited to what the mode needs, in a chain dsrctl owns, jumped to from
 * the top of FORWARD. FORWARD's policy and its other rules stay as they are; traffic between other
 * interfaces is not looked at.
 */
export const FORWARD_CHAIN = 'DSRCTL-FORWARD';
/** The jump, as iptables-save prints it after `-A FORWARD `. */
export const JUMP_RULE = ['-m', 'comment', '--comment', 'dsrctl', '-j', FORWARD_CHAIN];
const JUMP_LINE = `-A FORWARD ${JUMP_RULE.join(' ')}`;

const schema = z
  .object({
    /** forward the upstreams' replies to the clients (router NAT: they leave through the proxy) */
    replies: z.boolean(),
  })
  .strict();
type Spec = z.infer<typeof schema>;

const ipt = (...args: string[]): Step => ({ run: ['iptables', '-w', '-t', 'filter', ...args] });

/** The chain's rules, each exactly as iptables-save prints it after `-A DSRCTL-FORWARD `. Pure. */
export function forwardRules(inv: Inventory, spec: Spec): string[][] {
  const pub = inv.proxy.public_interface;
  const priv = inv.proxy.private_interface;
  const l4 = inv.service.protocol === 'udp' ? 'udp' : 'tcp';
  const rules: string[][] = [];
  for (const u of inv.upstreams) {
    const ip = `${u.ip}/32`;
    if (spec.replies) rules.push(['-s', ip, '-i', priv, '-o', pub, '-p', l4, '-m', l4, '--sport', String(inv.service.upstream_port), '-j', 'ACCEPT']);
    if (inv.proxy.masquerade) {
      rules.push(['-s', ip, '-i', priv, '-o', pub, '-j', 'ACCEPT']);
      rules.push(['-d', ip, '-i', pub, '-o', priv, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT']);
    }
  }
  rules.push(['-i', priv, '-o', pub, '-j', 'DROP'], ['-i', pub, '-o', priv, '-j', 'DROP']);
  return rules;
}

/** The chain as the facts show it: its rules (argv words) and the jump's 1-based position in FORWARD. */
export function currentForwardFilter(facts: HostFacts): { exists: boolean; rules: string[][]; jumpAt: number | null } {
  const t = facts.iptables.tables.filter;
  if (!t) return { exists: false, rules: [], jumpAt: null };
  const prefix = `-A ${FORWARD_CHAIN} `;
  const rules = t.rules.filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length).trim().split(/\s+/));
  const forward = t.rules.filter((l) => l.startsWith('-A FORWARD '));
  const i = forward.indexOf(JUMP_LINE);
  return { exists: t.chains.includes(FORWARD_CHAIN), rules, jumpAt: i < 0 ? null : i + 1 };
}

/** Lines of dsrctl's forward filter in the filter table (the chain's rules and the jump), which prune leaves to this resource. */
export const isForwardFilterLine = (table: string, line: string): boolean =>
  table === 'filter' && (line.startsWith(`-A ${FORWARD_CHAIN} `) || line === JUMP_LINE);

function describe(inv: Inventory, spec: Spec): string {
  const what = [
    spec.replies && `the upstreams' replies (${inv.service.protocol === 'udp' ? 'udp' : 'tcp'} sport ${inv.service.upstream_port})`,
    inv.proxy.masquerade && "the upstreams' own outbound traffic and its replies (masquerade)",
  ].filter(Boolean);
  return `forward only ${what.join(' and ')} between ${inv.proxy.private_interface} and ${inv.proxy.public_interface}; drop other forwarding between them`;
}

/** Deleting the chain and its jump; undo puts both back as they were. Used by prune when no mode wants it. */
export function forwardFilterRemoval(facts: HostFacts): Change | null {
  const cur = currentForwardFilter(facts);
  if (!cur.exists) return null;
  const jump = cur.jumpAt !== null;
  return {
    kind: 'forward-filter',
    id: `iptables -t filter chain ${FORWARD_CHAIN}`,
    action: 'delete',
    summary: `remove iptables chain ${FORWARD_CHAIN} and its jump from FORWARD (left by an earlier dsrctl run; this inventory needs no forwarding)`,
    do: [...(jump ? [ipt('-D', 'FORWARD', ...JUMP_RULE)] : []), ipt('-F', FORWARD_CHAIN), ipt('-X', FORWARD_CHAIN)],
    undo: [ipt('-N', FORWARD_CHAIN), ...cur.rules.map((r) => ipt('-A', FORWARD_CHAIN, ...r)), ...(jump ? [ipt('-I', 'FORWARD', String(cur.jumpAt), ...JUMP_RULE)] : [])],
  };
}

export const forwardFilter: ResourceKind<Spec> = {
  kind: 'forward-filter',
  schema,
  facts: () => ({ sections: ['iptables'] }),
  plan(spec, facts, ctx: PlanContext) {
    const { variant } = facts.iptables;
    if (variant === null) throw new PlanError(ctx.host, 'iptables is not installed (dsrctl limits forwarding with it)');
    if (facts.iptables.error) throw new PlanError(ctx.host, `cannot read the current rules (${facts.iptables.error}); dsrctl needs root there`);
    const want = forwardRules(ctx.inventory, spec);
    const cur = currentForwardFilter(facts);
    const same = cur.rules.length === want.length && cur.rules.every((r, i) => r.join(' ') === want[i]!.join(' '));
    if (cur.exists && same && cur.jumpAt !== null) return null;
    const id = `iptables -t filter chain ${FORWARD_CHAIN}`;
    const summary = describe(ctx.inventory, spec);
    const fill = want.map((r) => ipt('-A', FORWARD_CHAIN, ...r));
    const addJump = cur.jumpAt === null ? [ipt('-I', 'FORWARD', '1', ...JUMP_RULE)] : [];
    const dropJump = cur.jumpAt === null ? [ipt('-D', 'FORWARD', ...JUMP_RULE)] : [];
    if (!cur.exists) {
      const undo: Step[] = [...dropJump, ipt('-F', FORWARD_CHAIN), ipt('-X', FORWARD_CHAIN)];
      // iptables-nft creates the filter table with its base chains on first use and never removes
      // it: drop it again when it was absent and is empty, so iptables-save reads back as before
      const createdKey = 'iptables-table:filter';
      if (!facts.iptables.tables.filter && variant === 'nft' && !ctx.shared.has(createdKey)) {
        ctx.shared.set(createdKey, true);
        undo.push({ sh: `if ! iptables-save -t filter | grep -q '^-A '; then nft delete table ip ${quote(['filter'])}; fi` });
      }
      return {
        kind: 'forward-filter',
        id,
        action: 'create',
        summary: `add iptables chain ${FORWARD_CHAIN} (${want.length} rules), jumped to from the top of FORWARD: ${summary}`,
        do: [ipt('-N', FORWARD_CHAIN), ...fill, ...addJump],
        undo,
      };
    }
    return {
      kind: 'forward-filter',
      id,
      action: 'update',
      summary: `${same ? 'jump to' : 'rewrite'} iptables chain ${FORWARD_CHAIN}${same ? ' from the top of FORWARD' : ` (${cur.rules.length} -> ${want.length} rules)`}: ${summary}`,
      do: [...(same ? [] : [ipt('-F', FORWARD_CHAIN), ...fill]), ...addJump],
      undo: [...dropJump, ...(same ? [] : [ipt('-F', FORWARD_CHAIN), ...cur.rules.map((r) => ipt('-A', FORWARD_CHAIN, ...r))])],
    };
  },
  boot: (spec, _facts, ctx) => [{ what: `iptables chain ${FORWARD_CHAIN} (${describe(ctx.inventory, spec)})`, lines: forwardFilterBoot(ctx.inventory, spec) }],
};

/**
 * At boot: the chain rebuilt only when `iptables -S` shows it otherwise (so a re-run after a network
 * restart never opens a gap), and the jump added when missing. Pure.
 */
export function forwardFilterBoot(inv: Inventory, spec: Spec): string[] {
  const want = forwardRules(inv, spec);
  const listing = [`-N ${FORWARD_CHAIN}`, ...want.map((r) => `-A ${FORWARD_CHAIN} ${r.join(' ')}`)];
  const i = (...args: string[]) => quote(['iptables', '-w', '-t', 'filter', ...args]);
  return [
    [
      `if [ "$(${i('-S', FORWARD_CHAIN)} 2>/dev/null)" != "$(printf '%s\\n' ${quote(listing)})" ]; then`,
      `  ${i('-N', FORWARD_CHAIN)} 2>/dev/null; ${i('-F', FORWARD_CHAIN)} &&`,
      ...want.map((r) => `  ${i('-A', FORWARD_CHAIN, ...r)} &&`),
      '  true',
      'fi',
    ].join('\n'),
    `${i('-C', 'FORWARD', ...JUMP_RULE)} 2>/dev/null || ${i('-I', 'FORWARD', '1', ...JUMP_RULE)}`,
  ];
}

/** The playbooks' rule: router NAT forwards the replies; Method 1 forwards only for masquerade; origin NAT never. */
export const needsForwarding = (inv: Inventory): boolean => inv.mode === 'dsr-router-nat' || (inv.mode === 'ip-transparency' && inv.proxy.masquerade);

const IP_FORWARD = 'net.ipv4.ip_forward';
const REDIRECTS = 'net.ipv4.conf.all.accept_redirects';

/** `sysctl -q -w KEY=VALUE` lines of a journaled undo script (shell-quote writes `KEY\=VALUE`). Pure. */
export function sysctlUndoValues(undo: string): [string, string][] {
  const out: [string, string][] = [];
  for (const line of undo.split('\n')) {
    // the journal's undo runs each step as `STEP || <keep the worst status>`
    const m = /^sysctl -q -w ([a-z0-9_./-]+)\\?=(\d+)(?:\s|$)/.exec(line.trim());
    if (m) out.push([m[1]!, m[2]!]);
  }
  return out;
}

/**
 * Forwarding an earlier dsrctl run turned on (masquerade, router NAT) that this inventory does not
 * need goes back off: left on, with the forward filter gone, the upstreams' network would be open
 * to the public side. The values come from that run's journaled undo (ip_forward and the
 * accept_redirects the kernel rewrites with it); a forwarding the host had before dsrctl is left
 * alone. Same id as the earlier change, so `rollback --all` lets the older run's undo decide.
 */
export const forwardingPutBack: ResourceKind<Record<string, never>> = {
  kind: 'forwarding-put-back',
  schema: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
  facts: () => ({ sysctls: [IP_FORWARD, REDIRECTS], journalChanges: [`sysctl ${IP_FORWARD}`] }),
  plan(_, facts, ctx) {
    if (needsForwarding(ctx.inventory)) return null;
    const rec = facts.journalUndos?.[`sysctl ${IP_FORWARD}`];
    const current = facts.sysctl[IP_FORWARD]?.trim();
    if (!rec || current === undefined) return null;
    const values = sysctlUndoValues(rec.undo);
    const original = values.find(([k]) => k === IP_FORWARD)?.[1];
    if (original === undefined || original === current) return null;
    const redirects = facts.sysctl[REDIRECTS]?.trim();
    const set = (k: string, v: string): Step => ({ run: ['sysctl', '-q', '-w', `${k}=${v}`] });
    const why = ctx.inventory.mode === 'ip-transparency' ? 'ip-transparency without masquerade does not need it' : `${ctx.inventory.mode} does not need it`;
    return {
      kind: 'sysctl',
      id: `sysctl ${IP_FORWARD}`,
      action: 'update',
      summary: `set ${IP_FORWARD} ${current} -> ${original} (put back: run ${rec.run} turned forwarding on; ${why})`,
      do: values.map(([k, v]) => set(k, v)),
      undo: [set(IP_FORWARD, current), ...(redirects !== undefined ? [set(REDIRECTS, redirects)] : [])],
    };
  },
};
