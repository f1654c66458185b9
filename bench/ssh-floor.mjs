#!/usr/bin/env node
/**
 * The SSH floor as a program, for the bench: `node bench/ssh-floor.mjs KEY HOST...` starts, loads
 * ssh2, reads the private key, connects to every host at once as root, runs `true` on each and
 * exits (1 when any host fails). A dsrctl run is a whole process too: measured the same way, the
 * two compare like for like (node's start-up and loading the SSH library on both sides).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Client } from 'ssh2';

/** Connect to every host at once, run `true` on each; rejects naming the first host that failed. */
export function connectAllRunTrue(hosts, privateKey) {
  const one = (host) =>
    new Promise((res, rej) => {
      const c = new Client();
      c.on('ready', () =>
        c.exec('true', (err, stream) => {
          if (err) return rej(err);
          stream.on('close', (code) => {
            c.end();
            code === 0 ? res() : rej(new Error(`${host}: true exited ${code}`));
          });
          stream.resume();
          stream.stderr.resume();
        }),
      )
        .on('error', (e) => rej(new Error(`${host}: ${e.message}`)))
        // the bench's own lab, just built: host keys are not checked here
        .connect({ host, port: 22, username: 'root', privateKey, readyTimeout: 60_000 });
    });
  return Promise.all(hosts.map(one));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [keyFile, ...hosts] = process.argv.slice(2);
  if (!keyFile || !hosts.length) {
    console.error('usage: node bench/ssh-floor.mjs KEY HOST...');
    process.exit(2);
  }
  try {
    await connectAllRunTrue(hosts, readFileSync(keyFile));
  } catch (e) {
    console.error(`ssh-floor: ${e.message}`);
    process.exit(1);
  }
}
