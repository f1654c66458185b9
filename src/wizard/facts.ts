/** Reading one host's facts for the wizard: connect, one small exec for the interface names, the facts script, disconnect. */
import { buildFactsScript } from '../facts/script.js';
import { parseFacts } from '../facts/parse.js';
import type { HostFacts } from '../facts/types.js';
import { connect } from '../ssh/session.js';
import type { ConnectTarget } from '../ssh/types.js';
import { rpFilterKeys } from './overlap.js';

/** Interface names as /proc/sys/net/ipv4/conf lists them (sysctl keys allow lower case only). */
const LIST_IFACES = 'ls /proc/sys/net/ipv4/conf 2>/dev/null || true';

export async function readFactsOverSsh(target: ConnectTarget): Promise<HostFacts> {
  const session = await connect(target);
  try {
    const ls = await session.exec(LIST_IFACES, { timeoutMs: 15_000 });
    const names = ls.stdout
      .split('\n')
      .map((s) => s.trim())
      .filter((n) => /^[a-z0-9_.-]{1,15}$/.test(n) && n !== 'all' && n !== 'default');
    const r = await session.exec(buildFactsScript({ sysctls: rpFilterKeys(names), files: [] }), { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`the facts script failed (exit ${r.code ?? r.signal}): ${r.stderr.trim().split('\n')[0] ?? ''}`);
    return parseFacts(r.stdout);
  } finally {
    await session.close();
  }
}
