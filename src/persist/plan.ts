import type { Inventory } from '../inventory/schema.js';
import type { HostFacts, FileFact } from '../facts/types.js';
import type { Change, Step } from '../plan/types.js';
import type { HostTarget } from '../plan/desired.js';
import type { BootItem, PlanContext } from '../resources/types.js';
import { PlanError } from '../resources/types.js';
import { RESOURCE_KINDS } from '../resources/index.js';
import { addPrecondition, asBytes, backupKey, forDisplay, unsafeDir } from '../resources/nginx-files.js';
import { unifiedDiff } from '../resources/nginx/diff.js';
import { activeManager } from '../facts/sections/netmgr.js';
import { BOOT_REVERT_TARGET, BOOT_REVERT_UNIT, PERSIST_SCRIPT, PERSIST_TARGET, PERSIST_UNIT, unitPath, wantsDir, wantsLink } from './paths.js';
import { renderBootRevertUnit, renderPersistUnit } from './units.js';
import { renderStateScript } from './state-script.js';
import { networkdPlan } from './networkd.js';

/** Files the facts read for persistence (every host: a host may lose systemd, or persist may be turned off). */
export function persistFactsFiles(): string[] {
  return [
    PERSIST_SCRIPT,
    unitPath(PERSIST_UNIT),
    unitPath(BOOT_REVERT_UNIT),
    wantsDir(PERSIST_TARGET),
    wantsDir(BOOT_REVERT_TARGET),
    wantsLink(PERSIST_TARGET, PERSIST_UNIT),
    wantsLink(BOOT_REVERT_TARGET, BOOT_REVERT_UNIT),
  ];
}

export interface PersistPlan {
  /** before every other change: the boot-time revert must be on disk before what it guards */
  first: Change[];
  /** after the runtime changes: the restore of the state they reach */
  last: Change[];
  notes: string[];
}

/** The desired kernel state of a host, as boot lines, from its desired resources (not from a diff). */
export function bootItems(target: HostTarget, facts: HostFacts, ctx: PlanContext): BootItem[] {
  return target.desired.flatMap((d) => RESOURCE_KINDS[d.kind]!.boot?.(d.spec, facts, ctx) ?? []);
}

function fact(facts: HostFacts, path: string, host: string): FileFact {
  const f = facts.files[path];
  if (!f) throw new Error(`${host}: facts did not include ${path}`);
  return f;
}


/** A whole file to `want` (null: absent), backed up first; null when it already is. */
function fileTo(ctx: PlanContext, f: FileFact, want: string | null, summary: (verb: string) => string): Change | null {
  const path = f.path;
  if (f.type === 'dir' || f.type === 'other' || f.type === 'dangling' || (f.exists && f.link))
    throw new PlanError(ctx.host, `${path} is ${f.link ? 'a symlink' : `not a regular file (${f.type})`}; dsrctl writes its persistence files there as regular files: move it away first`, { usage: true });
  for (const d of [f.dir, f.linkDir]) {
    const bad = d && unsafeDir(d);
    if (bad) throw new PlanError(ctx.host, `${path}: ${bad}; fix the directory's owner or mode first`);
  }
  if (f.exists && f.content === undefined) throw new PlanError(ctx.host, `${path} exists but could not be read`);
  const have = f.exists ? f.content! : null;
  if (have === want) return null;
  addPrecondition(ctx, f);
  if (want === null) {
    const key = backupKey(ctx, path);
    return { kind: 'persist', id: `file ${path}`, action: 'delete', summary: summary('remove'), diff: unifiedDiff(path, forDisplay(have!), ''), do: [{ backup: { path, key } }, { remove: { path } }], undo: [{ restore: { path, key } }], notify: ['systemd-units'] };
  }
  const key = have === null ? '' : backupKey(ctx, path);
  return {
    kind: 'persist',
    id: `file ${path}`,
    action: have === null ? 'create' : 'update',
    summary: summary(have === null ? 'create' : 'rewrite'),
    diff: unifiedDiff(path, have === null ? null : forDisplay(have), forDisplay(want)),
    do: [...(have === null ? [] : [{ backup: { path, key } } as Step]), { write: { path, content: want } }],
    undo: [have === null ? { remove: { path } } : { restore: { path, key } }],
    notify: ['systemd-units'],
  };
}

