import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { inventorySchema, type Inventory } from '../inventory/schema.js';
import { loadPlaybook } from '../playbook/load.js';
import { parseFacts } from '../facts/parse.js';
import type { FileFact, HostFacts } from '../facts/types.js';
import type { Change } from '../plan/types.js';
import type { PlanContext } from './types.js';
import { healthChecker } from './health-checker.js';
import { healthSettings } from '../health/settings.js';
import { renderHealthScript, renderHealthUnit, renderServers, upstreamEntries } from '../health/script.js';
import { asBytes } from './nginx-files.js';
import { bootSteps } from '../apply/render-step.js';

const fx = (dir: string, name: string) => readFileSync(new URL(`../../test/fixtures/${dir}/${name}`, import.meta.url), 'utf8');
const SERVERS = '/etc/nginx/dsrctl-health.servers';
const STATE = '/var/lib/dsrctl/health/state';
const SCRIPT = '/var/lib/dsrctl/health/check.sh';
const UNIT = '/etc/systemd/system/dsrctl-health.service';
const DIR = '/var/lib/dsrctl/health';

const inv = (over: Record<string, unknown> = {}, n = 4): Inventory =>
  inventorySchema.parse({
    mode: 'dsr-router-nat',
    service: { protocol: 'udp', listen_port: 53, upstream_port: 53 },
    proxy: { ssh_host: '10.0.0.10', public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0' },
    upstreams: Array.from({ length: n }, (_, i) => ({ name: `dev${i + 1}`, ssh_host: `10.0.0.1${i + 1}`, ip: `172.16.0.1${i + 1}` })),
    ...over,
  });

const file = (path: string, content?: string): FileFact =>
  content === undefined ? { path, exists: false } : { path, exists: true, type: content === '' ? 'dir' : 'file', ...(content ? { content } : {}) };

/** Real proxy facts (lab), with the checker's part as given. */
function facts(o: { servers?: string | null; state?: string | null; script?: string; unit?: string; dir?: boolean; alive?: boolean; systemd?: boolean; unitEnabled?: string } = {}): HostFacts {
  const f = parseFacts(fx('facts', 'proxy-applied.txt'));
  return {
    ...f,
    hasSystemd: o.systemd ?? false,
    files: { ...f.files, [SCRIPT]: file(SCRIPT, o.script), [UNIT]: file(UNIT, o.unit), [DIR]: file(DIR, o.dir ? '' : undefined) },
    reads: { [SERVERS]: o.servers ?? null, [STATE]: o.state ?? null },
    health: { pid: o.alive ? 24108 : null, alive: o.alive ?? false, ...(o.systemd ? { unitActive: o.alive ? 'active' : 'inactive', unitEnabled: o.unitEnabled ?? '' } : {}) },
  };
}

function plan(i: Inventory, f: HostFacts): { changes: Change[]; notes: string[] } {
  const ctx: PlanContext = { inventory: i, playbook: loadPlaybook(i.mode), role: 'proxy', host: 'proxy', shared: new Map(), notes: [] };
  const changes = [healthChecker.plan({}, f, ctx)].flat().filter((c): c is Change => c !== null);
  return { changes, notes: ctx.notes };
}

const script = (i: Inventory) => {
  const hs = healthSettings(i);
  if (!hs.enabled) throw new Error('health off');
  return asBytes(renderHealthScript(i, hs));
};
const shown = (steps: Change['do']) => steps.map((s) => ('run' in s ? s.run.join(' ') : 'sh' in s ? s.display : Object.keys(s)[0] + ' ' + Object.values(s)[0].path));

describe('health-checker resource (real lab proxy facts)', () => {
  it('a proxy without a checker: the server list (all in rotation) and the daemon, each with an exact undo', () => {
    const { changes, notes } = plan(inv(), facts());
    expect(changes.map((c) => `${c.action} ${c.id}`)).toEqual([`create file ${SERVERS}`, 'create health checker']);
    expect(changes[0]!.do).toEqual([{ write: { path: SERVERS, content: renderServers(upstreamEntries(inv())) } }]);
    expect(changes[0]!.undo).toEqual([{ remove: { path: SERVERS } }]);
    expect(changes[0]!.notify).toEqual(['nginx-reload']);
    expect(shown(changes[1]!.do)).toEqual([`mkdir -p -m 700 ${DIR}`, `write ${SCRIPT}`, `setsid sh ${SCRIPT} &`]);
    expect(shown(changes[1]!.undo)).toEqual(['stop the health checker (pid file)', `remove ${SCRIPT}`, `rm -rf -- ${DIR}`]);
    expect(changes[1]!.summary).toMatch(/^install and start the health checker: DNS query ". SOA" to each upstream, any response code counts \(dev1 172\.16\.0\.11:53, .*\); every 5 s; down after 1 failed check\(s\), back after 1 passed; nginx reloads on each change \(setsid background process/);
    expect(notes).toEqual(['health checker: on by default for dsr-router-nat; check dns (default for udp port 53); every 5 s, down after 1 failed check(s), back after 1 passed']);
  });

  it('a running checker that took dev2 out: nothing to change (a down upstream is not drift), and the plan names it', () => {
    const { changes, notes } = plan(inv(), facts({ servers: fx('health', 'servers-dev2-down.txt'), state: fx('health', 'state-dev2-down.txt'), script: script(inv()), dir: true, alive: true }));
    expect(changes).toEqual([]);
    expect(notes[1]).toBe('health checker has taken out dev2 (172.16.0.12:53) since 2026-12-07T21:52:47Z: 3 failed check(s) in a row, last: ;; communications error to 172.16.0.12#53: connection refused ;; no servers could be reached');
  });

  it('upstreams changed: the list is rewritten, keeping the checker\'s mark on those that stay; the script changes and the checker restarts', () => {
    const three = inv({}, 3);
    const { changes } = plan(three, facts({ servers: fx('health', 'servers-dev2-down.txt'), script: script(inv()), dir: true, alive: true }));
    expect(changes.map((c) => `${c.action} ${c.id}`)).toEqual([`update file ${SERVERS}`, 'update health checker']);
    expect((changes[0]!.do[1] as { write: { content: string } }).write.content).toBe(renderServers(upstreamEntries(three, new Set(['172.16.0.12:53']))));
    expect(changes[0]!.undo).toEqual([{ restore: { path: SERVERS, key: changes[0]!.do[0] && (changes[0]!.do[0] as { backup: { key: string } }).backup.key } }]);
    expect(shown(changes[1]!.do)).toEqual(['stop the health checker (pid file)', `backup ${SCRIPT}`, `write ${SCRIPT}`, `setsid sh ${SCRIPT} &`]);
    expect(shown(changes[1]!.undo)).toEqual(['stop the health checker (pid file)', `restore ${SCRIPT}`, `setsid sh ${SCRIPT} &`]);
  });

  it('never writes a list with every upstream down', () => {
    const allButOneDown = renderServers(upstreamEntries(inv(), new Set(['172.16.0.11:53', '172.16.0.12:53', '172.16.0.13:53'])));
    const { changes } = plan(inv({}, 3), facts({ servers: allButOneDown, script: script(inv({}, 3)), dir: true, alive: true }));
    expect((changes[0]!.do[1] as { write: { content: string } }).write.content).not.toMatch(/ down;/);
  });

  it('a checker whose process died is started again, and only that is undone', () => {
    const { changes } = plan(inv(), facts({ servers: fx('health', 'servers-dev2-down.txt'), script: script(inv()), dir: true, alive: false }));
    expect(changes.map((c) => `${c.action} ${c.id}`)).toEqual(['update health checker']);
    expect(changes[0]!.summary).toMatch(/^start the health checker/);
    expect(shown(changes[0]!.do)).toEqual([`setsid sh ${SCRIPT} &`]);
    expect(shown(changes[0]!.undo)).toEqual(['stop the health checker (pid file)', `rm -f -- ${STATE}`]);
  });

  it('systemd hosts get a unit, enabled and started; undo disables and removes it', () => {
    const { changes } = plan(inv(), facts({ systemd: true }));
    const d = changes[1]!;
    expect(shown(d.do)).toEqual([
      'systemctl stop dsrctl-health.service',
      'stop the health checker (pid file)',
      `mkdir -p -m 700 ${DIR}`,
      `write ${SCRIPT}`,
      `write ${UNIT}`,
      'systemctl daemon-reload',
      'systemctl enable --quiet dsrctl-health.service',
      'systemctl restart dsrctl-health.service',
    ]);
    expect(shown(d.undo)).toEqual([
      'systemctl stop dsrctl-health.service',
      'stop the health checker (pid file)',
      'systemctl disable --quiet dsrctl-health.service',
      `remove ${SCRIPT}`,
      `remove ${UNIT}`,
      'systemctl daemon-reload',
      `rm -rf -- ${DIR}`,
    ]);
    expect(d.summary).toContain('(systemd unit dsrctl-health.service)');
    expect(renderHealthUnit()).toContain(`ExecStart=/bin/sh ${SCRIPT}`);
    // the enabled unit brings the checker back at boot: a rollback after a reboot (which runs only
    // the boot undo where nothing restored kernel state) must stop, disable and remove it all the same
    expect(shown(bootSteps(d))).toEqual([
      'systemctl stop dsrctl-health.service',
      'stop the health checker (pid file)',
      'systemctl --no-reload disable --quiet dsrctl-health.service',
      `remove ${SCRIPT}`,
      `remove ${UNIT}`,
      `rm -rf -- ${DIR}`,
    ]);
    // early in boot (DSRCTL_AT_BOOT=1) the stop never waits for a systemd job
    expect(JSON.stringify(bootSteps(d)[0])).toContain('systemctl --no-block stop dsrctl-health.service');
  });

  it('health: false removes a checker left by an earlier run; undo puts it back and starts it', () => {
    const { changes, notes } = plan(inv({ health: false }), facts({ servers: fx('health', 'servers-dev2-down.txt'), script: script(inv()), dir: true, alive: true }));
    expect(changes.map((c) => `${c.action} ${c.id}`)).toEqual([`delete file ${SERVERS}`, 'delete health checker']);
    expect(shown(changes[1]!.do)).toEqual(['stop the health checker (pid file)', `backup ${SCRIPT}`, `remove ${SCRIPT}`]);
    expect(shown(changes[1]!.undo)).toEqual([`restore ${SCRIPT}`, `setsid sh ${SCRIPT} &`]);
    expect(notes).toEqual(['no health checker: health: false']);
  });

  it('verify.check: none on a UDP service: no checker, and the plan says why', () => {
    const { changes, notes } = plan(inv({ verify: { check: 'none' } }), facts());
    expect(changes).toEqual([]);
    expect(notes).toEqual(['no health checker: no check speaks this service (verify.check: none)']);
  });
});
