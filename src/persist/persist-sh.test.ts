/**
 * Persistence for real (sh): the apply script writes the persistence files of a systemd host, then
 * `rollback.sh --all` (the rollback command) or `rollback.sh --boot` (dsrctl-boot-revert.service
 * after a reboot of an unconfirmed run) puts every file back exactly. In a private mount namespace
 * whose /var/lib/dsrctl, /etc/systemd/system and /etc/systemd/network are tmpfs (needs root, like
 * the lab): nothing reaches the machine's own files.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { quote } from 'shell-quote';
import { describe, expect, it } from 'vitest';
import { parseFacts } from '../facts/parse.js';
import { readFileSync } from 'node:fs';
import type { FileFact, HostFacts } from '../facts/types.js';
import { inventorySchema } from '../inventory/schema.js';
import { loadPlaybook } from '../playbook/load.js';
import { desiredHosts } from '../plan/desired.js';
import { planHost } from '../plan/plan-host.js';
import { renderApplyScript } from '../apply/apply-script.js';
import { disarmSwitchScript } from '../apply/switch.js';
import { runDir } from '../apply/paths.js';
import { persistFactsFiles } from './plan.js';

const root = process.getuid?.() === 0;
const NETWORK = '[Match]\nName=priv0\n\n[Network]\nAddress=172.16.0.11/24\nGateway=172.16.0.254\n';
const NETFILE = '/etc/systemd/network/10-priv0.network';

function facts(): HostFacts {
  const f = parseFacts(readFileSync(new URL('../../test/fixtures/facts/pristine-upstream.txt', import.meta.url), 'utf8'));
  f.hasSystemd = true;
  const d = { path: '/etc/systemd/system', uid: 0, gid: 0, mode: '755' };
  const absent = (path: string): FileFact => ({ path, exists: false, realpath: path, dir: d });
  for (const p of persistFactsFiles()) f.files[p] = p.endsWith('multi-user.target.wants') ? { ...absent(p), exists: true, type: 'dir' } : absent(p);
  f.netmgr = {
    systemdVersion: 252,
    units: { 'systemd-networkd': 'active', NetworkManager: 'inactive', networking: 'inactive' },
    networkd: [{ name: 'priv0', adminState: 'configured', networkFile: NETFILE, dropins: [] }],
    files: { [NETFILE]: { path: NETFILE, exists: true, type: 'file', content: NETWORK, sha256: createHash('sha256').update(NETWORK).digest('hex'), realpath: NETFILE } },
  };
  return f;
}

/** The plan's persistence changes alone (the runtime change would touch this machine's routes). */
function persistPlan() {
  const inv = inventorySchema.parse({
    mode: 'ip-transparency',
    service: { protocol: 'http', listen_port: 80, upstream_port: 8080 },
    proxy: { ssh_host: '10.211.0.10', public_ip: '192.168.99.10', public_interface: 'pub0', private_ip: '172.16.0.1', private_interface: 'priv0' },
    upstreams: [{ name: 'dev1', ssh_host: '10.211.0.11', ip: '172.16.0.11' }],
  });
  const pb = loadPlaybook(inv.mode);
  const p = planHost(inv, pb, desiredHosts(inv, pb).find((t) => t.name === 'dev1')!, facts());
  return { ...p, changes: p.changes.filter((c) => c.kind === 'persist') };
}

/** Everything under the persistence paths: type, link target, mode, content hash. */
const SNAPSHOT = `find /etc/systemd/system /etc/systemd/network /var/lib/dsrctl/persist.sh -printf '%p %y %l %m\\n' 2>/dev/null | sort; sha256sum ${NETFILE}`;

function inNamespace(body: string[]): { out: string; code: number } {
  const dir = mkdtempSync(join(tmpdir(), 'dsrctl-persist-'));
  const script = [
    'set -u',
    'mount -t tmpfs t /var/lib/dsrctl && mount -t tmpfs t /etc/systemd/system && mount -t tmpfs t /etc/systemd/network || exit 99',
    'mkdir /etc/systemd/system/multi-user.target.wants',
    `printf '%s' ${quote([NETWORK])} > ${NETFILE}`,
    ...body,
  ].join('\n');
  writeFileSync(join(dir, 't.sh'), script);
  const res = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', join(dir, 't.sh')], { encoding: 'utf8', timeout: 60_000 });
  rmSync(dir, { recursive: true, force: true });
  return { out: res.stdout + res.stderr, code: res.status ?? -1 };
}

const RUN = '20261208T000000Z-persis';

