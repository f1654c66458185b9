#!/usr/bin/env bash
# Run INSIDE the VM (a stock Debian kernel, which has act_nat):
#
#   bash test/vm/run-in-vm.sh test/vm/tc-router-nat.sh
#
# The guide's DSR router NAT (Method 2a) with the tc backend, end to end and for real: the
# namespace lab (test/lab/lab.sh, DSR_LAB_MODE=dsr-router-nat: udp/53, dnsmasq upstreams) and the
# built CLI (dist/cli.js) over SSH, all inside the VM. test/e2e/tc-backend.test.ts runs it on the
# host and asserts every check line:
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
LABDIR=$repo/.lab-vm
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
note_of() { jq -r '[.hosts[] | select(.host == "proxy") | .notes[]] | join("; ")' "$1" 2>/dev/null; }

T0=$(now)
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
timed plan-auto dsrctl plan -i "$LABDIR/auto.yaml" --json >"$OUT/plan-auto.json" 2>"$OUT/plan-auto.err"
note=$(note_of "$OUT/plan-auto.json")
if [[ $note == *"stateless NAT backend: tc (auto: act_nat is "* ]] && jq -e '[.hosts[] | select(.host == "proxy") | .changes[] | select(.kind == "stateless-nat" and .id == "tc nat on pub0")] | length == 1' "$OUT/plan-auto.json" >/dev/null; then
	check auto-picks-tc ok "$note"
else
	check auto-picks-tc fail "proxy notes: ${note:-none}; $(head -c 400 "$OUT/plan-auto.err")"
	show plan-auto.json "$OUT/plan-auto.json"
	show plan-auto.err "$OUT/plan-auto.err"
fi

# ---------------------------------------------------------------- apply with nat.backend tc
timed apply-1 dsrctl apply -i "$LABDIR/tc.yaml" --yes --json >"$OUT/apply1.json" 2>"$OUT/apply1.err"
rc=$?
note=$(note_of "$OUT/apply1.json")
nat=$(jq -r '[.hosts[] | select(.host == "proxy") | .changes[] | select(.kind == "stateless-nat") | "\(.id): \(.summary)"] | join("; ")' "$OUT/apply1.json" 2>/dev/null)
if [ $rc = 0 ] && jq -e '.result == "applied"' "$OUT/apply1.json" >/dev/null 2>&1; then
	check apply-tc ok "exit 0, result applied; $nat"
else
	check apply-tc fail "exit $rc: $(jq -r .result "$OUT/apply1.json" 2>/dev/null) $(tail -c 600 "$OUT/apply1.err")"
	show apply1.json "$OUT/apply1.json"
	show apply1.err "$OUT/apply1.err"
fi
if [[ $note == *"stateless NAT backend: tc (nat.backend: tc)"* ]]; then check apply-note-tc ok "$note"; else check apply-note-tc fail "proxy notes: ${note:-none}"; fi
missing=
for ip in "${UPSTREAM_IPS[@]}"; do [[ $nat == *"tc nat on pub0: "*"$ip:53 -> $PROXY_PUBLIC"* ]] || missing+=" $ip"; done
if [ -z "$missing" ]; then check apply-tc-change ok "$nat"; else check apply-tc-change fail "no tc NAT for$missing in: ${nat:-no stateless-nat change}"; fi

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
on proxy tc -s filter show dev pub0 >"$OUT/filters-before-dig.txt" 2>&1
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
timed apply-2 dsrctl apply -i "$LABDIR/tc.yaml" --yes --json >"$OUT/apply2.json" 2>"$OUT/apply2.err"
rc=$?
counts=$(jq -r '[.hosts[] | "\(.host)=\(.changes | length)"] | join(" ")' "$OUT/apply2.json" 2>/dev/null)
if [ $rc = 0 ] && jq -e '.result == "no-changes" and all(.hosts[]; (.changes | length) == 0)' "$OUT/apply2.json" >/dev/null 2>&1; then
	check second-apply-no-changes ok "exit 0, no-changes: $counts"
else
	check second-apply-no-changes fail "exit $rc, result $(jq -r .result "$OUT/apply2.json" 2>/dev/null): $counts; proxy: $(jq -r '[.hosts[] | select(.host == "proxy") | .changes[] | "\(.kind) \(.id): \(.summary)"] | join("; ")' "$OUT/apply2.json" 2>/dev/null) $(tail -c 400 "$OUT/apply2.err")"
	show apply2.json "$OUT/apply2.json"
fi
timed snapshot snapshot "$OUT/applied2" proxy
# htb counts the packets it passed (direct_packets_stat), and the apply's own probe sent some
same_snapshots "$OUT/applied" "$OUT/applied2" second-apply-untouched 's/direct_packets_stat [0-9]*/direct_packets_stat N/'


# ---------------------------------------------------------------- rollback: back to before
timed rollback dsrctl rollback -i "$LABDIR/tc.yaml" --yes --json >"$OUT/rollback.json" 2>"$OUT/rollback.err"
rc=$?
if [ $rc = 0 ] && jq -e '.ok == true' "$OUT/rollback.json" >/dev/null 2>&1; then
	check rollback ok "exit 0, ok"
else
	check rollback fail "exit $rc: $(tail -c 600 "$OUT/rollback.err")"
	show rollback.json "$OUT/rollback.json"
fi
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

for f in plan-auto apply1 apply2 rollback; do
	echo "---- DSRCTL_DEBUG=timing: $f"
	grep -h '^\[timing\]' "$OUT/$f.err" 2>/dev/null
done
lab down >/dev/null 2>&1
echo "@@vmtime total $(since "$T0")"
echo "$fails check(s) failed"
[ "$fails" = 0 ]
