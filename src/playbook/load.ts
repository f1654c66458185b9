import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { PACKAGE_ROOT } from '../util/package-root.js';

/** One resource entry of a playbook, before interpolation. Kind-specific fields stay loose here. */
const entrySchema = z
  .object({
    kind: z.string(),
    foreach: z.literal('upstreams').optional(),
    when: z.string().optional(),
  })
  .passthrough();

export const playbookSchema = z
  .object({
    mode: z.string(),
    protocols: z.array(z.enum(['http', 'tcp', 'udp'])),
    health_checks: z.enum(['passive', 'active']),
    nginx: z
      .object({
        proxy_bind: z.string(),
        udp_directives: z.array(z.string()).default([]),
      })
      .strict(),
    proxy: z.array(entrySchema).default([]),
    upstream: z.array(entrySchema).default([]),
  })
  .strict();

export type Playbook = z.infer<typeof playbookSchema>;
export type PlaybookEntry = z.infer<typeof entrySchema>;

export const PLAYBOOK_DIR = join(PACKAGE_ROOT, 'playbooks') + '/';

export function loadPlaybook(mode: string, dir = PLAYBOOK_DIR): Playbook {
  const file = join(dir, `${mode}.yaml`);
  const raw = parse(readFileSync(file, 'utf8'));
  const pb = playbookSchema.parse(raw);
  if (pb.mode !== mode) throw new Error(`${file}: declares mode ${pb.mode}, expected ${mode}`);
  return pb;
}
