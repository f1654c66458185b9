// node test/vm/tc-boot-script.mjs INVENTORY [DIST]
//
// Prints what /var/lib/dsrctl/persist.sh would restore at boot for the proxy's stateless NAT of
// INVENTORY, from the built code (DIST, default <repo>/dist): the same desired resources as
// `dsrctl apply` (inventory x playbook), each stateless-nat resource's boot() lines, rendered by the
// same renderStateScript as persist.sh, so the wrapping (PATH, failure reporting, exit code) is
// the real one too. Only the stateless-nat items: tc-router-nat.sh removes only what a reboot
// takes from tc. The facts say act_nat is there (the inventory's nat.backend picks the backend;
// the VM's kernel has act_nat). One node start: run it once, it is slow under TCG.
import { release } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const [inventory, distArg] = process.argv.slice(2);
if (!inventory) {
  console.error('usage: node test/vm/tc-boot-script.mjs INVENTORY [DIST]');
  process.exit(2);
}
const dist = resolve(distArg ?? fileURLToPath(new URL('../../dist', import.meta.url)));
const load = (m) => import(pathToFileURL(`${dist}/${m}`).href);
const [{ loadInventory }, { loadPlaybook }, { desiredHosts, planContext }, { RESOURCE_KINDS }, { renderStateScript }] = await Promise.all([
  load('inventory/load.js'),
  load('playbook/load.js'),
  load('plan/desired.js'),
  load('resources/index.js'),
  load('persist/state-script.js'),
]);

const { inventory: inv } = loadInventory(inventory);
const pb = loadPlaybook(inv.mode);
const proxy = desiredHosts(inv, pb).find((t) => t.name === 'proxy');
const ctx = planContext(inv, pb, proxy);
const facts = { kernel: release(), nat: { actNat: 'module', tc: true, nft: true } };
const items = proxy.desired.filter((d) => d.kind === 'stateless-nat').flatMap((d) => RESOURCE_KINDS[d.kind].boot(d.spec, facts, ctx));
if (items.length === 0) {
  console.error(`${inventory}: the proxy has no stateless-nat resource (mode ${inv.mode})`);
  process.exit(1);
}
process.stdout.write(renderStateScript('proxy', items));
