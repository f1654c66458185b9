import { posix } from 'node:path';
import { z } from 'zod';
import ipaddr from 'ipaddr.js';

// A run validates one inventory once: zod's JIT (new Function per object schema) costs more to
// compile than it saves on a single parse.
z.config({ jitless: true });

/** Linux interface names: 1-15 chars, no whitespace, '/', ':' or shell metacharacters. */
const IFNAME = /^[A-Za-z0-9_.@-]{1,15}$/;
/** DNS names or addresses for SSH: no whitespace or shell metacharacters. */
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

export const ipv4 = z.string().refine((s) => ipaddr.IPv4.isValidFourPartDecimal(s), {
  message: 'must be an IPv4 address like 172.16.0.11 (not a CIDR or a name)',
});

export const ipv4OrCidr = z.string().refine(
  (s) => ipaddr.IPv4.isValidFourPartDecimal(s) || isCidr(s),
  { message: 'must be an IPv4 address or CIDR like 172.16.0.0/24' },
);

export function isCidr(s: string): boolean {
  const [addr, len, ...rest] = s.split('/');
  if (rest.length || addr === undefined || len === undefined || !/^\d{1,2}$/.test(len)) return false;
  return ipaddr.IPv4.isValidFourPartDecimal(addr) && Number(len) <= 32;
}

export const iface = z
  .string()
  .regex(IFNAME, 'must be a Linux interface name (1-15 letters, digits, "_", ".", "-", "@"; no spaces or shell characters)');

const sshHost = z
  .string()
  .refine((s) => ipaddr.isValid(s) || HOSTNAME.test(s), { message: 'must be an IP address or a DNS name' });

const port = z.number({ error: 'must be a port number' }).int('must be a whole number').min(1, 'must be 1-65535').max(65535, 'must be 1-65535');

const absPath = z.string().regex(/^\/[^\0\n]*$/, 'must be an absolute path');

const sshAuth = {
  user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a Unix user name').optional(),
  port: port.optional(),
  private_key: z.string().min(1).optional(),
  passphrase: z.string().optional(),
  password: z.string().optional(),
  agent: z.string().optional(),
  known_hosts: z.string().min(1).optional(),
  connect_timeout: z.number().positive().optional(),
};

/** A bastion: fields it leaves out come from the inventory's `ssh:` defaults. */
export const jumpHostSchema = z.object({ ssh_host: sshHost, ...sshAuth }).strict();

export const sshSchema = z
  .object({
    ...sshAuth,
    /**
     * How to reach the host: `proxy` through the proxy's own SSH connection, a bastion object, or
     * `none` (directly; overrides a default). In `ssh:` defaults, `proxy` applies to the upstreams
     * and the probe, never to the proxy itself.
     */
    jump: z
      .union([z.enum(['proxy', 'none']), jumpHostSchema], {
        error: 'must be "proxy", "none" or a jump host like { ssh_host: bastion.example.com, user: ops }',
      })
      .optional(),
    /** run every script as root through sudo (`sudo -n sh -s`), for a non-root user */
    sudo: z.boolean({ error: 'must be true or false' }).optional(),
    /** sudo's password, when sudo asks for one (reference it from .env: ${DSRCTL_SUDO_PASSWORD}) */
    sudo_password: z.string().regex(/^[^\n\r]*$/, 'must be one line').optional(),
  })
  .strict();

export const upstreamSchema = z
  .object({
    name: z.string().regex(NAME, 'must be lower-case letters, digits, "-" or "_" (at most 32)'),
    ssh_host: sshHost,
    ip: ipv4,
    interface: iface.optional(),
    ssh: sshSchema.optional(),
  })
  .strict();