/** The enablement symlink `systemctl enable` would make, as a file change of its own (exact undo, no side effects). */
function linkTo(ctx: PlanContext, facts: HostFacts, target: string, unit: string, want: boolean): Change | null {
  const link = wantsLink(target, unit);
  const f = fact(facts, link, ctx.host);
  const dir = fact(facts, wantsDir(target), ctx.host);
  const to = unitPath(unit);
  const ours = f.link === true && f.realpath === to;
  if (want === ours && (want || !f.exists)) return null;
  if (!want) {
    if (!f.link) throw new PlanError(ctx.host, `${link} is not a symlink; dsrctl only removes the link it made`, { usage: true });
    return { kind: 'persist', id: `symlink ${link}`, action: 'delete', summary: `disable ${unit}: remove ${link}`, do: [{ run: ['rm', '-f', '--', link] }], undo: [{ run: ['ln', '-s', '--', to, link] }], notify: ['systemd-units'] };
  }
  if (f.exists || f.type === 'dangling') throw new PlanError(ctx.host, `${link} exists and is not dsrctl's link to ${to}; remove it first`, { usage: true });
  const mk = !dir.exists;
  return {
    kind: 'persist',
    id: `symlink ${link}`,
    action: 'create',
    summary: `enable ${unit} (${target}): ${link} -> ${to}`,
    diff: [`--- /dev/null`, `+++ ${link} (symlink)`, '@@ -0,0 +1 @@', `+${link} -> ${to}`].join('\n') + '\n',
    do: [...(mk ? [{ run: ['mkdir', '-p', '-m', '755', wantsDir(target)] }] : []), { run: ['ln', '-s', '--', to, link] }],
    undo: [{ run: ['rm', '-f', '--', link] }, ...(mk ? [{ run: ['rmdir', '--', wantsDir(target)] }] : [])],
    notify: ['systemd-units'],
  };
}

const what = (items: BootItem[]) => items.map((i) => i.what).join('; ');

/**
 * Persistence of one host (issue 8). systemd + `persist: true`: the boot-time revert unit first,
 * then the restore script of the desired kernel state, its unit, and (networkd) the .network
 * edits that keep networkd from adding a second default route. Otherwise no file at all, and
 * notes that say exactly what a reboot loses. Pure.
 */
