import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { parseInventoryText } from './load.js';
import { UserError } from '../util/errors.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/inventory/valid.yaml', import.meta.url));
const text = readFileSync(FIXTURE, 'utf8');
const env = { DSR_TEST_KEY: '/keys/id_ed25519' };

/** Edit one field of the valid inventory with the yaml document API, keeping the rest. */
function edit(path: (string | number)[], value: unknown): string {
  const doc = parseDocument(text);
  if (value === undefined) doc.deleteIn(path);
  else doc.setIn(path, value);
  return doc.toString();
}

function errorOf(yaml: string, e: Record<string, string> = env): string {
  try {
    parseInventoryText(yaml, 'inv.yaml', e);
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return (err as Error).message;
  }
  throw new Error('expected the inventory to be rejected');
}

describe('inventory loading', () => {
  it('accepts the contract example, expands ${VAR} and resolves relative paths beside the inventory', () => {
    const inv = parseInventoryText(text, FIXTURE, env);
    expect(inv.ssh.private_key).toBe('/keys/id_ed25519');
    expect(inv.ssh.known_hosts).toBe(fileURLToPath(new URL('../../test/fixtures/inventory/known_hosts', import.meta.url)));
    expect(inv.proxy.masquerade).toBe(false);
    expect(inv.proxy.managed_config).toBe('/etc/nginx/conf.d/dsrctl.conf');
    expect(inv.rollback.timeout_seconds).toBe(120);
  });

  it.each([
    ['a missing field', edit(['proxy', 'public_ip'], undefined), /proxy\.public_ip: is required/],
    ['an address that is not an IP', edit(['proxy', 'public_ip'], 'proxy.example'), /proxy\.public_ip: must be an IPv4 address.*\(got "proxy\.example"\)/],
    ['a CIDR where an IP belongs', edit(['upstreams', 0, 'ip'], '172.16.0.0/24'), /upstreams\[0\]\.ip: must be an IPv4 address like .* \(not a CIDR/],
    ['an interface name with a space', edit(['proxy', 'public_interface'], 'eth 0'), /proxy\.public_interface: must be a Linux interface name/],
    ['an interface name with a ;', edit(['upstreams', 1, 'interface'], 'eth2;reboot'), /upstreams\[1\]\.interface: must be a Linux interface name/],
    ['an upstream listed twice', edit(['upstreams', 1, 'name'], 'dev1'), /upstreams\[1\]\.name: "dev1" is listed twice/],
    ['the same upstream address twice', edit(['upstreams', 1, 'ip'], '172.16.0.11'), /upstreams\[1\]\.ip: 172\.16\.0\.11 is listed twice/],
    ['a port of 70000', edit(['service', 'listen_port'], 70000), /service\.listen_port: must be 1-65535 \(got 70000\)/],
    ['an unknown mode', edit(['mode'], 'dsr'), /mode: must be one of ip-transparency, dsr-router-nat, dsr-origin-nat/],
    ['a misspelt field', edit(['proxy', 'public_iface'], 'eth0'), /proxy: unknown field "public_iface"/],
    ['DSR with http', edit(['mode'], 'dsr-router-nat'), /service\.protocol: dsr-router-nat works for UDP only/],
    ['YAML that does not parse', 'mode: ip-transparency\nservice: [unclosed\n', /inv\.yaml: YAML does not parse \(line \d+, column \d+\)/],
    ['nginx.conf as managed_config under a second spelling', edit(['proxy', 'managed_config'], '/etc/nginx/./nginx.conf'), /proxy\.managed_config: is proxy\.nginx_conf \(\/etc\/nginx\/nginx\.conf\) under another spelling/],
    ['nginx.conf as managed_config with a double slash', edit(['proxy', 'managed_config'], '//etc//nginx/nginx.conf'), /proxy\.managed_config: is proxy\.nginx_conf/],
    ['a document that is not a mapping', '- just\n- a list\n', /must be a YAML mapping/],
    ['an nginx_user other than keep or root', edit(['proxy', 'nginx_user'], 'www-data'), /proxy\.nginx_user: must be keep or root/],
  ])('rejects %s, naming the field', (_name, yaml, pattern) => {
    expect(errorOf(yaml)).toMatch(pattern);
  });

  it('names the field whose ${VAR} is not set', () => {
    expect(errorOf(text, {})).toMatch(/ssh\.private_key: \$\{DSR_TEST_KEY\} is not set/);
  });

  it('never prints a value that came from ${VAR}, even in a field not named like a secret', () => {
    const secret = 'S3cr3t-Pw!x';
    const e = { ...env, DSRCTL_SUDO_PASSWORD: secret };
    const inUser = errorOf(edit(['ssh', 'user'], '${DSRCTL_SUDO_PASSWORD}'), e);
    expect(inUser).toMatch(/ssh\.user: must be a Unix user name.*\(got the value of \$\{DSRCTL_SUDO_PASSWORD\}\)/);
    expect(inUser).not.toContain(secret);
    // a message that quotes the value itself ("... is listed twice")
    const doc = parseDocument(text);
    doc.setIn(['upstreams', 0, 'name'], '${N}');
    doc.setIn(['upstreams', 1, 'name'], '${N}');
    const twice = errorOf(doc.toString(), { ...env, N: secret });
    expect(twice).toMatch(/upstreams\[1\]\.name: "<the value of \$\{N\}>" is listed twice/);
    expect(twice).not.toContain(secret);
    // a whole object whose member came from the environment
    const obj = errorOf(edit(['upstreams', 0], { name: '${N}', ip: 'x' }), { ...env, N: secret });
    expect(obj).not.toContain(secret);
  });

  it('rejects a YAML alias that contains itself with exit 2, not a stack overflow', () => {
    expect(errorOf('a: &a [*a]\n')).toMatch(/inv\.yaml: a\[0\]: a YAML alias refers to a node that contains it/);
    expect(errorOf(`${text}x: &x { y: *x }\n`)).toMatch(/x\.y: a YAML alias refers to a node that contains it/);
  });

  it('lists every problem at once', () => {
    const yaml = edit(['service', 'upstream_port'], 0).replace('public_ip: 192.168.99.10', 'public_ip: 300.1.1.1');
    const msg = errorOf(yaml);
    expect(msg).toMatch(/service\.upstream_port/);
    expect(msg).toMatch(/proxy\.public_ip/);
  });
});
