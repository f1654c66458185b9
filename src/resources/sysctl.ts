import { z } from 'zod';
import { quote } from 'shell-quote';
import { PlanError, type ResourceKind } from './types.js';

const schema = z.object({
  key: z.string().regex(/^[a-z0-9_.]+$/),
  value: z.string().regex(/^[0-9 ]+$/),
  /** keys the kernel rewrites along with this one, put back on undo (ip_forward resets conf.all.accept_redirects) */
  restore: z.array(z.string().regex(/^[a-z0-9_.]+$/)).default([]),
});
type Spec = z.infer<typeof schema>;

export const sysctl: ResourceKind<Spec> = {
  kind: 'sysctl',
  schema,
  facts: (spec) => ({ sysctls: [spec.key, ...spec.restore] }),
  boot: (spec) => [{ what: `sysctl ${spec.key}=${spec.value}`, lines: [quote(['sysctl', '-q', '-w', `${spec.key}=${spec.value}`])] }],
  plan(spec, facts, ctx) {
    const current = facts.sysctl[spec.key];
    if (current === undefined) throw new PlanError(ctx.host, `sysctl ${spec.key} does not exist on this kernel`);
    // multi-value sysctls print tab-separated (tcp_rmem: "4096\t131072\t6291456")
    const norm = (v: string) => v.trim().split(/\s+/).join(' ');
    if (norm(current) === norm(spec.value)) return null;
    return {
      kind: 'sysctl',
      id: `sysctl ${spec.key}`,
      action: 'update',
      summary: `set ${spec.key} ${current} -> ${spec.value}`,
      do: [{ run: ['sysctl', '-q', '-w', `${spec.key}=${spec.value}`] }],
      undo: [
        { run: ['sysctl', '-q', '-w', `${spec.key}=${current}`] },
        ...spec.restore.filter((k) => facts.sysctl[k] !== undefined).map((k) => ({ run: ['sysctl', '-q', '-w', `${k}=${facts.sysctl[k]}`] })),
      ],
    };
  },
};
