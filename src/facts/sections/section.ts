import type { Section } from '../format.js';
import type { FactsRequest } from '../types.js';

/**
 * One fact of a host, in one file: the shell that prints its section(s) of the facts script and
 * the parser that reads them back. The registry (sections/index.ts) lists them in script order;
 * script.ts and parse.ts only frame them. Fixtures of real output: test/fixtures/facts/.
 */
export interface FactSection<F extends object = object> {
  /** its name in FactsRequest.sections */
  id: string;
  /**
   * Read only when a request names it (FactsRequest.sections; a request without `sections` reads
   * every fact): the facts of a host whose resources do not need it are then `notRead()`.
   */
  optional?: {
    /** its part of HostFacts when it was not read: empty, as if there were nothing to see */
    notRead(): F;
    /**
     * Change-id prefixes of dsrctl's own changes to what it reads ("iptables "): read anyway, though
     * not requested, when dsrctl's journal has a run still in place that made one (prune must see
     * what an earlier run of another mode left).
     */
    leftBy?: string[];
  };
  /** section names it prints: `single` ones exactly once (their absence means a truncated output), `repeated` any number of times */
  single?: readonly string[];
  repeated?: readonly string[];
  /** shell functions its lines call, put before the facts function */
  helpers?: string;
  /**
   * Files it reads with `fileinfo` (sections/files.ts), as (section name, path) pairs: the script
   * reads every fact's in one fileinfo call, where the first fact that has any stands.
   */
  files?(req: FactsRequest): [string, string][];
  /** its lines of the facts function, for this request */
  shell(req: FactsRequest): string[];
  /** its part of HostFacts (HostFacts is the intersection of every fact's part: types.ts) */
  parse(ctx: ParseContext): F;
}

export interface ParseContext {
  /** every section of the output, in order */
  sections: Section[];
  /** a `single` section */
  one(name: string): Section;
  /** every section of this name */
  all(name: string): Section[];
  /** a section that older scripts did not print */
  maybe(name: string): Section | undefined;
  /** the body of a single section whose command must succeed; a failure is recorded, the body is then "" */
  ok(name: string): string;
  /** the body of a single section without which there is nothing worth planning on (throws) */
  must(name: string): string;
  /** sections that did not read completely, and why */
  incomplete: { section: string; reason: string }[];
}

export const reason = (rc: number) => (rc === 127 ? 'command not found' : `exit status ${rc}`);
