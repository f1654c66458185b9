/**
 * Integrity and secrecy of what dsrctl touches (issue 14), end to end against the lab with the
 * real CLI (dist/cli.js: run `npm run build` first):
 *
 *   DSR_E2E_TAG=A DSR_E2E_OCTET_BASE=120 npx vitest run --project e2e test/e2e/integrity.test.ts
 *
 * The proxy's nginx.conf is made root-only (0600), with a Latin-1 byte in a comment and a secret
 * line, before the first snapshot: apply and rollback must keep every byte, and nothing dsrctl
 * journals may let `nobody` read it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { UPSTREAMS, labUp, labDown, onHost, run, settledSnapshotAll, inventoryReplacing, inventoryVariant } from './harness.js';
import { show, output, expectCode, expectSnapshots, noStack } from './expect.js';

const SECRET_LINE = '# secret: hunter2-e2e';
const NGINX_CONF = '/etc/nginx/nginx.conf';
let before: Record<string, string>;

const sh = (host: string, cmd: string) => {
  const r = onHost(host, cmd);
  if (r.code !== 0) throw new Error(`${host}: ${cmd}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
};

let asGuide: string;

beforeAll(async () => {
  labUp();
  asGuide = inventoryReplacing('  masquerade: false', '  masquerade: false\n  nginx_user: root');
  sh('proxy', `printf '# caf\\351 (a Latin-1 byte)\\n%s\\n' '${SECRET_LINE}' >> ${NGINX_CONF} && chmod 600 ${NGINX_CONF}`);
  before = await settledSnapshotAll();
}, 240_000);

afterAll(() => {
  labDown();
});

describe('bad input: exit 2, nothing printed that should not be', () => {
  it('a self-referencing YAML alias exits 2 with a message, not a stack overflow', async () => {
    const inv = inventoryVariant((y) => `${y}\nbomb: &a [*a]\n`);
    const r = await run(['plan'], inv);
    expectCode(r, 2, 'plan with an alias bomb');
    expect(r.stderr, show(r)).toContain('bomb[0]: a YAML alias refers to a node that contains it');
    expect(output(r)).not.toMatch(/Maximum call stack|RangeError/);
    noStack(r, 'alias bomb');
  });

  it('a ${VAR} secret expanded into the wrong field is never printed, only named', async () => {
    const secret = 'S3cr3t-Pw!x-e2e';
    const inv = inventoryReplacing(/user: root/, 'user: ${DSRCTL_SUDO_PASSWORD}');
    for (const args of [['plan'], ['plan', '--json'], ['apply', '--yes']]) {
      const r = await run(args, inv, { DSRCTL_SUDO_PASSWORD: secret });
      expectCode(r, 2, `${args.join(' ')} with the secret in ssh.user`);
      expect(output(r), show(r)).not.toContain(secret);
      expect(r.stderr, show(r)).toContain('ssh.user: must be a Unix user name');
      expect(r.stderr, show(r)).toContain('(got the value of ${DSRCTL_SUDO_PASSWORD})');
    }
  });
});

describe('a second spelling of nginx.conf', () => {
  it('as managed_config, "/etc/nginx/./nginx.conf" or "//", is refused before connecting (exit 2)', async () => {
    for (const spelling of ['/etc/nginx/./nginx.conf', '//etc/nginx//nginx.conf']) {
      const r = await run(['apply', '--yes'], inventoryReplacing(/managed_config: .*/, `managed_config: ${spelling}`));
      expectCode(r, 2, `apply with managed_config ${spelling}`);
      expect(r.stderr, show(r)).toContain('proxy.managed_config: is proxy.nginx_conf (/etc/nginx/nginx.conf) under another spelling');
    }
    expectSnapshots(before, 'after the refused second spellings');
  });

  it('through a symlink, is refused on the host (exit 2, naming both fields), nothing changed', async () => {
    sh('proxy', 'ln -s nginx.conf /etc/nginx/managed-link.conf');
    try {
      // another port: app.conf keeps :80, and a second server there would be refused for that first
      const inv = inventoryVariant((y) => y.replace(/managed_config: .*/, 'managed_config: /etc/nginx/managed-link.conf').replace('listen_port: 80\n', 'listen_port: 8088\n'));
      const r = await run(['apply', '--yes'], inv);
      expectCode(r, 2, 'apply with managed_config a symlink to nginx.conf');
      expect(output(r), show(r)).toContain(
        'proxy.managed_config (/etc/nginx/managed-link.conf) and proxy.nginx_conf (/etc/nginx/nginx.conf) are the same file (both are /etc/nginx/nginx.conf on this host)',
      );
      expect(output(r)).toContain('Nothing was changed on any host.');
    } finally {
      sh('proxy', 'rm -f /etc/nginx/managed-link.conf');
    }
    expectSnapshots(before, 'after the refused symlink');
  });
});