export const inventorySchema = z
  .object({
    mode: z.enum(['ip-transparency', 'dsr-router-nat', 'dsr-origin-nat'], {
      error: 'must be one of ip-transparency, dsr-router-nat, dsr-origin-nat',
    }),
    service: z
      .object({
        protocol: z.enum(['http', 'tcp', 'udp'], { error: 'must be one of http, tcp, udp' }),
        listen_port: port,
        upstream_port: port,
        /** where clients come from: must not overlap the upstreams' network (the guide's "No Overlapping IP Ranges") */
        client_networks: z.array(ipv4OrCidr).optional(),
      })
      .strict(),
    /** stateless NAT for the DSR modes: tc's nat action (the guide) or nftables netdev egress */
    nat: z
      .object({ backend: z.enum(['auto', 'tc', 'nft'], { error: 'must be one of auto, tc, nft' }).default('auto') })
      .strict()
      .default({ backend: 'auto' }),
    ssh: sshSchema.default({}),
    proxy: z
      .object({
        ssh_host: sshHost,
        public_ip: ipv4,
        public_interface: iface,
        private_ip: ipv4,
        private_interface: iface,
        masquerade: z.boolean().default(false),
        /**
         * the workers' user: `root` (the guide's `user root;`) or `keep` (leave `user` alone; nginx
         * >= 1.13.8 keeps CAP_NET_RAW in unprivileged workers). Unset: keep where the facts allow it.
         */
        nginx_user: z.enum(['keep', 'root'], { error: 'must be keep or root' }).optional(),
        /** main nginx config whose `user` directive dsrctl edits */
        nginx_conf: absPath.default('/etc/nginx/nginx.conf'),
        /** the file dsrctl owns: backed up when it exists, restored byte for byte on rollback */
        managed_config: absPath.optional(),
        /** other nginx servers on the service's port: refuse (false), or disable their sites-enabled symlinks (true; rollback restores them) */
        take_over_port: z.boolean({ error: 'must be true or false' }).default(false),
        ssh: sshSchema.optional(),
      })
      .strict(),
    upstreams: z.array(upstreamSchema).min(1, 'must list at least one upstream'),
    verify: z
      .object({
        ping_targets: z.array(ipv4).default([]),
        /** a host that can reach the proxy's public address and runs curl: the guide's "remote client" */
        /** a host that can reach the proxy's public address: the guide's "remote client" */
        probe: z
          .object({
            ssh_host: sshHost,
            ssh: sshSchema.optional(),
            /** http: GET through the proxy; dns: queries through the proxy (udp services) */
            kind: z.enum(['http', 'dns'], { error: 'must be http or dns' }).optional(),
            /** http: the client's own address as an echoing upstream must report it (the guide's test server) */
            expect_source: ipv4.optional(),
            /** dns: a name whose real answer (NOERROR with records) every query must get; without it `. SOA`, any response code */
            dns_query: z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, 'must be a DNS name').optional(),
            requests: z.number().int().min(1).max(64).default(4),
          })
          .strict()
          .optional(),
        /** query each upstream's service directly from the proxy: the active health check DSR needs */
        upstream_checks: z.boolean().default(true),
        /**
         * what the service checks speak (src/verify/service-check.ts): dns (any response code is
         * alive), http (a status code), tcp (a connection), none. Default from the service: http ->
         * http, tcp -> tcp, udp with upstream_port 53 -> dns, other udp -> none.
         */
        check: z.enum(['dns', 'http', 'tcp', 'none'], { error: 'must be one of dns, http, tcp, none' }).optional(),
        /** Method 1 without a probe: a request from the proxy to its own public address must be answered by an upstream */
        path_check: z.boolean().default(true),
        timeout_seconds: z.number().positive().max(60).default(2),
      })
      .strict()
      .default({ ping_targets: [], timeout_seconds: 2, upstream_checks: true, path_check: true }),
    /**
     * the active health checker on the proxy (src/health/): true, false, or its timing. Default:
     * on for the DSR modes (nginx never sees a reply there), off for ip-transparency.
     */
    health: z
      .union(
        [
          z.boolean(),
          z
            .object({
              /** seconds between two checks of every upstream (NGINX Plus health_check: interval=5s) */
              interval: z.number({ error: 'must be a number of seconds' }).min(1, 'must be 1-3600 seconds').max(3600, 'must be 1-3600 seconds').refine(Number.isInteger, 'must be a whole number of seconds').default(5),
              /** consecutive failed checks that take an upstream out (fails=1) */
              fails: z.number({ error: 'must be a number' }).min(1, 'must be 1-100').max(100, 'must be 1-100').refine(Number.isInteger, 'must be a whole number').default(1),
              /** consecutive passed checks that put it back (passes=1) */
              passes: z.number({ error: 'must be a number' }).min(1, 'must be 1-100').max(100, 'must be 1-100').refine(Number.isInteger, 'must be a whole number').default(1),
            })
            .strict(),
        ],
        { error: 'must be true, false or { interval, fails, passes }' },
      )
      .optional(),
    /**
     * keep what apply does across reboots and network restarts (systemd hosts: a generated restore
     * script and units, and the boot-time revert of unconfirmed runs); false: runtime only, as the
     * guide does, and the plan says what a reboot loses
     */
    persist: z.boolean({ error: 'must be true or false' }).default(true),
    rollback: z
      .object({
        /** the dead-man's switch: seconds until a host reverts itself unless the run confirms */
        timeout_seconds: z.number().int().min(10).max(3600).default(120),
      })
      .strict()
      .default({ timeout_seconds: 120 }),
  })
  .strict()
  .superRefine((inv, ctx) => {
    const seen = new Map<string, number>();
    const seenIp = new Map<string, number>();
    inv.upstreams.forEach((u, i) => {
      if (seen.has(u.name))
        ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'name'], message: `"${u.name}" is listed twice (also upstreams[${seen.get(u.name)}])` });
      seen.set(u.name, i);
      if (seenIp.has(u.ip))
        ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'ip'], message: `${u.ip} is listed twice (also upstreams[${seenIp.get(u.ip)}])` });
      seenIp.set(u.ip, i);
      if (u.ip === inv.proxy.private_ip || u.ip === inv.proxy.public_ip)
        ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'ip'], message: `${u.ip} is the proxy's own address` });
      if (u.name === 'proxy')
        ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'name'], message: '"proxy" is reserved for the proxy host' });
    });
    if (inv.mode !== 'ip-transparency' && inv.service.protocol !== 'udp')
      ctx.addIssue({
        code: 'custom',
        path: ['service', 'protocol'],
        message: `${inv.mode} works for UDP only (the guide: "DSR is of limited use for TCP protocols"); use protocol: udp or mode: ip-transparency`,
      });
    if (inv.service.protocol === 'udp' && (inv.verify.check === 'http' || inv.verify.check === 'tcp'))
      ctx.addIssue({ code: 'custom', path: ['verify', 'check'], message: `${inv.verify.check} needs a TCP service (service.protocol is udp); use dns or none` });
    if (inv.proxy.ssh?.jump === 'proxy')
      ctx.addIssue({
        code: 'custom',
        path: ['proxy', 'ssh', 'jump'],
        message: 'the proxy cannot be its own jump host ("proxy" means "through the proxy\'s SSH connection"); use a bastion { ssh_host: ... } or leave it out',
      });
    // "/etc/nginx/./nginx.conf" and "//etc/nginx/nginx.conf" are nginx.conf too (symlinks are resolved on the host)
    if (inv.proxy.managed_config !== undefined && posix.normalize(inv.proxy.managed_config) === posix.normalize(inv.proxy.nginx_conf))
      ctx.addIssue({ code: 'custom', path: ['proxy', 'managed_config'], message: `is proxy.nginx_conf (${inv.proxy.nginx_conf}) under another spelling: dsrctl replaces the managed file whole; give it a file of its own` });
    if (inv.proxy.public_ip === inv.proxy.private_ip)
      ctx.addIssue({ code: 'custom', path: ['proxy', 'private_ip'], message: 'must differ from proxy.public_ip' });
    if (inv.mode !== 'ip-transparency' && inv.nat.backend === 'tc' && inv.service.listen_port !== inv.service.upstream_port)
      ctx.addIssue({
        code: 'custom',
        path: ['nat', 'backend'],
        message: `tc's nat action rewrites addresses only, so replies from port ${inv.service.upstream_port} would reach clients that asked port ${inv.service.listen_port}; use backend nft (or auto), or the same port`,
      });
    if (inv.mode === 'dsr-origin-nat')
      inv.upstreams.forEach((u, i) => {
        if (!u.interface) ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'interface'], message: 'is required for dsr-origin-nat: the interface whose egress rewrites the replies' });
      });
    (inv.service.client_networks ?? []).forEach((net, i) => {
      for (const [what, ip] of [['the proxy\'s private address', inv.proxy.private_ip], ...inv.upstreams.map((u) => [`upstream ${u.name}`, u.ip])] as [string, string][])
        if (contains(net, ip))
          ctx.addIssue({
            code: 'custom',
            path: ['service', 'client_networks', i],
            message: `${net} contains ${what} (${ip}): client and upstream networks must not overlap, or reverse path filtering drops packets and replies skip the proxy (the guide's "No Overlapping IP Ranges")`,
          });
    });
  })
  .transform((inv) => ({
    ...inv,
    proxy: {
      ...inv.proxy,
      // a stream server cannot live in conf.d, which Debian includes inside http {}
      managed_config: inv.proxy.managed_config ?? (inv.service.protocol === 'http' ? '/etc/nginx/conf.d/dsrctl.conf' : '/etc/nginx/dsrctl/stream.conf'),
    },
  }));

/** Does an address or CIDR contain an address? */
export function contains(net: string, ip: string): boolean {
  const [addr, len] = net.includes('/') ? net.split('/') : [net, '32'];
  return ipaddr.IPv4.parse(ip).match(ipaddr.IPv4.parse(addr!), Number(len));
}

export type Inventory = z.output<typeof inventorySchema>;
export type Upstream = z.infer<typeof upstreamSchema>;
export type SshOptions = z.infer<typeof sshSchema>;
export type JumpHost = z.infer<typeof jumpHostSchema>;
