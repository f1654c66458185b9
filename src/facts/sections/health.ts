import { quote } from 'shell-quote';
import { parseKeyValues } from '../format.js';
import type { HealthProcessFacts } from '../types.js';
import { HEALTH_PID, HEALTH_UNIT } from '../../health/settings.js';
import type { FactSection } from './section.js';

/** Its part of HostFacts. */
export interface HealthFacts {
  /** the health checker's process (src/health/); absent from an older script */
  health?: HealthProcessFacts;
}

/** The health checker's process (or systemd unit): is it running, as dsrctl started it. */
export const health: FactSection<HealthFacts> = {
  id: 'health',
  // an older script printed none: then nothing is known of a checker, as when it is not read
  single: ['health'],
  optional: { notRead: () => ({}) },
  shell: () => [
    // the pid file's digits and the process state (field 3 of /proc/PID/stat, as cut -d' ' -f3) read by the shell
    `  b health; slurp ${quote([HEALTH_PID])} || _t=; digits "$_t"; _p=$_o; printf 'pid=%s\\n' "$_p"; _st=; if [ -n "$_p" ]; then { IFS= read -r _st || :; } 2>/dev/null <"/proc/$_p/stat"; fi; case $_st in *' '*' '*) _st=\${_st#* }; _st=\${_st#* }; _st=\${_st%% *} ;; *' '*) _st= ;; esac; if [ -n "$_p" ] && [ "$_st" != Z ] && tr '\\0' ' ' < "/proc/$_p/cmdline" 2>/dev/null | grep -q 'dsrctl/health/check\\.sh'; then echo alive=1; else echo alive=0; fi; if [ -d /run/systemd/system ] && have systemctl; then printf 'unit_active=%s\\nunit_enabled=%s\\n' "$(systemctl is-active ${HEALTH_UNIT} 2>/dev/null)" "$(systemctl is-enabled ${HEALTH_UNIT} 2>/dev/null)"; fi; e health 0`,
  ],
  parse(ctx) {
    const s = ctx.maybe('health');
    return s ? { health: parseHealthProcess(s.body) } : {};
  },
};

export function parseHealthProcess(body: string): HealthProcessFacts {
  const kv = parseKeyValues('health', body);
  const pid = kv.get('pid');
  return {
    pid: pid ? Number(pid) : null,
    alive: kv.get('alive') === '1',
    ...(kv.has('unit_active') ? { unitActive: kv.get('unit_active')!, unitEnabled: kv.get('unit_enabled') ?? '' } : {}),
  };
}
