/**
 * A real terminal for e2e tests: the built CLI in a tmux pane (a tmux server of its own, on a
 * private socket), read from the screen and answered with keys as a person would.
 */
import { expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from './harness.js';

export const HAVE_TMUX = spawnSync('sh', ['-c', 'command -v tmux'], { encoding: 'utf8' }).status === 0;

/** One terminal: a tmux server of our own (private socket), one 120x50 pane running a command. */
export class Term {
  private readonly dir = mkdtempSync(join(tmpdir(), 'dsrctl-tmux-'));
  private readonly sock = join(this.dir, 'sock');
  constructor(
    readonly cwd: string,
    command: string,
    env: Record<string, string>,
  ) {
    const conf = join(this.dir, 'tmux.conf');
    writeFileSync(conf, 'set -g history-limit 50000\nset -g status off\n');
    const envs = Object.entries(env).map(([k, v]) => `${k}=${shq(v)}`).join(' ');
    // the pane stays after the command ends, showing its exit status
    const cmd = `env -u SSH_AUTH_SOCK ${envs} ${command}; echo "[exited $?]"; exec sleep 3600`;
    this.tmux(['-f', conf, 'new-session', '-d', '-x', '120', '-y', '50', '-s', 'w', '-c', cwd, cmd]);
  }
  private tmux(args: string[]): string {
    const r = spawnSync('tmux', ['-S', this.sock, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }
  /** Everything the pane shows and showed (scrollback), wrapped lines joined. */
  screen(): string {
    return this.tmux(['capture-pane', '-p', '-J', '-S', '-50000', '-t', 'w'])
      .split('\n')
      .map((l) => l.trimEnd())
      .join('\n')
      .replace(/\n+$/, '');
  }
  lines(): string[] {
    return this.screen().split('\n');
  }
  async waitFor(re: RegExp, timeoutMs = 20_000): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const s = this.screen();
      const m = re.exec(s);
      if (m) return m[0];
      if (Date.now() > end) throw new Error(`the screen never showed ${re}:\n${s.split('\n').slice(-40).join('\n')}`);
      await sleep(100);
    }
  }
  /** The question being asked now: the last prompt line, when it is still open ("? ..."). */
  active(): { line: string; index: number } | undefined {
    const ls = this.lines();
    for (let i = ls.length - 1; i >= 0; i--) {
      if (ls[i]!.startsWith('✔ ')) return undefined;
      if (ls[i]!.startsWith('? ')) return { line: ls[i]!, index: i };
    }
    return undefined;
  }
  async question(re: RegExp, timeoutMs = 20_000): Promise<{ line: string; index: number }> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const a = this.active();
      if (a && re.test(a.line)) return a;
      if (Date.now() > end) throw new Error(`no open question matching ${re}; the screen ends:\n${this.lines().slice(-30).join('\n')}`);
      await sleep(100);
    }
  }
  keys(...keys: string[]): void {
    this.tmux(['send-keys', '-t', 'w', ...keys]);
  }
  /** Answer an input or confirm question: clear the line, type, Enter. '' takes the default. */
  async answer(re: RegExp, text: string): Promise<void> {
    await this.question(re);
    this.keys('C-u');
    if (text) this.tmux(['send-keys', '-t', 'w', '-l', text]);
    this.keys('Enter');
    await this.answered(re);
  }
  /** Type an answer the wizard must refuse with `reason`; the question stays open. */
  async refused(re: RegExp, text: string, reason: RegExp): Promise<void> {
    const q = await this.question(re);
    this.keys('C-u');
    if (text) this.tmux(['send-keys', '-t', 'w', '-l', text]);
    this.keys('Enter');
    const end = Date.now() + 10_000;
    for (;;) {
      const after = this.lines().slice(q.index);
      if (after.some((l) => reason.test(l))) break;
      if (Date.now() > end) throw new Error(`"${text}" was not refused with ${reason}:\n${after.join('\n')}`);
      await sleep(100);
    }
    expect(this.active()?.line).toMatch(re);
  }
  /** Select the choice whose line contains `label`, with the arrow keys, as a person would. */
  async choose(re: RegExp, label: string): Promise<void> {
    const q = await this.question(re);
    const choices = () => {
      const out: { text: string; active: boolean }[] = [];
      for (const l of this.lines().slice(q.index + 1)) {
        if (l === '' || l.includes('↑↓')) break;
        if (l.startsWith('❯ ')) out.push({ text: l.slice(2), active: true });
        else if (l.startsWith('  ')) out.push({ text: l.slice(2), active: false }); // disabled ones: "- name (why)"
      }
      return out;
    };
    const list = choices();
    const from = list.findIndex((c) => c.active);
    const to = list.findIndex((c) => c.text.includes(label));
    if (to < 0) throw new Error(`"${label}" is not offered for ${re}:\n${list.map((c) => c.text).join('\n')}`);
    for (let i = 0; i < Math.abs(to - from); i++) this.keys(to > from ? 'Down' : 'Up');
    const end = Date.now() + 5000;
    while (!choices().find((c) => c.active)?.text.includes(label)) {
      if (Date.now() > end) throw new Error(`could not move to "${label}"`);
      await sleep(50);
    }
    this.keys('Enter');
    await this.answered(re);
  }
  private async answered(re: RegExp): Promise<void> {
    const end = Date.now() + 60_000;
    for (;;) {
      const a = this.active();
      if (!a || !re.test(a.line) || /^>/m.test(this.lines().slice(a.index + 1).join('\n'))) return;
      if (Date.now() > end) throw new Error(`the answer to ${re} was not taken`);
      await sleep(50);
    }
  }
  /** PIDs of the pane's command's processes (the shell the pane runs, and its children). */
  commandPids(): number[] {
    const shell = Number(this.tmux(['display-message', '-p', '-t', 'w', '#{pane_pid}']).trim());
    const kids = spawnSync('pgrep', ['-P', String(shell)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number);
    return [shell, ...kids];
  }
  close(): void {
    try {
      this.tmux(['kill-server']);
    } catch {
      /* already gone */
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