describe('apply and rollback keep bytes and secrets', () => {
  it('a Latin-1 byte survives apply; the journal is 0700/0600 and nobody can read the secret line', async () => {
    // the guide's `user root`, so that apply edits (and backs up) the root-only nginx.conf
    const a = await run(['apply', '--yes'], asGuide);
    expectCode(a, 0, 'apply');
    // the bytes as hex, one line: od's own line breaks cannot split what is looked for
    const conf = sh('proxy', `od -An -tx1 -v ${NGINX_CONF} | tr -d ' \\n'; echo; stat -c %a ${NGINX_CONF}`);
    expect(conf).toContain(Buffer.from('# caf\xe9 (a Latin-1 byte)', 'latin1').toString('hex'));
    expect(conf.trim().split('\n').at(-1)).toBe('600');
    // the journal: directories 0700, journal files 0600; backups keep the mode of what they hold
    const modes = sh('proxy', "find /var/lib/dsrctl -printf '%y %m %p\\n'").trim().split('\n');
    for (const l of modes) {
      const [type, mode, path] = l.split(' ');
      if (type === 'd') expect(mode, l).toBe('700');
      else if (!path!.includes('/files/')) expect(mode, l).toBe('600');
    }
    expect(modes.some((l) => l.endsWith('.undo'))).toBe(true);
    // the secret line, as the unprivileged user nobody: not in nginx.conf, not in the journal
    const nobody = onHost('proxy', `su nobody -s /bin/sh -c 'cat ${NGINX_CONF}; grep -r hunter2 /var/lib/dsrctl; cat /var/lib/dsrctl/runs/*/files/* /var/lib/dsrctl/runs/*/changes/*'`);
    expect(nobody.stdout + nobody.stderr, 'nobody reads nothing').not.toContain('hunter2');
    expect(nobody.stderr).toMatch(/Permission denied/);
    // and the backup of nginx.conf is still the file it was, byte for byte (as root)
    expect(sh('proxy', 'cat /var/lib/dsrctl/runs/*/files/*nginx.conf')).toContain(SECRET_LINE);
  });

  it('rollback puts every host back byte for byte, the Latin-1 byte and the 0600 mode included', async () => {
    const r = await run(['rollback', '--yes'], asGuide);
    expectCode(r, 0, 'rollback');
    expectSnapshots(before, 'after rollback');
    expect(sh('proxy', `od -An -tx1 -v ${NGINX_CONF} | tr -d ' \\n'`)).toContain(Buffer.from('caf\xe9', 'latin1').toString('hex'));
  });
});

describe('text from hosts reaches the terminal escaped', () => {
  it("an upstream's escape sequences in its HTTP answer are printed as \\x1b by verify, and as \\u001b/\\u009b in --json", async () => {
    // every upstream answers with a title-setting OSC, a colour, and a C1 CSI (U+009B, UTF-8 \302\233)
    const hello = [
      'server {',
      '    listen 8080;',
      '    location / {',
      '        return 200 "\x1b]0;PWNED-TITLE\x07\x1b[31mFAKE \u009b2J Hello from $hostname. You connected from $remote_addr:$remote_port to $server_addr:$server_port\\n";',
      '    }',
      '}',
      '',
    ].join('\n');
    const b64 = Buffer.from(hello, 'utf8').toString('base64');
    for (const h of UPSTREAMS) sh(h, `echo ${b64} | base64 -d > /etc/nginx/conf.d/hello.conf && nginx -s reload`);
    // the reload is asynchronous: wait until every upstream answers the new way
    const deadline = Date.now() + 30_000;
    for (const h of UPSTREAMS) {
      const ip = `172.16.0.1${h.slice(3)}`;
      while (!sh('proxy', `curl -s http://${ip}:8080/ || true`).includes('PWNED')) {
        if (Date.now() > deadline) throw new Error(`${h} still answers the old way`);
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    const v = await run(['verify']);
    expectCode(v, 1, 'verify (the lab is not applied)');
    const line = v.stdout.split('\n').find((l) => l.includes('HTTP requests from the probe'));
    expect(line, show(v, 'the probe line')).toBeDefined();
    expect(line).toContain('\\x1b]0;PWNED-TITLE\\x07\\x1b[31mFAKE \\x9b2J Hello from');
    expect(v.stdout + v.stderr, 'no control character reaches the terminal').not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);

    const j = await run(['verify', '--json']);
    expect(j.json, show(j, 'verify --json')).toBeDefined();
    expect(j.stdout).toContain('\\u001b]0;PWNED-TITLE\\u0007\\u001b[31mFAKE \\u009b2J');
    expect(j.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    expect(JSON.stringify(j.json)).toContain('PWNED-TITLE');
  });
});
