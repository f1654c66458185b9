/**
 * The wizard's answers as a commented inventory YAML, built with the `yaml` Document API so each
 * comment belongs to its field. Pure. The output loads with loadInventory (tested).
 */
import { Document, isMap, isScalar, type Pair, type Node, type YAMLMap, type YAMLSeq } from 'yaml';
import { methodInfo, methodSummary, type Draft, type Mode } from './questions.js';

/** Greedy word wrap for comment lines; continuation lines indented by two spaces. */
function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = `  ${word}`;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out;
}

export interface RenderOptions {
  /** where the file goes, for the "check it with" lines */
  path?: string;
  /** ${VAR} references whose values the user must put in .env */
  secretVars?: string[];
  /** facts that were read, for the header ("interfaces read from the hosts over SSH") */
  factsFrom?: string[];
  /** date for the header; omitted when undefined (tests) */
  date?: string;
}

const WHAT_DSRCTL_DOES: Record<Mode, string[]> = {
  'ip-transparency': [
    'proxy: nginx `proxy_bind $remote_addr transparent;` (UDP: proxy_responses 1), workers keep their user',
    '  (nginx >= 1.13.8; else `user root;`), ip rule fwmark 1 lookup 100, local route 0.0.0.0/0 dev lo',
    '  table 100, iptables mangle MARK on the upstreams\' replies; upstreams: default route via the',
    "  proxy's private address.",
  ],
  'dsr-router-nat': [
    'proxy: nginx `proxy_bind $remote_addr:$remote_port transparent; proxy_responses 0;`, ip_forward=1',
    "  limited to the upstreams' replies, stateless NAT on the public interface rewriting the upstreams' replies to the public address;",
    "  upstreams: default route via the proxy's private address.",
  ],
  'dsr-origin-nat': [
    'proxy: nginx `proxy_bind $remote_addr:$remote_port transparent; proxy_responses 0;` and nothing else;',
    "  upstreams: stateless NAT on their own egress interface rewriting replies to the proxy's public address.",
  ],
};

/** Fields in the order the contract lists them; unknown ones follow. */
function ordered<T extends object>(obj: T, keys: string[]): T {
  const o = obj as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  for (const [k, v] of Object.entries(o)) if (!(k in out) && v !== undefined) out[k] = v;
  return out as T;
}

function canonical(d: Draft): Record<string, unknown> {
  return ordered(
    {
      ...d,
      ...(d.service ? { service: ordered(d.service, ['protocol', 'listen_port', 'upstream_port', 'client_networks']) } : {}),
      ...(d.ssh ? { ssh: ordered(d.ssh, ['user', 'port', 'private_key', 'passphrase', 'agent', 'password', 'known_hosts']) } : {}),
      ...(d.proxy
        ? { proxy: ordered(d.proxy, ['ssh_host', 'public_ip', 'public_interface', 'private_ip', 'private_interface', 'masquerade', 'managed_config', 'take_over_port']) }
        : {}),
      ...(d.upstreams ? { upstreams: d.upstreams.map((u) => ordered(u, ['name', 'ssh_host', 'ip', 'interface'])) } : {}),
      ...(d.verify
        ? {
            verify: ordered(
              { ...d.verify, ...(d.verify.probe ? { probe: ordered(d.verify.probe, ['ssh_host', 'kind', 'expect_source', 'dns_query']) } : {}) },
              ['ping_targets', 'check', 'probe'],
            ),
          }
        : {}),
    },
    ['mode', 'service', 'ssh', 'proxy', 'upstreams', 'verify', 'persist'],
  ) as Record<string, unknown>;
}

function pairAt(doc: Document, path: (string | number)[]): Pair | undefined {
  const parent = path.length > 1 ? doc.getIn(path.slice(0, -1), true) : doc.contents;
  if (!isMap(parent)) return undefined;
  const last = path[path.length - 1];
  return (parent as YAMLMap).items.find((p) => isScalar(p.key) && p.key.value === last) as Pair | undefined;
}

/** A comment line (or lines) above a field. */
function above(doc: Document, path: (string | number)[], text: string, blankLine = false): void {
  const pair = pairAt(doc, path);
  if (!pair || !isScalar(pair.key)) return;
  const key = pair.key as Node;
  key.commentBefore = text
    .split('\n')
    .map((l) => ` ${l}`)
    .join('\n');
  if (blankLine) key.spaceBefore = true;
}

/** A comment at the end of a scalar field's line. */
function inline(doc: Document, path: (string | number)[], text: string): void {
  const node = doc.getIn(path, true);
  if (isScalar(node)) node.comment = ` ${text}`;
}

