/**
 * The tc stateless-NAT backend end to end, on a stock Debian kernel (this machine's has no act_nat):
 *
 *   npm run build && npx vitest run --project e2e test/e2e/tc-backend.test.ts
 *
 * test/vm/run-in-vm.sh boots linux-image-amd64 under qemu-system-x86_64 -accel tcg (installing
 * qemu-system-x86, linux-image-amd64, busybox-static and cpio itself when they are missing) with
 * this machine's root filesystem read-only under a tmpfs overlay, and runs test/vm/tc-router-nat.sh
 * inside as root: the namespace lab in dsr-router-nat mode (udp/53, dnsmasq upstreams) and the
 * built CLI over SSH with `nat.backend: tc`: plan (auto must pick tc), apply, 8 digs from the
 * client, a second apply (0 changes: the tc readback works on real output), the boot lines
 * persist.sh runs (test/vm/tc-boot-script.mjs) restoring the proxy's tc state after the qdisc is
 * deleted, twice (the second changes nothing), digs through them, rollback (every host
 * byte for byte as before, SNAPSHOT_SCRIPT from harness.ts). It prints one `@@vmcheck NAME ok|fail
 * DETAIL` line per check; this file asserts each.
 *
 * Nothing is skipped: a machine that cannot run the VM (not root, packages that do not install, no
 * act_nat kernel, qemu failing, a timeout) fails here with the runner's reason. Under TCG with the
 * machine otherwise idle the VM run takes about 4 minutes (2 cores); much longer when it is loaded.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './harness.js';
import { UPSTREAM_IPS } from './net.js';

/** the whole VM run, boot included (run-in-vm.sh kills qemu and exits 124 after it); 540 s was too
 * short at load average 8.5 once the boot-line restore (~45 s under TCG) was added */
const VM_TIMEOUT_S = 780;

interface VmRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  checks: Map<string, { ok: boolean; detail: string }>;
  digs: string[];
  times: [string, number][];
}

function runInVm(script: string): Promise<VmRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(ROOT, 'test/vm/run-in-vm.sh'), join(ROOT, script)], {
      cwd: ROOT,
      env: { ...process.env, VM_TIMEOUT: String(VM_TIMEOUT_S) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    // the runner bounds itself; this only catches a runner that hangs before it starts qemu (apt)
    const timer = setTimeout(() => child.kill('SIGTERM'), (VM_TIMEOUT_S + 900) * 1000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const checks = new Map<string, { ok: boolean; detail: string }>();
      const digs: string[] = [];
      const times: [string, number][] = [];
      for (const line of stdout.split('\n')) {
        let m = /^@@vmcheck (\S+) (ok|fail) ?(.*)$/.exec(line);
        if (m) {
          // a name seen twice keeps its first failure
          const prev = checks.get(m[1]!);
          if (!prev || prev.ok) checks.set(m[1]!, { ok: m[2] === 'ok', detail: m[3]! });
        }
        if ((m = /^@@vmdig (\d+) (\S+)$/.exec(line))) digs.push(m[2]!);
        if ((m = /^@@vmtime (\S+) ([\d.]+)$/.exec(line))) times.push([m[1]!, Number(m[2])]);
      }
      resolve({ code, signal, stdout, stderr, checks, digs, times });
    });
  });
}

const tail = (s: string, n = 8000) => (s.length > n ? `[... ${s.length - n} chars]\n${s.slice(-n)}` : s);