describe.skipIf(!root)('persistence files on disk: apply, then rollback or a boot-time revert, back to exactly before', () => {
  const plan = persistPlan();
  const apply = renderApplyScript(plan, RUN, { switchSeconds: 3600 });
  const applyAndCheck = [
    `before=$(${SNAPSHOT})`,
    `cat > /tmp/apply.$$ <<'DSRCTL_EOF'\n${apply}\nDSRCTL_EOF`,
    'sh /tmp/apply.$$ > /tmp/apply.out.$$ 2>&1; rc=$?; rm -f /tmp/apply.$$',
    // the switch (a setsid sleeper here: no systemd) must not outlive the test
    disarmSwitchScript(quote([runDir(RUN)])),
    'cat /tmp/apply.out.$$; rm -f /tmp/apply.out.$$; echo "apply-rc=$rc"',
    'echo "persist-unit=$(readlink /etc/systemd/system/multi-user.target.wants/dsrctl-persist.service)"',
    'echo "revert-unit=$(readlink /etc/systemd/system/sysinit.target.wants/dsrctl-boot-revert.service)"',
    `echo "gateway=$(grep Gateway ${NETFILE})"`,
    'echo "boot-files=$(ls /var/lib/dsrctl/runs/*/changes/ | grep -c "\\.boot$")"',
  ];

  it('apply writes them (units enabled by their symlinks, the .network file edited); rollback --all removes every one', () => {
    const r = inNamespace([
      ...applyAndCheck,
      'sh /var/lib/dsrctl/rollback.sh --all "dsrctl rollback" >/dev/null; echo "rollback-rc=$?"',
      `after=$(${SNAPSHOT}); [ "$before" = "$after" ] && echo same || { echo DIFFERENT; echo "$before"; echo "$after"; }`,
    ]);
    expect(r.out).toContain('@@dsrctl-applied');
    expect(r.out).toContain('apply-rc=0');
    expect(r.out).toContain('persist-unit=/etc/systemd/system/dsrctl-persist.service');
    expect(r.out).toContain('revert-unit=/etc/systemd/system/dsrctl-boot-revert.service');
    expect(r.out).toContain('gateway=#dsrctl# Gateway=172.16.0.254');
    // every change of a persistence plan is a file change: each has its boot undo
    expect(r.out).toContain(`boot-files=${plan.changes.length}`);
    expect(r.out).toContain('rollback-rc=0');
    expect(r.out).toMatch(/\nsame\n/);
  });

  it('rollback.sh --boot reverts an unconfirmed run: files back, run rolled back, by=boot recorded, its lock gone; a second boot does nothing', () => {
    const r = inNamespace([
      ...applyAndCheck,
      `echo "run=${RUN} command=apply agent=x pid=1 time=t" > /var/lib/dsrctl/lock`,
      'sh /var/lib/dsrctl/rollback.sh --boot; echo "boot-rc=$?"',
      `after=$(${SNAPSHOT}); [ "$before" = "$after" ] && echo same || { echo DIFFERENT; echo "$before"; echo "$after"; }`,
      `echo "status=$(cat ${runDir(RUN)}/status) by=$(cat ${runDir(RUN)}/claimed/by)"`,
      'echo "reverted=$(cat /var/lib/dsrctl/reverted)"',
      '[ -e /var/lib/dsrctl/lock ] && echo lock-left || echo lock-gone',
      'sh /var/lib/dsrctl/rollback.sh --boot; echo "second-boot-rc=$? $(ls /etc/systemd/system | tr "\\n" " ")"',
    ]);
    expect(r.out).toContain('apply-rc=0');
    expect(r.out).toContain('boot-rc=0');
    expect(r.out).toMatch(/\nsame\n/);
    expect(r.out).toContain('status=rolled-back by=boot');
    expect(r.out).toMatch(new RegExp(`reverted=run=${RUN} time=\\S+ status=rolled-back by=boot`));
    expect(r.out).toContain('lock-gone');
    expect(r.out).toContain('second-boot-rc=0 multi-user.target.wants ');
  });

  it('a confirmed run is left alone at boot', () => {
    const r = inNamespace([
      ...applyAndCheck,
      `echo committed > ${runDir(RUN)}/status`,
      'sh /var/lib/dsrctl/rollback.sh --boot; echo "boot-rc=$?"',
      'echo "persist-unit=$(readlink /etc/systemd/system/multi-user.target.wants/dsrctl-persist.service)" ; [ -e /var/lib/dsrctl/reverted ] && echo reverted || echo not-reverted',
    ]);
    expect(r.out).toContain('boot-rc=0');
    expect(r.out).toContain('not-reverted');
    expect(r.out.match(/persist-unit=\/etc\/systemd\/system\/dsrctl-persist.service/g)).toHaveLength(2);
  });
});