export function renderInventory(draft: Draft, opts: RenderOptions = {}): string {
  const data = canonical(draft);
  const doc = new Document(data);
  const mode = draft.mode ?? 'ip-transparency';
  const m = methodInfo(mode);
  const file = opts.path ?? 'THIS_FILE';

  const header = [
    `dsrctl inventory, written by \`dsrctl wizard\`${opts.date ? ` on ${opts.date}` : ''}.`,
    ...wrap(`${m.title}: ${methodSummary(m)}.`, 96),
    'What dsrctl changes:',
    ...WHAT_DSRCTL_DOES[mode].map((l) => `  ${l}`),
    `Look first:  dsrctl plan -i ${file}        (read-only)`,
    `Then:        dsrctl apply -i ${file}       (verifies; rolls every host back on failure)`,
    `Undo:        dsrctl rollback -i ${file}`,
  ];
  if (opts.factsFrom?.length) header.push(`Interfaces and addresses were read over SSH from: ${opts.factsFrom.join(', ')}.`);
  if (opts.secretVars?.length)
    header.push(
      `Secrets are \${VAR} references, never values: put ${opts.secretVars.join(', ')} in .env (beside this`,
      'file or in the working directory; see .env.example) or in the environment.',
    );
  doc.commentBefore = header.map((l) => ` ${l}`).join('\n');

  inline(doc, ['mode'], 'ip-transparency | dsr-router-nat | dsr-origin-nat');

  above(doc, ['service'], 'The service nginx proxies', true);
  inline(doc, ['service', 'protocol'], mode === 'ip-transparency' ? 'http | tcp | udp' : 'udp: DSR works for UDP only');
  inline(doc, ['service', 'listen_port'], "where clients reach the proxy's public address");
  inline(doc, ['service', 'upstream_port'], 'where the upstreams listen');
  above(doc, ['service', 'client_networks'], "where clients come from: must not overlap the upstreams' network (the guide's \"No Overlapping IP Ranges\")");

  above(doc, ['ssh'], 'SSH defaults for every host (a host may override them under its own ssh:)', true);
  inline(doc, ['ssh', 'private_key'], 'or ${DSRCTL_SSH_KEY}, set in .env');
  inline(doc, ['ssh', 'passphrase'], "the key's passphrase: the value lives in .env, never here");
  inline(doc, ['ssh', 'password'], 'the value lives in .env, never here');
  inline(doc, ['ssh', 'agent'], 'the ssh-agent socket');
  inline(doc, ['ssh', 'known_hosts'], "every host's key must be in it: dsrctl never accepts an unknown key");

  above(doc, ['proxy'], 'The NGINX proxy', true);
  inline(doc, ['proxy', 'ssh_host'], 'where SSH reaches it');
  inline(doc, ['proxy', 'public_ip'], 'where clients reach nginx');
  inline(doc, ['proxy', 'public_interface'], 'the interface that holds public_ip');
  inline(doc, ['proxy', 'private_ip'], mode === 'dsr-origin-nat' ? 'where nginx reaches the upstreams from' : "the upstreams' gateway");
  inline(doc, ['proxy', 'private_interface'], 'the interface that holds private_ip');
  if (mode === 'dsr-origin-nat') inline(doc, ['proxy', 'masquerade'], 'not used by origin NAT (the proxy is not the gateway)');
  else inline(doc, ['proxy', 'masquerade'], 'true: ip_forward + MASQUERADE on public_interface, so upstreams reach external hosts');
  inline(doc, ['proxy', 'managed_config'], 'dsrctl owns it: backed up, restored on rollback');
  inline(doc, ['proxy', 'take_over_port'], "the other nginx servers on listen_port: their sites-enabled links are removed, put back on rollback");

  above(
    doc,
    ['upstreams'],
    [
      'The upstream servers: name, ssh_host (where SSH reaches it), ip (its address on the',
      "proxy's private network, what nginx proxies to), interface (where its replies leave",
      mode === 'dsr-origin-nat' ? 'and where origin NAT rewrites them: required)' : 'it; used by origin NAT)',
    ].join('\n'),
    true,
  );
  const ups = doc.getIn(['upstreams'], true) as YAMLSeq | undefined;
  for (const item of ups?.items ?? []) if (isMap(item)) item.flow = true;

  above(doc, ['verify'], 'Checks run after apply; when one fails every host is rolled back', true);
  above(doc, ['verify', 'ping_targets'], 'addresses every upstream must reach after apply (external ones need masquerade)');
  above(
    doc,
    ['verify', 'probe'],
    mode === 'ip-transparency'
      ? "the guide's remote client: reached over SSH, it sends requests to the proxy's public address"
      : "the guide's remote client: reached over SSH, it sends queries to the proxy's public address\n(DSR: the upstreams are also queried directly from the proxy: the active health check DSR needs)",
  );
  inline(doc, ['verify', 'probe', 'expect_source'], 'the address the upstreams must see: the probe\'s own');
  inline(doc, ['verify', 'check'], 'what the checks speak: dns (any response code is alive) or none');
  inline(doc, ['verify', 'probe', 'dns_query'], 'a name every query must really answer');

  above(
    doc,
    ['persist'],
    [
      'Keep the applied state across reboots and network restarts: on hosts with systemd, a restore',
      'unit that runs before nginx, and an unconfirmed run reverted at boot. false: runtime only, as',
      'the guide does. Either way the plan names what a reboot would lose.',
    ].join('\n'),
    true,
  );

  return doc.toString({ lineWidth: 0 });
}
