/** The wizard's state, its I/O and constants, shared by its parts. */
import { relative } from 'node:path';
import type { HostFacts } from '../facts/types.js';
import type { ConnectTarget } from '../ssh/types.js';
import { type HostNet } from './overlap.js';
import { type Choice, type Draft } from './questions.js';

export type Validate = (s: string) => true | string;

/** The prompts the wizard uses (the @inquirer/prompts functions, or a test's script). */
export interface Prompter {
  select<T>(q: { message: string; choices: Choice<T>[]; default?: T }): Promise<T>;
  input(q: { message: string; default?: string; validate?: Validate }): Promise<string>;
  confirm(q: { message: string; default?: boolean }): Promise<boolean>;
  password(q: { message: string; validate?: Validate }): Promise<string>;
}

export interface WizardIo {
  ask: Prompter;
  /** one line (or several) of text for the user */
  say(text?: string): void;
  /** connect, read the host's facts (rp_filter keys included), disconnect */
  readFacts(target: ConnectTarget): Promise<HostFacts>;
  /** directory relative paths are resolved against (default inventory/ lives there) */
  cwd: string;
  /** environment for ${VAR} references when connecting (process env + .env) */
  env: Record<string, string | undefined>;
  /** run `dsrctl plan` / `apply` on the written file; `secrets` are the values behind the ${VAR}s */
  runPlan?(file: string, secrets: Record<string, string>): Promise<number>;
  runApply?(file: string, secrets: Record<string, string>): Promise<number>;
  /** for the YAML header */
  date?: string;
  /** where the built-in lab keeps its state (default /var/lib/dsrctl-lab) */
  labRoot?: string;
}

export const LAB_ROOT = '/var/lib/dsrctl-lab';

export interface WizardState {
  draft: Draft;
  /** the file written, once it is */
  saved?: string;
  /** ${VAR} name -> value typed in this session (never written anywhere) */
  secrets: Record<string, string>;
  facts: Map<string, HostNet>;
  /** host name -> its hostname, from the facts */
  factsHostnames: Map<string, string>;
  /** the proxy's facts as read (nginx -T: the servers already on the service's port) */
  proxyFacts?: HostFacts;
  /** ssh.known_hosts is a file the wizard records confirmed host keys in */
  recordKeys?: boolean;
}

export const OTHER = '\u0000other';
export const SECRET = { password: 'DSRCTL_SSH_PASSWORD', passphrase: 'DSRCTL_SSH_PASSPHRASE' } as const;
