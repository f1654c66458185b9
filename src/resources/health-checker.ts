import { z } from 'zod';
import { quote } from 'shell-quote';
import type { ResourceKind, PlanContext } from './types.js';
import type { Change, Step } from '../plan/types.js';
import type { HostFacts } from '../facts/types.js';
import { asBytes, backupKey } from './nginx-files.js';
import { describeServiceCheck } from '../verify/service-check.js';
import {
  HEALTH_DIR,
  HEALTH_PID,
  HEALTH_SCRIPT,
  HEALTH_STATE,
  HEALTH_UNIT,
  HEALTH_UNIT_FILE,
  healthSettings,
  serversFile,
  type HealthSettings,
} from '../health/settings.js';
import { describeDown, parseHealthState, parseServers, renderHealthScript, renderHealthUnit, renderServers, upstreamEntries } from '../health/script.js';

const q = (s: string) => quote([s]);


/** Stop the checker started without systemd: its whole process group (its checks too), by the pid it recorded. */
const STOP_PROCESS = [
  `if p=$(cat ${q(HEALTH_PID)} 2>/dev/null) && [ -n "$p" ] && tr '\\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q 'dsrctl/health/check\\.sh'; then`,
  '  if [ "$(ps -o pgid= -p "$p" 2>/dev/null | tr -d \' \')" = "$p" ]; then kill -TERM "-$p" 2>/dev/null; else kill -TERM "$p" 2>/dev/null; fi',
  '  i=0; while [ $i -lt 100 ] && [ -d "/proc/$p" ] && [ "$(cut -d\' \' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ]; do sleep 0.1; i=$((i+1)); done',
  '  [ $i -lt 100 ] || kill -KILL "$p" 2>/dev/null',
  'fi',
  `rm -f ${q(HEALTH_PID)}`,
].join('\n');

/** Wait until the checker has recorded its pid (so verify right after apply finds it running). */
const WAIT_FOR_PID = [
  `i=0; while [ $i -lt 100 ]; do p=$(cat ${q(HEALTH_PID)} 2>/dev/null) && [ -n "$p" ] && [ -d "/proc/$p" ] && break; sleep 0.1; i=$((i+1)); done`,
  `[ $i -lt 100 ] || { echo 'the health checker did not start (no pid in ${HEALTH_PID} within 10 s)' >&2; false; }`,
].join('\n');

/** Start it in a session of its own, reparented at once (no zombie under the apply script); wait for its pid. */
const START_PROCESS = [
  `rm -f ${q(HEALTH_PID)}`,
  `( umask 022; cd / && if command -v setsid >/dev/null 2>&1; then setsid /bin/sh ${q(HEALTH_SCRIPT)} </dev/null >/dev/null 2>&1 & else /bin/sh ${q(HEALTH_SCRIPT)} </dev/null >/dev/null 2>&1 & fi )`,
  WAIT_FOR_PID,
].join('\n');

const sh = (code: string, display: string): Step => ({ sh: `{\n${code}\n}`, display });

/** `atBoot`: early in boot (rollback.sh --boot sets DSRCTL_AT_BOOT=1) the stop never waits for a systemd job. */
function stopSteps(systemd: boolean, opts: { atBoot?: boolean } = {}): Step[] {
  const stop = opts.atBoot
    ? `if [ "\${DSRCTL_AT_BOOT:-}" = 1 ]; then systemctl --no-block stop ${HEALTH_UNIT}; else systemctl stop ${HEALTH_UNIT}; fi 2>/dev/null; true`
    : `systemctl stop ${HEALTH_UNIT} 2>/dev/null; true`;
  return [
    ...(systemd ? [sh(stop, `systemctl stop ${HEALTH_UNIT}`)] : []),
    sh(`${STOP_PROCESS}\ntrue`, 'stop the health checker (pid file)'),
  ];
}

function startSteps(systemd: boolean): Step[] {
  return systemd
    ? [
        { run: ['systemctl', 'daemon-reload'] },
        { run: ['systemctl', 'enable', '--quiet', HEALTH_UNIT] },
        sh(`rm -f ${q(HEALTH_PID)}\nif systemctl restart ${HEALTH_UNIT}; then\n${WAIT_FOR_PID}\nelse false; fi`, `systemctl restart ${HEALTH_UNIT}`),
      ]
    : [sh(START_PROCESS, `setsid sh ${HEALTH_SCRIPT} &`)];
}

