import { hostMessage } from '../engine/prepare.js';

/**
 * Host errors as the operator reads them: each cause once, the proxy's first (an upstream that
 * waited for the proxy's lock fails because of it), then inventory order, and hosts that failed
 * the same way on one line.
 */
export function summarizeHostErrors(errors: ReadonlyMap<string, Error>, order: readonly string[] = [], proxyName = 'proxy'): string[] {
  const byMessage = new Map<string, string[]>();
  const rank = (h: string) => (h === proxyName ? -1 : order.includes(h) ? order.indexOf(h) : order.length);
  const entries = [...errors].sort(([a], [b]) => rank(a) - rank(b));
  for (const [host, e] of entries) {
    const full = hostMessage(host, e);
    const msg = full.startsWith(`${host}: `) ? full.slice(host.length + 2) : full;
    const key = full.startsWith(`${host}: `) ? msg : full;
    byMessage.set(key, [...(byMessage.get(key) ?? []), host]);
  }
  return [...byMessage].map(([msg, hosts]) => (hosts.length === 1 && msg.startsWith(`${hosts[0]} (`) ? msg : `${hosts.join(', ')}: ${msg}`));
}