describe('tc stateless NAT (act_nat) in a Debian VM: dsr-router-nat with nat.backend tc, end to end', () => {
  let vm: VmRun;
  const show = () => `run-in-vm exit ${vm.code}${vm.signal ? ` (${vm.signal})` : ''}\n--- stdout ---\n${tail(vm.stdout)}\n--- stderr ---\n${tail(vm.stderr, 3000)}`;
  /** every named check printed and ok */
  const expectChecks = (...names: string[]) => {
    for (const name of names) {
      const c = vm.checks.get(name);
      expect(c, `check ${name} never ran inside the VM\n${show()}`).toBeDefined();
      expect(c!.ok, `check ${name} failed inside the VM: ${c!.detail}\n${show()}`).toBe(true);
    }
  };

  beforeAll(async () => {
    vm = await runInVm('test/vm/tc-router-nat.sh');
    console.log(
      [
        `tc backend in the VM: exit ${vm.code}; ${vm.stderr.trim().split('\n').filter((l) => l.startsWith('run-in-vm:')).pop() ?? ''}`,
        `  times (s): ${vm.times.map(([n, s]) => `${n} ${s}`).join(', ')}`,
        `  dig answers: ${vm.digs.join(' ')}`,
        `  checks: ${[...vm.checks].filter(([, c]) => c.ok).length} ok, failed: ${[...vm.checks].filter(([, c]) => !c.ok).map(([n]) => n).join(', ') || 'none'}`,
      ].join('\n'),
    );
  }, (VM_TIMEOUT_S + 960) * 1000);

  it('the VM ran the whole script (not: cannot run 125, timeout 124, usage 2, killed)', () => {
    expect(vm.code, `the VM could not run the check (run-in-vm.sh exit 125 = cannot run, 124 = timed out)\n${show()}`).not.toBe(125);
    expect(vm.code, `timed out after ${VM_TIMEOUT_S} s\n${show()}`).not.toBe(124);
    expect(vm.stdout, `the script did not finish\n${show()}`).toMatch(/^@@vmtime total [\d.]+$/m);
    expectChecks('lab-up');
    const failed = [...vm.checks].filter(([, c]) => !c.ok).map(([n, c]) => `${n}: ${c.detail}`);
    expect(failed, show()).toEqual([]);
    expect(vm.code, show()).toBe(0);
  });

  it('nat.backend auto picks tc on a kernel with act_nat (a module), and plans the guide\'s qdisc and filters', () => {
    expectChecks('auto-picks-tc');
    expect(vm.checks.get('auto-picks-tc')!.detail).toMatch(/stateless NAT backend: tc \(auto: act_nat is module\)/);
  });

  it('apply with nat.backend tc exits 0 and says tc; the tc NAT change covers the four upstreams', () => {
    expectChecks('apply-tc', 'apply-note-tc', 'apply-tc-change');
  });

  it('the proxy has htb 10: on pub0 with a u32 filter (source address and port 53) and a nat action per upstream; no dsrctl nft table', () => {
    expectChecks('qdisc-htb', 'tc-filters', 'tc-sport-match', 'no-nft-table');
  });

  it('the upstreams route their replies through the proxy', () => {
    expectChecks('route-dev1', 'route-dev2', 'route-dev3', 'route-dev4');
  });

  it('DSR works with tc doing the NAT: 8 digs from the client, all answered, by all four upstreams; act_nat counted the replies', () => {
    expectChecks('dig-answers', 'tc-nat-counted');
    expect(vm.digs, show()).toHaveLength(8);
    expect(vm.digs.filter((a) => UPSTREAM_IPS.includes(a)), `every query answered by an upstream\n${show()}`).toHaveLength(8);
    expect(new Set(vm.digs), show()).toEqual(new Set(UPSTREAM_IPS));
  });

  it('a second apply finds nothing to do (tc readback of real `tc filter show` output) and leaves the proxy as it was', () => {
    expectChecks('second-apply-no-changes', 'second-apply-untouched-proxy');
  });

  it('the boot lines (persist.sh) put back exactly what apply installed after tc lost it, change nothing when run again, and DSR works through them', () => {
    expectChecks('tc-boot-restore', 'tc-boot-idempotent', 'tc-boot-traffic');
  });

  it('rollback exits 0 and restores every host byte for byte (pub0 back to its default qdisc); dig gets no answer again', () => {
    expectChecks('rollback', 'rollback-qdisc', 'rollback-snapshot-proxy', 'rollback-snapshot-dev1', 'rollback-snapshot-dev2', 'rollback-snapshot-dev3', 'rollback-snapshot-dev4', 'rollback-no-answer');
  });
});