/** The included `server` list: created with every upstream in rotation; rewritten only when the set of upstreams changes (a down mark is the checker's, not drift). */
function serversChange(facts: HostFacts, ctx: PlanContext, hs: HealthSettings): Change | null {
  const inv = ctx.inventory;
  const path = serversFile(inv);
  const current = facts.reads?.[path];
  if (current === undefined) {
    // facts of an older script know nothing of a checker: with health off there is nothing to do
    if (!hs.enabled) return null;
    throw new Error(`${ctx.host}: facts did not read ${path}`);
  }
  if (!hs.enabled) {
    if (current === null) return null;
    const key = backupKey(ctx, path);
    return { kind: 'health-checker', id: `file ${path}`, action: 'delete', summary: `remove ${path} (the health checker's server list; ${hs.reason})`, do: [{ backup: { path, key } }, { remove: { path } }], undo: [{ restore: { path, key } }], notify: ['nginx-reload'] };
  }
  const want = upstreamEntries(inv).map((e) => e.addr);
  if (current !== null) {
    const have = parseServers(current);
    if (have.size === want.length && want.every((a) => have.has(a))) return null;
    // upstreams changed: keep the checker's marks of those that stay, unless none would be left in rotation
    const down = new Set(want.filter((a) => have.get(a)));
    const entries = upstreamEntries(inv, down.size < want.length ? down : new Set());
    const key = backupKey(ctx, path);
    return {
      kind: 'health-checker',
      id: `file ${path}`,
      action: 'update',
      summary: `rewrite ${path}: the upstreams changed (${entries.map((e) => `${e.name} ${e.addr}${e.down ? ' down' : ''}`).join(', ')})`,
      do: [{ backup: { path, key } }, { write: { path, content: asBytes(renderServers(entries)) } }],
      undo: [{ restore: { path, key } }],
      notify: ['nginx-reload'],
    };
  }
  return {
    kind: 'health-checker',
    id: `file ${path}`,
    action: 'create',
    summary: `create ${path}: the upstream list the health checker keeps (${want.join(', ')}, all in rotation)`,
    do: [{ write: { path, content: asBytes(renderServers(upstreamEntries(inv))) } }],
    undo: [{ remove: { path } }],
    notify: ['nginx-reload'],
  };
}

