import { FactsParseError, parseKeyValues } from '../format.js';
import type { NginxFacts } from '../types.js';

const DEFAULT_CONF = '/etc/nginx/nginx.conf';

/**
 * nginx facts from three sections: `nginx -V 2>&1` (rc 127 = not installed), the `load_module`
 * lines of the main config and modules-enabled/*.conf, and the pid file check.
 */
export function parseNginx(v: { rc: number; body: string }, loadModuleLines: string, pidBody: string): NginxFacts {
  const pid = parseKeyValues('nginx-pid', pidBody);
  const pidFile = pid.get('pidfile');
  const loadModules = loadModuleLines
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  for (const l of loadModules) {
    if (!/^load_module\s+\S+/.test(l)) throw new FactsParseError('nginx-modules', 'not a load_module line', l);
  }
  if (v.rc === 127) {
    return { installed: false, version: null, modules: [], running: false, masterPid: null, confPath: DEFAULT_CONF, ...(pidFile ? { pidFile } : {}), loadModules };
  }
  const lines = v.body.split('\n');
  const versionLine = lines.find((l) => l.startsWith('nginx version:'));
  const m = versionLine ? /^nginx version: [^/\s]+\/(\S+)/.exec(versionLine) : null;
  if (!m) throw new FactsParseError('nginx-version', `no "nginx version: nginx/X.Y.Z" line (exit status ${v.rc})`, lines[0] ?? '');
  const configure = lines.find((l) => l.startsWith('configure arguments:')) ?? '';
  const args = configure.slice('configure arguments:'.length).trim().split(/\s+/);
  const arg = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

  const modules = new Set<string>();
  if (!args.includes('--without-http')) modules.add('http');
  for (const mod of ['stream', 'mail']) if (args.includes(`--with-${mod}`)) modules.add(mod); // static; "=dynamic" needs load_module
  for (const l of loadModules) {
    const so = /ngx_([a-z0-9_]+)_module\.so/.exec(l);
    if (so) modules.add(so[1]!);
  }

  const pidText = pid.get('pid');
  const pidNum = pidText && /^\d+$/.test(pidText) ? Number(pidText) : null;
  const comm = pid.get('comm');
  const running = pidNum !== null && pid.get('alive') === '1' && (comm === undefined || comm.startsWith('nginx'));
  let confPath = arg('conf-path') ?? DEFAULT_CONF;
  if (!confPath.startsWith('/')) confPath = `${arg('prefix') ?? '/usr/local/nginx'}/${confPath}`;
  return {
    installed: true,
    version: m[1]!,
    modules: [...modules],
    running,
    masterPid: running ? pidNum : null,
    confPath,
    ...(pidFile ? { pidFile } : {}),
    loadModules,
    ...(running && /^[0-9a-f]{16}$/i.test(pid.get('capbnd') ?? '') ? { capBnd: pid.get('capbnd')!.toLowerCase() } : {}),
  };
}
