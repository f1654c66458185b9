import type { HostFacts } from '../facts/types.js';

/**
 * systemd-networkd re-installs the default route its .network file gives (`Gateway=`, DHCP) on a
 * restart, a reconfigure or a DHCP renewal: beside the route via the proxy that would make two
 * default routes of equal metric. Where dsrctl routes a host via the proxy, networkd is told not to
 * install one: its `Gateway=` lines for the default route are commented out (systemd < 259 cannot
 * reset `Gateway=` from a drop-in) and DHCP gets `[DHCPv4] UseGateway=no`. The edit is a journaled
 * file change; rollback puts the file back byte for byte. Pure.
 */

export const MARK = '#dsrctl# ';

const TRUE = /^(1|yes|y|true|t|on)$/i;
const FALSE = /^(0|no|n|false|f|off)$/i;

interface Line {
  text: string;
  section: string;
  key?: string;
  value?: string;
}

function lines(content: string): Line[] {
  let section = '';
  return content.split(/(?<=\n)/).map((text) => {
    const t = text.trim();
    const sec = /^\[([^\]]+)\]$/.exec(t);
    if (sec) section = sec[1]!;
    const kv = /^([A-Za-z0-9]+)\s*=\s*(.*)$/.exec(t);
    return kv && !t.startsWith('#') && !t.startsWith(';') ? { text, section, key: kv[1]!, value: kv[2]!.trim() } : { text, section };
  });
}

const isV4Gateway = (v: string) => /^(\d{1,3}\.){3}\d{1,3}$/.test(v) || v === '_dhcp4' || v === '_ipv4ll';
const isDefaultDest = (v: string | undefined) => v === undefined || v === '' || v === '0.0.0.0/0' || v === 'default';

export interface NetworkdEdit {
  path: string;
  before: string;
  after: string;
  /** what was done, for the summary */
  what: string[];
}

/** The edit of one .network file (or drop-in) so that networkd installs no IPv4 default route; null when it installs none. */
export function editNetworkFile(path: string, content: string, proxyIp: string): NetworkdEdit | null {
  const ls = lines(content);
  const comment = new Set<number>();
  const what: string[] = [];
  // [Network] Gateway=
  ls.forEach((l, i) => {
    if (l.section === 'Network' && l.key === 'Gateway' && l.value && isV4Gateway(l.value)) {
      comment.add(i);
      what.push(`[Network] Gateway=${l.value} commented out`);
    }
  });
  // [Route] sections that make a default route of table main
  let start = -1;
  const flush = (end: number) => {
    if (start < 0) return;
    const sec = ls.slice(start, end);
    const dest = sec.filter((l) => l.key === 'Destination').at(-1)?.value;
    const table = sec.filter((l) => l.key === 'Table').at(-1)?.value;
    const gws = sec.map((l, k) => [l, start + k] as const).filter(([l]) => l.key === 'Gateway' && l.value && isV4Gateway(l.value));
    if (gws.length && isDefaultDest(dest) && (table === undefined || table === 'main' || table === '254'))
      for (const [l, k] of gws) {
        comment.add(k);
        what.push(`[Route] Gateway=${l.value} commented out`);
      }
  };
  ls.forEach((l, i) => {
    if (/^\s*\[/.test(l.text)) {
      flush(i);
      start = l.section === 'Route' ? i : -1;
    }
  });
  flush(ls.length);
  // DHCPv4: the lease's router becomes a default route unless UseGateway=/UseRoutes= say no
  const dhcp = ls.filter((l) => l.section === 'Network' && l.key === 'DHCP').at(-1)?.value ?? 'no';
  const dhcp4 = TRUE.test(dhcp) || /^(ipv4|both)$/i.test(dhcp);
  const refused = ls.some((l) => l.section === 'DHCPv4' && (l.key === 'UseGateway' || l.key === 'UseRoutes') && FALSE.test(l.value ?? ''));
  let after = ls.map((l, i) => (comment.has(i) ? `${MARK}${l.text}` : l.text)).join('');
  if (dhcp4 && !refused) {
    if (after.length && !after.endsWith('\n')) after += '\n';
    after += `\n# dsrctl: the default route goes via the proxy (${proxyIp}), restored by dsrctl-persist.service\n[DHCPv4]\nUseGateway=no\n`;
    what.push(`DHCP=${dhcp}: [DHCPv4] UseGateway=no added`);
  }
  return what.length ? { path, before: content, after, what } : null;
}

/** Where the .network files that configure this host's links live, and which of them dsrctl may edit. */
export interface NetworkdPlan {
  edits: NetworkdEdit[];
  /** files that give a default route but are not dsrctl's to edit (generated in /run, vendor files in /usr/lib) */
  untouchable: { path: string; what: string[] }[];
}

export function networkdPlan(facts: HostFacts, proxyIp: string): NetworkdPlan {
  const out: NetworkdPlan = { edits: [], untouchable: [] };
  const nm = facts.netmgr;
  if (!nm) return out;
  const paths = [...new Set(nm.networkd.flatMap((l) => [l.networkFile, ...l.dropins]).filter((p): p is string => !!p))];
  for (const path of paths) {
    const f = nm.files[path];
    if (!f?.exists || f.content === undefined) continue;
    const edit = editNetworkFile(path, f.content, proxyIp);
    if (!edit) continue;
    if (path.startsWith('/etc/systemd/network/')) out.edits.push(edit);
    else out.untouchable.push({ path, what: edit.what });
  }
  return out;
}