export function planPersistence(inv: Inventory, target: HostTarget, facts: HostFacts, ctx: PlanContext): PersistPlan {
  const items = bootItems(target, facts, ctx);
  const out: PersistPlan = { first: [], last: [], notes: [] };
  const enabled = inv.persist && facts.hasSystemd;
  if (!facts.hasSystemd) {
    // never a file: a host without systemd may share the machine's /etc (the namespace lab)
    out.notes.push(
      `persistence: not persisted (no systemd on this host: /run/systemd/system is absent), a reboot loses: ${items.length ? what(items) : 'nothing (no kernel state)'}; the dead-man's switch does not survive a reboot here (files stay as the run left them)`,
    );
    return out;
  }
  if (!inv.persist) out.notes.push(`persistence: off (persist: false), a reboot loses: ${items.length ? what(items) : 'nothing (no kernel state)'}; an unconfirmed run is not reverted at boot`);
  const hostFile = (p: string) => fact(facts, p, ctx.host);
  // the boot-time revert: present whenever persistence is on (it guards every run's files)
  const brUnit = fileTo(ctx, hostFile(unitPath(BOOT_REVERT_UNIT)), enabled ? asBytes(renderBootRevertUnit()) : null, (v) => `${v} ${unitPath(BOOT_REVERT_UNIT)}: reverts a run that was never confirmed when the host boots`);
  const brLink = linkTo(ctx, facts, BOOT_REVERT_TARGET, BOOT_REVERT_UNIT, enabled);
  // without kernel state (origin NAT's proxy) there is nothing to restore
  const restore = enabled && items.length > 0;
  const manager = activeManager(facts);
  const script = fileTo(ctx, hostFile(PERSIST_SCRIPT), restore ? asBytes(renderStateScript(target.name, items)) : null, (v) => `${v} ${PERSIST_SCRIPT}: restores ${restore ? `${items.length} item(s) at boot` : 'nothing (no longer wanted)'}`);
  const nftables = facts.netmgr?.nftables === 'active';
  const restarts = [...(manager ? [`${manager}.service`] : []), ...(nftables ? ['nftables.service'] : [])];
  const unit = fileTo(ctx, hostFile(unitPath(PERSIST_UNIT)), restore ? asBytes(renderPersistUnit(manager, { nftables })) : null, (v) => `${v} ${unitPath(PERSIST_UNIT)}: runs ${PERSIST_SCRIPT} at boot before nginx${restarts.length ? ` and when ${restarts.join(' or ')} restarts` : ''}`);
  const link = linkTo(ctx, facts, PERSIST_TARGET, PERSIST_UNIT, restore);
  if (enabled) {
    // the undo of what this run enables is in place before anything else changes; when persistence goes away, the revert goes last
    out.first.push(...[brUnit, brLink].filter((c): c is Change => c !== null));
    out.last.push(...[script, unit, link].filter((c): c is Change => c !== null));
  } else out.last.push(...[link, unit, script, brLink, brUnit].filter((c): c is Change => c !== null));
  if (enabled) {
    out.notes.push(
      restore
        ? `persistence: systemd${manager ? `, ${manager}` : ''}: ${PERSIST_SCRIPT} restores at boot (dsrctl-persist.service, before nginx.service${restarts.length ? `, again when ${restarts.join(' or ')} restarts` : ''}): ${what(items)}; an unconfirmed run is reverted at boot (dsrctl-boot-revert.service)`
        : `persistence: systemd: no kernel state to restore on this host; an unconfirmed run is reverted at boot (dsrctl-boot-revert.service)`,
    );
  }
  // the default route via the proxy: whoever else installs one must not put theirs back beside it
  if (target.desired.some((d) => d.kind === 'default-route')) {
    const proxy = inv.proxy.private_ip;
    if (enabled && manager === 'systemd-networkd') {
      const nd = networkdPlan(facts, proxy);
      for (const e of nd.edits) {
        const f = facts.netmgr!.files[e.path]!;
        addPrecondition(ctx, f);
        const key = backupKey(ctx, e.path);
        out.last.push({
          kind: 'persist',
          id: `file ${e.path}`,
          action: 'update',
          summary: `edit ${e.path} so that systemd-networkd installs no default route beside the one via the proxy (${e.what.join('; ')})`,
          diff: unifiedDiff(e.path, forDisplay(e.before), forDisplay(e.after)),
          do: [{ backup: { path: e.path, key } }, { write: { path: e.path, content: e.after } }],
          undo: [{ restore: { path: e.path, key } }],
        });
      }
      if (nd.edits.length) out.notes.push(`default route: systemd-networkd will no longer install its own (${nd.edits.map((e) => `${e.path}: ${e.what.join(', ')}`).join('; ')}), so a networkd restart or DHCP renewal never puts a second default route beside the one via ${proxy}`);
      for (const u of nd.untouchable)
        out.notes.push(`default route: ${u.path} (${u.what.join(', ')}) is not dsrctl's to edit (generated or a vendor file): after a networkd restart or DHCP renewal dsrctl-persist.service deletes that route again, but until it runs two default routes may stand; change the source of ${u.path} (netplan: dhcp4-overrides use-routes: false, no gateway4)`);
      if (!nd.edits.length && !nd.untouchable.length) out.notes.push(`default route: systemd-networkd installs no default route here; ${PERSIST_SCRIPT} keeps the one via ${proxy}`);
    } else if (enabled && manager) {
      out.notes.push(`default route: ${manager} is not reconfigured by dsrctl: ${PERSIST_SCRIPT} deletes any other default route and adds the one via ${proxy} at boot and when ${manager}.service restarts, but a DHCP renewal or a connection re-activation by ${manager} may add its own again until then; configure ${manager} without a default gateway on this host`);
    }
  }
  return out;
}
