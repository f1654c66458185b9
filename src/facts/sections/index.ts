import type { FactSection } from './section.js';
import { identity } from './identity.js';
import { ip } from './ip.js';
import { sysctl } from './sysctl.js';
import { iptables } from './iptables.js';
import { nat } from './nat.js';
import { nginx } from './nginx.js';
import { files } from './files.js';
import { journal } from './journal.js';
import { reads } from './reads.js';
import { health } from './health.js';
import { netmgr } from './netmgr.js';

/**
 * Every fact of a host, in the order the facts script reads them. Adding one is one file here:
 * its shell and its parser side by side (section.ts), and a line in this list.
 */
export const FACT_SECTIONS = [identity, ip, sysctl, iptables, nat, nginx, files, journal, reads, health, netmgr] as const;

/** Every fact's part of HostFacts, put together: HostFacts follows the registry by itself. */
export type SectionFacts = Parts<typeof FACT_SECTIONS>;
type Parts<T> = T extends readonly [FactSection<infer F>, ...infer Rest] ? F & Parts<Rest> : unknown;

export type { FactSection, ParseContext } from './section.js';
