#!/usr/bin/env bash
# Run INSIDE the VM (a stock Debian kernel, which has act_nat):
#
#   bash test/vm/run-in-vm.sh test/vm/tc-router-nat.sh
#
# The guide's DSR router NAT (Method 2a) with the tc backend, end to end and for real: the
# namespace lab (test/lab/lab.sh, DSR_LAB_MODE=dsr-router-nat: udp/53, dnsmasq upstreams) and the
# built CLI (dist/cli.js) over SSH, all inside the VM: plan, apply, digs, a second apply, the
# boot lines persist.sh would run (after deleting the qdisc apply added, twice), digs, rollback.
# test/e2e/tc-backend.test.ts runs it on the host and asserts every check line:
#
#   @@vmcheck NAME ok|fail DETAIL      one per check (DETAIL on one line)
#   @@vmtime NAME SECONDS              how long a step took (TCG is slow)
#   @@vmdig N ANSWER                   each dig answer seen by the client (ANSWER "-" when none)
#
# Anything else is context for a person (command output, dsrctl's JSON when a check fails).
# Exits 0 when every check passed, 1 when one failed, 2 when it is not in the VM.
set -uo pipefail

[ "${DSRVM:-}" = 1 ] || { echo "refusing to run outside the VM (run it through test/vm/run-in-vm.sh)" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo" || exit 2
# The VM's root is a tmpfs overlay over the host's read-only root: this dir exists in the VM only.
LABDIR=/var/lib/dsrctl-lab/vm
INV=$LABDIR/lab.yaml
export DSR_LAB_MODE=dsr-router-nat DSR_LAB_PROTOCOL=udp DSR_LAB_PREFIX=vm DSR_LAB_DIR=$LABDIR DSR_LAB_INVENTORY=$INV DSR_LAB_MGMT_OCTET=0
export NO_COLOR=1
HOSTS=(proxy dev1 dev2 dev3 dev4)
UPSTREAM_IPS=(172.16.0.11 172.16.0.12 172.16.0.13 172.16.0.14)
PROXY_PUBLIC=192.168.99.10
OUT=/tmp/tcvm
mkdir -p "$OUT"
fails=0

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
oneline() { tr '\n\t' '  ' | sed 's/  */ /g; s/ $//' | cut -c1-600; }
check() { # NAME ok|fail DETAIL...
	local name=$1 st=$2
	shift 2
	echo "@@vmcheck $name $st $(printf '%s' "$*" | oneline)"
	[ "$st" = ok ] || fails=$((fails + 1))
}
expect() { # NAME DETAIL CMD...: ok when CMD succeeds
	local name=$1 detail=$2
	shift 2
	if "$@"; then check "$name" ok "$detail"; else check "$name" fail "$detail"; fi
}
lab() { bash test/lab/lab.sh "$@"; }
on() { local h=$1; shift; lab exec "$h" -- "$@"; }
exec 3>&1 # the script's stdout, for lines printed while a command's output goes to a file
timed() { # NAME CMD...: runs CMD, prints @@vmtime (on the script's stdout, whatever CMD's goes to)
	local name=$1 t rc
	shift
	t=$(now)
	"$@"
	rc=$?
	echo "@@vmtime $name $(since "$t")" >&3
	return $rc
}
dsrctl() { DSRCTL_DEBUG=timing node dist/cli.js "$@"; }
show() { # LABEL FILE: print a file for the reader, framed
	echo "---- $1"
	cat "$2"
	echo "---- end $1"
}

# harness.ts's SNAPSHOT_SCRIPT itself (String.raw, so the text between the backticks is the script)
SNAPSHOT_SCRIPT=$(awk '/^export const SNAPSHOT_SCRIPT = String.raw`/ { on = 1; next } on && /^`;/ { exit } on' test/e2e/harness.ts)
[ -n "$SNAPSHOT_SCRIPT" ] || check snapshot-script fail "no SNAPSHOT_SCRIPT in test/e2e/harness.ts"
snapshot() { # DIR HOST...: each host's SNAPSHOT_SCRIPT output in DIR/HOST (~4.5 s a host under TCG)
	local d=$1 h
	shift
	mkdir -p "$d"
	for h in "$@"; do
		on "$h" sh -c "$SNAPSHOT_SCRIPT" >"$d/$h" 2>"$d/$h.err" && grep -q '^## /etc/nginx$' "$d/$h" ||
			check "snapshot-$h" fail "snapshot of $h failed: $(cat "$d/$h.err")"
	done
}
same_snapshots() { # DIR-A DIR-B NAME [SED]: one check per host snapshot in DIR-A; SED normalises both sides first
	local h a b
	for h in "${HOSTS[@]}"; do
		[ -f "$1/$h" ] || continue
		a=$(sed -e "${4:-}" "$1/$h")
		b=$(sed -e "${4:-}" "$2/$h")
		if [ "$a" = "$b" ]; then
			check "$3-$h" ok "$h byte for byte as before ($(wc -l <"$1/$h") lines)"
		else
			check "$3-$h" fail "$h differs: $(diff <(echo "$a") <(echo "$b") | grep '^[<>]' | head -n 12)"
			diff <(echo "$a") <(echo "$b")
		fi
	done
}
digs() { # N FILE: N queries from the client in one exec, one after the other (like test/e2e/net.ts);
	# FILE gets one line per query: its answer, or "-" when it got none. A query counts as answered
	# only when dig printed exactly one line and it is an IPv4 address (a warning makes it unanswered).
	local i out
	on client sh -c "for i in \$(seq $1); do echo @@query; dig +short +tries=1 +time=2 @$PROXY_PUBLIC www.example.com 2>&1; done" >"$2.raw" 2>&1
	: >"$2"
	for i in $(seq "$1"); do
		out=$(awk -v n="$i" '/^@@query$/ { q++; next } q == n && NF' "$2.raw")
		if [ "$(printf '%s\n' "$out" | grep -c .)" = 1 ] && [[ $out =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
			echo "$out" >>"$2"
		else
			echo - >>"$2"
			echo "dig $i got: $out"
		fi
	done
}
run_dsrctl() { # NAME ARGS...: dsrctl ARGS > $OUT/NAME.json, stderr in NAME.err, exit code in NAME.rc
	local name=$1
	shift
	timed "$name" dsrctl "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"
	echo $? >"$OUT/$name.rc"
}

T0=$(now)
[ -f dist/cli.js ] || { check dist fail "no dist/cli.js: run npm run build first"; exit 1; }
# dist/ as it is now, for the whole run: `npm run build` on the host while the VM runs (the host's
# files are shared live) would otherwise mix two builds' modules in one dsrctl run
t=$(now)
if mkdir -p "$OUT/dist" && cp -a dist/. "$OUT/dist/" && mount --bind "$OUT/dist" dist; then
	echo "@@vmtime dist-copy $(since "$t")"
else
	echo "could not take a copy of dist/: using the live one"
fi
# Speed only. dsrctl's facts script runs `find /lib/modules/$(uname -r) -name 'act_nat.ko*'` on
# every host; here that tree (~4000 files) is read through overlayfs over 9p, ~5 s a time under
# TCG, and the 5 hosts' facts share one emulated CPU against dsrctl's fixed 30 s exec timeout.
# So the tree is mirrored on a tmpfs (real directories, symlinks to the same files): the same
# names at the same paths, modprobe loads the same modules, and find takes a fraction of a second.
k=$(uname -r)
t=$(now)
if [ -d "/run/dsrvm/lower/lib/modules/$k" ] && mkdir -p /mnt/dsrvm-lower && mount --bind /run/dsrvm/lower /mnt/dsrvm-lower &&
	mount -t tmpfs -o mode=0755 tmpfs "/lib/modules/$k" && cp -as "/mnt/dsrvm-lower/lib/modules/$k/." "/lib/modules/$k/"; then
	echo "@@vmtime modules-mirror $(since "$t")"
else
	echo "could not mirror /lib/modules/$k on a tmpfs (slower facts)"
fi
echo "kernel $k; act_nat: $(grep -c '^act_nat ' /proc/modules) loaded, on disk: $(find "/lib/modules/$k" -name 'act_nat.ko*' | head -n 1)"

# ---------------------------------------------------------------- lab
if ! timed lab-up lab up >"$OUT/lab-up.log" 2>&1; then
	check lab-up fail "lab.sh up failed: $(tail -n 20 "$OUT/lab-up.log")"
	cat "$OUT/lab-up.log"
	lab down >/dev/null 2>&1
	exit 1
fi
check lab-up ok "$(grep -o 'took .*' "$OUT/lab-up.log")"
# nat.backend is a top-level key: put it before ssh:
sed 's/^ssh:/nat:\n  backend: tc\nssh:/' "$INV" >"$LABDIR/tc.yaml"
sed 's/^ssh:/nat:\n  backend: auto\nssh:/' "$INV" >"$LABDIR/auto.yaml"
grep -q '^  backend: tc$' "$LABDIR/tc.yaml" || check inventory fail "could not add nat.backend tc to $INV"
timed snapshot snapshot "$OUT/before" "${HOSTS[@]}"
on proxy tc qdisc show dev pub0 >"$OUT/qdisc-before.txt" 2>&1

# ---------------------------------------------------------------- auto picks tc (read-only plan)
# (dsrctl's JSON is checked at the end, by json-checks.mjs: one node start instead of several)
run_dsrctl plan-auto plan -i "$LABDIR/auto.yaml" --json

# ---------------------------------------------------------------- apply with nat.backend tc
run_dsrctl apply1 apply -i "$LABDIR/tc.yaml" --yes --json

# ---------------------------------------------------------------- on the proxy
on proxy tc qdisc show dev pub0 >"$OUT/qdisc-applied.txt" 2>&1
on proxy tc filter show dev pub0 >"$OUT/filters-applied.txt" 2>&1
show "tc qdisc show dev pub0 (applied)" "$OUT/qdisc-applied.txt"
show "tc filter show dev pub0 (applied)" "$OUT/filters-applied.txt"
expect qdisc-htb "$(head -n 1 "$OUT/qdisc-applied.txt")" grep -q '^qdisc htb 10: root ' "$OUT/qdisc-applied.txt"
missing=
for ip in "${UPSTREAM_IPS[@]}"; do grep -qF "nat egress $ip/32 $PROXY_PUBLIC" "$OUT/filters-applied.txt" || missing+=" $ip"; done
n=$(grep -cE 'action order [0-9]+: +nat egress ' "$OUT/filters-applied.txt")
if [ -z "$missing" ] && [ "$n" = 4 ]; then check tc-filters ok "$n nat actions: $(grep -o 'nat egress [0-9./]* [0-9.]*' "$OUT/filters-applied.txt" | paste -sd, -)"; else check tc-filters fail "$n nat actions; missing:$missing"; fi
if grep -q 'match 00350000/ffff0000 at 20' "$OUT/filters-applied.txt"; then check tc-sport-match ok "source port 53 matched (00350000/ffff0000 at 20)"; else check tc-sport-match fail "no sport key in the filters"; fi
on proxy nft list ruleset >"$OUT/nft-applied.txt" 2>&1
if grep -q 'dsrctl' "$OUT/nft-applied.txt"; then
	check no-nft-table fail "nft has a dsrctl table with nat.backend tc: $(grep dsrctl "$OUT/nft-applied.txt")"
else
	check no-nft-table ok "no dsrctl table in nft list ruleset ($(grep -c '^table' "$OUT/nft-applied.txt") tables)"
fi
for u in dev1 dev2 dev3 dev4; do
	r=$(on "$u" ip route show default)
	if [[ $r == "default via 172.16.0.1 dev priv0"* ]]; then check "route-$u" ok "$r"; else check "route-$u" fail "$r"; fi
done

# ---------------------------------------------------------------- the guide's test: dig x8
timed digs digs 8 "$OUT/digs.txt"
i=0
while read -r a; do i=$((i + 1)); echo "@@vmdig $i $a"; done <"$OUT/digs.txt"
answered=$(grep -c '^[0-9]' "$OUT/digs.txt")
distinct=$(grep '^[0-9]' "$OUT/digs.txt" | sort -u | paste -sd, -)
if [ "$answered" = 8 ] && [ "$distinct" = "$(printf '%s\n' "${UPSTREAM_IPS[@]}" | paste -sd, -)" ]; then
	check dig-answers ok "8/8 answered by $distinct"
else
	check dig-answers fail "$answered/8 answered; answers from: ${distinct:-none}"
fi
on proxy tc -s filter show dev pub0 >"$OUT/filters-after-dig.txt" 2>&1
# act_nat counts what it rewrote: "Sent N bytes M pkt" under each action (the replies went through tc)
pkts=$(awk '/action order [0-9]+: +nat egress / { on = 1 } on && /Sent [0-9]+ bytes [0-9]+ pkt/ { for (i = 1; i <= NF; i++) if ($i == "pkt") s += $(i - 1); on = 0 } END { print s + 0 }' "$OUT/filters-after-dig.txt")
show "tc -s filter show dev pub0 (after the digs)" "$OUT/filters-after-dig.txt"
if [ "$pkts" -ge 8 ]; then check tc-nat-counted ok "the nat actions rewrote $pkts packets"; else check tc-nat-counted fail "the nat actions counted $pkts packets"; fi

# ---------------------------------------------------------------- a second apply: 0 changes
# the proxy only: the JSON already shows 0 changes on every host, and each snapshot costs ~4.5 s
timed snapshot snapshot "$OUT/applied" proxy
run_dsrctl apply2 apply -i "$LABDIR/tc.yaml" --yes --json
timed snapshot snapshot "$OUT/applied2" proxy
# htb counts the packets it passed (direct_packets_stat), and the apply's own probe sent some
same_snapshots "$OUT/applied" "$OUT/applied2" second-apply-untouched 's/direct_packets_stat [0-9]*/direct_packets_stat N/'

# ---------------------------------------------------------------- boot lines: what a reboot restores
# persist.sh's text for this inventory's stateless NAT, from the built code (test/vm/tc-boot-script.mjs:
# the inventory is lab.sh's, written in the VM, so it runs here: one node start). A reboot loses the
# qdisc apply added to pub0 and its filters with it; the boot lines must put back exactly what apply
# installed, change nothing when run again, and DSR must work through them.
if timed boot-script node test/vm/tc-boot-script.mjs "$LABDIR/tc.yaml" >"$OUT/boot.sh" 2>"$OUT/boot-script.err"; then
	show "tc boot script (persist.sh text for the proxy's stateless NAT)" "$OUT/boot.sh"
	on proxy tc qdisc del dev pub0 root
	on proxy tc qdisc show dev pub0 >"$OUT/qdisc-lost.txt" 2>&1
	on proxy tc filter show dev pub0 >"$OUT/filters-lost.txt" 2>&1
	boot() { # N: run the boot script on the proxy with sh -x: stdout in boot-N.out, the trace in boot-N.trace
		on proxy sh -xc "$(cat "$OUT/boot.sh")" >"$OUT/boot-$1.out" 2>"$OUT/boot-$1.trace"
		echo $? >"$OUT/boot-$1.rc"
	}
	timed boot-run1 boot 1
	timed boot-run2 boot 2
	changed() { grep -E '^\+ tc (qdisc (add|del)|filter (add|del|replace|change))' "$1"; }
	timed snapshot snapshot "$OUT/booted" proxy
	a=$(cat "$OUT/applied2/proxy")
	b=$(cat "$OUT/booted/proxy")
	if [ "$(cat "$OUT/boot-1.rc")" != 0 ]; then
		check tc-boot-restore fail "the boot script exited $(cat "$OUT/boot-1.rc"): $(cat "$OUT/boot-1.out") $(grep -v '^+' "$OUT/boot-1.trace")"
	elif grep -q ' nat egress ' "$OUT/filters-lost.txt" || grep -q '^qdisc htb' "$OUT/qdisc-lost.txt"; then
		check tc-boot-restore fail "deleting the root qdisc did not remove the nat filters: $(cat "$OUT/qdisc-lost.txt" "$OUT/filters-lost.txt")"
	elif [ "$a" != "$b" ]; then
		check tc-boot-restore fail "the proxy differs from after apply: $(diff <(echo "$a") <(echo "$b") | grep '^[<>]' | head -n 12)"
		diff <(echo "$a") <(echo "$b")
	else
		check tc-boot-restore ok "pub0 lost its qdisc ($(head -n 1 "$OUT/qdisc-lost.txt")); the boot lines ran $(changed "$OUT/boot-1.trace" | wc -l) tc changes, exit 0 ($(cat "$OUT/boot-1.out")); the proxy's snapshot equals the one after apply ($(wc -l <"$OUT/booted/proxy") lines)"
	fi
	show "boot run 1 trace" "$OUT/boot-1.trace"
	show "boot run 2 trace" "$OUT/boot-2.trace"
	if [ "$(cat "$OUT/boot-2.rc")" = 0 ] && ! changed "$OUT/boot-2.trace" >/dev/null && [ "$a" = "$b" ]; then
		check tc-boot-idempotent ok "the second run exited 0 and ran no tc change (only: $(grep -oE '^\+ tc [a-z]+ [a-z]+' "$OUT/boot-2.trace" | sed 's/^+ //' | paste -sd, -)); state unchanged"
	else
		check tc-boot-idempotent fail "second run: exit $(cat "$OUT/boot-2.rc"); tc changes: $(changed "$OUT/boot-2.trace" | paste -sd';' -); output: $(cat "$OUT/boot-2.out")"
	fi
	timed digs digs 8 "$OUT/digs-booted.txt"
	on proxy tc -s filter show dev pub0 >"$OUT/filters-booted-dig.txt" 2>&1
	pkts=$(awk '/action order [0-9]+: +nat egress / { on = 1 } on && /Sent [0-9]+ bytes [0-9]+ pkt/ { for (i = 1; i <= NF; i++) if ($i == "pkt") s += $(i - 1); on = 0 } END { print s + 0 }' "$OUT/filters-booted-dig.txt")
	answered=$(grep -c '^[0-9]' "$OUT/digs-booted.txt")
	distinct=$(grep '^[0-9]' "$OUT/digs-booted.txt" | sort -u | paste -sd, -)
	if [ "$answered" = 8 ] && [ "$distinct" = "$(printf '%s\n' "${UPSTREAM_IPS[@]}" | paste -sd, -)" ] && [ "$pkts" -ge 8 ]; then
		check tc-boot-traffic ok "8/8 answered by $distinct after the restore; the restored nat actions rewrote $pkts packets"
	else
		check tc-boot-traffic fail "$answered/8 answered (from: ${distinct:-none}); the restored nat actions counted $pkts packets"
		show "tc -s filter show dev pub0 (after the restore and the digs)" "$OUT/filters-booted-dig.txt"
	fi
else
	check tc-boot-restore fail "test/vm/tc-boot-script.mjs failed: $(cat "$OUT/boot-script.err")"
fi

# ---------------------------------------------------------------- rollback: back to before
run_dsrctl rollback rollback -i "$LABDIR/tc.yaml" --yes --json
on proxy tc qdisc show dev pub0 >"$OUT/qdisc-after.txt" 2>&1
if cmp -s "$OUT/qdisc-before.txt" "$OUT/qdisc-after.txt"; then
	check rollback-qdisc ok "as before: $(cat "$OUT/qdisc-after.txt")"
else
	check rollback-qdisc fail "now: $(cat "$OUT/qdisc-after.txt"); before: $(cat "$OUT/qdisc-before.txt")"
fi
timed snapshot snapshot "$OUT/after" "${HOSTS[@]}"
same_snapshots "$OUT/before" "$OUT/after" rollback-snapshot
out=$(on client dig +short +tries=1 +time=2 "@$PROXY_PUBLIC" www.example.com 2>&1)
if [[ $out =~ (^|$'\n')[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+($'\n'|$) ]]; then check rollback-no-answer fail "dig still answered: $out"; else check rollback-no-answer ok "dig gets no answer after rollback"; fi

# dsrctl's JSON: one node start for every check on it (no jq here: CI does not install it)
cat >"$OUT/json-checks.mjs" <<'EOF'
// dsrctl's JSON outputs (OUT/NAME.json, .err, .rc) -> @@vmcheck lines; exits 1 when one failed
import { readFileSync } from 'node:fs';
const dir = process.argv[2];
const UPSTREAM_IPS = ['172.16.0.11', '172.16.0.12', '172.16.0.13', '172.16.0.14'];
const PUBLIC = '192.168.99.10';
let fails = 0;
const oneLine = (s) => String(s).replace(/\s+/g, ' ').trim().slice(0, 600);
function check(name, ok, detail) {
  console.log(`@@vmcheck ${name} ${ok ? 'ok' : 'fail'} ${oneLine(detail)}`);
  if (!ok) fails++;
}
const read = (f) => {
  try {
    return readFileSync(`${dir}/${f}`, 'utf8');
  } catch {
    return '';
  }
};
function load(name) {
  const r = { name, rc: Number(read(`${name}.rc`).trim() || -1), out: read(`${name}.json`), err: read(`${name}.err`) };
  try {
    r.j = JSON.parse(r.out);
  } catch {
    r.j = undefined;
  }
  r.proxy = r.j?.hosts?.find((h) => h.host === 'proxy');
  r.notes = (r.proxy?.notes ?? []).join('; ');
  r.nat = (r.proxy?.changes ?? []).filter((c) => c.kind === 'stateless-nat');
  const errs = (r.j?.errors ?? []).map((e) => `${e.host ?? ""}: ${e.message}`).join('; ');
  const stderr = r.err.split('\n').filter((l) => !l.startsWith('[timing]')).join(' ').slice(-400);
  r.why = `exit ${r.rc}${r.j ? `, result ${r.j.result ?? '-'}` : ', no JSON'}: ${r.j?.failure ?? ''} ${errs} ${stderr}`;
  return r;
}
const shown = new Set();
function show(r) { // the whole output once, for a person, when a check on it failed
  if (shown.has(r.name)) return;
  shown.add(r.name);
  console.log(`---- ${r.name}.json (exit ${r.rc})\n${r.out}\n---- ${r.name}.err\n${r.err}\n---- end ${r.name}`);
}
function want(r, name, ok, okDetail, failDetail = r.why) {
  check(name, ok, ok ? okDetail : failDetail);
  if (!ok) show(r);
}

const plan = load('plan-auto');
want(
  plan,
  'auto-picks-tc',
  plan.rc === 0 && /stateless NAT backend: tc \(auto: act_nat is \w+\)/.test(plan.notes) && plan.nat.length === 1 && plan.nat[0].id === 'tc nat on pub0',
  `${plan.notes}; ${plan.nat.map((c) => `${c.id}: ${c.commands.join(' && ')}`).join('; ')}`,
  `proxy notes: ${plan.notes || 'none'}; ${plan.why}`,
);

const a1 = load('apply1');
want(a1, 'apply-tc', a1.rc === 0 && a1.j?.result === 'applied', `exit 0, result applied; changes: ${(a1.j?.hosts ?? []).map((h) => `${h.host} ${h.changes.length}`).join(', ')}`);
want(a1, 'apply-note-tc', /stateless NAT backend: tc \(nat\.backend: tc\)/.test(a1.notes), a1.notes, `proxy notes: ${a1.notes || 'none'}; ${a1.why}`);
const summary = a1.nat.map((c) => `${c.id}: ${c.summary}`).join('; ');
const one = a1.nat.length === 1 && a1.nat[0].id === 'tc nat on pub0';
const missing = UPSTREAM_IPS.filter((ip) => !(one && a1.nat[0].summary.includes(`${ip}:53 -> ${PUBLIC}`)));
want(a1, 'apply-tc-change', missing.length === 0, summary, `no tc NAT change for ${missing.join(' ')} in: ${summary || 'no stateless-nat change'}`);

const a2 = load('apply2');
const hosts2 = a2.j?.hosts ?? [];
const counts = hosts2.map((h) => `${h.host}=${h.changes.length}`).join(' ');
const left = hosts2.flatMap((h) => h.changes.map((c) => `${h.host}: ${c.kind} ${c.id}: ${c.summary}`)).join('; ');
want(
  a2,
  'second-apply-no-changes',
  a2.rc === 0 && a2.j?.result === 'no-changes' && hosts2.length === 5 && hosts2.every((h) => h.changes.length === 0),
  `exit 0, no-changes: ${counts}; ${a2.notes}`,
  `${a2.why}; changes: ${counts}; ${left}`,
);

const rb = load('rollback');
want(rb, 'rollback', rb.rc === 0 && rb.j?.ok === true && rb.j?.nothingToUndo === false, `exit 0, ok, nothingToUndo false`);
process.exit(fails ? 1 : 0);
EOF
t=$(now)
node "$OUT/json-checks.mjs" "$OUT" || fails=$((fails + 1))
echo "@@vmtime json-checks $(since "$t")"
for f in plan-auto apply1 apply2 rollback; do
	echo "---- DSRCTL_DEBUG=timing: $f"
	grep -h '^\[timing\]' "$OUT/$f.err" 2>/dev/null
done
lab down >/dev/null 2>&1
echo "@@vmtime total $(since "$T0")"
echo "$fails check(s) failed"
[ "$fails" = 0 ]
