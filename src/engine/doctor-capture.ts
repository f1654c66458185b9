import { randomBytes } from 'node:crypto';
import type { Inventory } from '../inventory/schema.js';
import type { ConnectTarget, HostSession } from '../ssh/types.js';
import { buildCaptureScript, buildReadyScript, buildStopScript, captureFilter, parseCaptureOutput, parseReady, type HostCapture } from '../doctor/capture.js';
import type { Connector } from './connector.js';

/**
 * `doctor --capture N`: tcpdump on every host at once (the guide's Troubleshooting asks for one
 * per host), merged afterwards into one timeline by src/doctor/capture.ts.
 */

/** How a user makes traffic the capture can see. */
function trafficHint(inv: Inventory): string {
  const { protocol, listen_port } = inv.service;
  const ip = inv.proxy.public_ip;
  if (protocol === 'udp') return `dig +short -p ${listen_port} @${ip} ${inv.verify.probe?.dns_query ?? 'www.example.com'}`;
  if (protocol === 'http') return `curl http://${ip}${listen_port === 80 ? '' : `:${listen_port}`}/`;
  return `nc -z ${ip} ${listen_port}`;
}

export interface CaptureResult {
  seconds: number;
  filter: string;
  hosts: HostCapture[];
}

/** tcpdump gives up by itself after this long, should dsrctl vanish before it stops it */
const CAPTURE_SAFETY_SECONDS = 30;
/** how long a host's tcpdump may take to start listening */
const READY_WAIT_SECONDS = 10;

export interface CaptureHost {
  name: string;
  target: ConnectTarget;
  /** the host's open session: readiness poll and stop */
  control: HostSession;
}

/**
 * tcpdump on every host at once, each on a second SSH connection, while the first one waits until
 * it listens. Once every host listens the user is told to send traffic; N seconds later every
 * tcpdump is stopped and the lines merged.
 */
export async function runCapture(inv: Inventory, hosts: CaptureHost[], unreachable: Map<string, string>, seconds: number, say: (s: string) => void, connect: Connector): Promise<CaptureResult> {
  const filter = captureFilter(inv);
  // one token per host: hosts that share a PID namespace (containers, the lab) must not find each other's tcpdump
  const run = randomBytes(6).toString('hex');
  const tokenOf = (i: number) => `${run}h${i}`;
  const maxSeconds = seconds + READY_WAIT_SECONDS + CAPTURE_SAFETY_SECONDS;
  say(`capture: tcpdump -i any on ${hosts.map((h) => h.name).join(', ')}; filter: ${filter}`);
  const extra: HostSession[] = [];
  try {
    const runs = hosts.map((h, i) => {
      const token = tokenOf(i);
      const capture = connect(h.target).then(
        (s) => {
          extra.push(s);
          return s.exec(buildCaptureScript(maxSeconds, filter, token), { timeoutMs: (seconds + READY_WAIT_SECONDS + CAPTURE_SAFETY_SECONDS + 10) * 1000 }).then(
            (r) => parseCaptureOutput(h.name, r.stdout),
            (e: Error): HostCapture => ({ host: h.name, status: 'failed', packets: [], messages: [], note: e.message }),
          );
        },
        (e: Error): HostCapture => ({ host: h.name, status: 'failed', packets: [], messages: [], note: `second connection for tcpdump failed: ${e.message}` }),
      );
      // ready when tcpdump holds its packet socket; a capture that already ended will not get ready
      const ready = Promise.race([
        h.control.exec(buildReadyScript(token, READY_WAIT_SECONDS), { timeoutMs: (READY_WAIT_SECONDS + 10) * 1000 }).then(
          (r) => parseReady(r.stdout),
          (e: Error) => ({ ready: false, why: e.message }) as ReturnType<typeof parseReady>,
        ),
        capture.then(() => ({ ready: false, why: 'tcpdump ended before it listened' }) as ReturnType<typeof parseReady>),
      ]);
      return { h, capture, ready };
    });
    const readiness = await Promise.all(runs.map((r) => r.ready));
    const listening = runs.filter((_, i) => readiness[i]!.ready).map((r) => r.h.name);
    const late = runs.flatMap((r, i) => (readiness[i]!.ready ? [] : [`${r.h.name}: ${readiness[i]!.why ?? 'not listening'}`]));
    say(
      listening.length
        ? `capturing now on ${listening.join(', ')}${late.length ? ` (not on ${late.join(', ')})` : ''}: send traffic through the proxy within ${seconds} s (e.g. ${trafficHint(inv)} from a client)`
        : `no host is capturing${late.length ? `: ${late.join(', ')}` : ''}`,
    );
    if (listening.length) await new Promise((r) => setTimeout(r, seconds * 1000));
    await Promise.all(hosts.map((h, i) => h.control.exec(buildStopScript(tokenOf(i)), { timeoutMs: 15_000 }).catch(() => undefined)));
    const out = await Promise.all(runs.map((r) => r.capture));
    out.forEach((c, i) => {
      const at = readiness[i]!.at;
      if (at !== undefined) c.listeningAt = at;
    });
    for (const [name, why] of unreachable) out.push({ host: name, status: 'failed', packets: [], messages: [], note: `not connected: ${why}` });
    return { seconds, filter, hosts: out };
  } finally {
    await Promise.allSettled(extra.map((s) => s.close()));
  }
}