function daemonChange(facts: HostFacts, ctx: PlanContext, hs: HealthSettings): Change | null {
  const systemd = facts.hasSystemd;
  const script = facts.files[HEALTH_SCRIPT];
  const unit = facts.files[HEALTH_UNIT_FILE];
  const dir = facts.files[HEALTH_DIR];
  if (!script || !unit || !dir) {
    if (!hs.enabled) return null;
    throw new Error(`${ctx.host}: facts did not include the health checker's files`);
  }
  const alive = facts.health?.alive ?? false;
  const unitEnabled = facts.health?.unitEnabled === 'enabled';
  const how = systemd ? `systemd unit ${HEALTH_UNIT}` : `setsid background process, pid in ${HEALTH_PID} (no systemd on this host: not restarted after a reboot)`;

  if (!hs.enabled) {
    if (!script.exists && !alive && !unit.exists) return null;
    const sKey = script.exists ? backupKey(ctx, HEALTH_SCRIPT) : '';
    const uKey = unit.exists ? backupKey(ctx, HEALTH_UNIT_FILE) : '';
    return {
      kind: 'health-checker',
      id: 'health checker',
      action: 'delete',
      summary: `stop and remove the health checker (${hs.reason})`,
      do: [
        ...stopSteps(systemd),
        ...(unit.exists ? [...(systemd ? [{ run: ['systemctl', 'disable', '--quiet', HEALTH_UNIT] }] : []), { backup: { path: HEALTH_UNIT_FILE, key: uKey } }, { remove: { path: HEALTH_UNIT_FILE } }] : []),
        ...(script.exists ? [{ backup: { path: HEALTH_SCRIPT, key: sKey } }, { remove: { path: HEALTH_SCRIPT } }] : []),
      ],
      undo: [
        ...(script.exists ? [{ restore: { path: HEALTH_SCRIPT, key: sKey } }] : []),
        ...(unit.exists ? [{ restore: { path: HEALTH_UNIT_FILE, key: uKey } }, ...(systemd ? [{ run: ['systemctl', 'daemon-reload'] }, ...(unitEnabled ? [{ run: ['systemctl', 'enable', '--quiet', HEALTH_UNIT] }] : [])] : [])] : []),
        ...(alive ? startSteps(systemd) : []),
      ],
    };
  }

  const inv = ctx.inventory;
  const text = asBytes(renderHealthScript(inv, hs));
  const unitText = asBytes(renderHealthUnit());
  const scriptSame = script.exists && script.content === text;
  const unitSame = !systemd || (unit.exists && unit.content === unitText && unitEnabled);
  if (scriptSame && unitSame && alive) return null;

  const checks = `${describeServiceCheck(hs.check, inv, 'each upstream')} (${inv.upstreams.map((u) => `${u.name} ${u.ip}:${inv.service.upstream_port}`).join(', ')})`;
  const timing = `every ${hs.interval} s; down after ${hs.fails} failed check(s), back after ${hs.passes} passed`;
  const doSteps: Step[] = [];
  const undoSteps: Step[] = [];
  if (alive || systemd) doSteps.push(...stopSteps(systemd));
  undoSteps.push(...stopSteps(systemd));
  if (!dir.exists) {
    doSteps.push({ run: ['mkdir', '-p', '-m', '700', HEALTH_DIR] });
    // the checker's own files (state, events, pid) go with the directory it lived in
  }
  let sKey = '';
  if (!scriptSame) {
    if (script.exists) doSteps.push({ backup: { path: HEALTH_SCRIPT, key: (sKey = backupKey(ctx, HEALTH_SCRIPT)) } });
    doSteps.push({ write: { path: HEALTH_SCRIPT, content: text } });
    undoSteps.push(script.exists ? { restore: { path: HEALTH_SCRIPT, key: sKey } } : { remove: { path: HEALTH_SCRIPT } });
  }
  if (systemd && !(unit.exists && unit.content === unitText)) {
    const uKey = unit.exists ? backupKey(ctx, HEALTH_UNIT_FILE) : '';
    if (unit.exists) doSteps.push({ backup: { path: HEALTH_UNIT_FILE, key: uKey } });
    doSteps.push({ write: { path: HEALTH_UNIT_FILE, content: unitText } });
    undoSteps.push(unit.exists ? { restore: { path: HEALTH_UNIT_FILE, key: uKey } } : { remove: { path: HEALTH_UNIT_FILE } });
  }
  if (systemd && !unitEnabled) undoSteps.splice(stopSteps(systemd).length, 0, { run: ['systemctl', 'disable', '--quiet', HEALTH_UNIT] });
  if (systemd) undoSteps.push({ run: ['systemctl', 'daemon-reload'] });
  doSteps.push(...startSteps(systemd));
  if (!dir.exists) undoSteps.push({ run: ['rm', '-rf', '--', HEALTH_DIR] });
  else if (alive) undoSteps.push(...startSteps(systemd));
  else undoSteps.push({ run: ['rm', '-f', '--', HEALTH_STATE] });
  const verb = !script.exists ? 'install and start' : !scriptSame ? 'update and restart' : 'start';
  // An enabled unit comes back at boot with its checker: a rollback after a reboot that restored no
  // kernel state (rollback.sh runs only NNN.boot then) and a boot-time revert must still stop it,
  // disable it and remove its files, or a checker left running rewrites the server list later.
  const bootUndo: Step[] | undefined =
    systemd && !script.exists && !unit.exists
      ? [
          ...stopSteps(systemd, { atBoot: true }),
          { run: ['systemctl', 'disable', '--quiet', HEALTH_UNIT] },
          { remove: { path: HEALTH_SCRIPT } },
          { remove: { path: HEALTH_UNIT_FILE } },
          ...(!dir.exists ? [{ run: ['rm', '-rf', '--', HEALTH_DIR] }] : []),
        ]
      : undefined;
  return {
    kind: 'health-checker',
    id: 'health checker',
    action: script.exists ? 'update' : 'create',
    summary: `${verb} the health checker: ${checks}; ${timing}; nginx reloads on each change (${how})`,
    do: doSteps,
    undo: undoSteps,
    ...(bootUndo ? { bootUndo } : {}),
  };
}

/**
 * The active health checker DSR needs (nginx sees no replies, so it has no passive checks): its
 * server list (included by the managed config) and the daemon. Always in the proxy's playbook;
 * with health off it removes one left by an earlier run.
 */
export const healthChecker: ResourceKind<Record<string, never>> = {
  kind: 'health-checker',
  schema: z.object({}).strict() as unknown as z.ZodType<Record<string, never>>,
  facts: (_, ctx) => ({ sections: ['health'], files: [HEALTH_SCRIPT, HEALTH_UNIT_FILE, HEALTH_DIR], reads: [serversFile(ctx.inventory), HEALTH_STATE] }),
  plan(_, facts, ctx) {
    const hs = healthSettings(ctx.inventory);
    if (hs.enabled) {
      ctx.notes.push(`health checker: ${hs.reason}; every ${hs.interval} s, down after ${hs.fails} failed check(s), back after ${hs.passes} passed`);
      const state = facts.reads?.[HEALTH_STATE];
      const servers = facts.reads?.[serversFile(ctx.inventory)];
      const down = describeDown(state ? parseHealthState(state) : null, servers ? parseServers(servers) : null);
      for (const d of down) ctx.notes.push(`health checker has taken out ${d}`);
    } else if (ctx.inventory.mode !== 'ip-transparency' || ctx.inventory.health) ctx.notes.push(`no health checker: ${hs.reason.replace(/^no health checker: /, '')}`);
    return [serversChange(facts, ctx, hs), daemonChange(facts, ctx, hs)].filter((c): c is Change => c !== null);
  },
};
