#!/bin/sh
# Smoke test, run INSIDE the VM:  bash test/vm/run-in-vm.sh test/vm/smoke.sh
# Checks what dsrctl's VM tests need (netns, tc act_nat, nft netdev egress on a veth) and
# that the root filesystem is a throwaway overlay; prints timings. Exit 0 when all pass.
# The host side of the write probe: /etc/dsrctl-vm-probe must not exist on the host afterwards.
set -u
fails=0
ok() { echo "ok   - $*"; }
bad() {
	echo "FAIL - $*"
	fails=$((fails + 1))
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

[ "${DSRVM:-}" = 1 ] || { echo "refusing to run outside the VM (run it through run-in-vm.sh)"; exit 2; }
echo "kernel: $(uname -r)"
echo "uptime at start: $(cut -d' ' -f1 /proc/uptime) s"

t=$(now)
if ip netns add x && ip netns exec x ip link set lo up; then
	ok "ip netns add x && ip netns exec x ip link set lo up ($(since "$t") s)"
else
	bad "ip netns"
fi

echo "--- tc act_nat"
if modprobe act_nat &&
	tc qdisc add dev lo root handle 10: htb &&
	tc filter add dev lo parent 10: protocol ip prio 10 u32 match ip src 127.0.0.1 action nat egress 127.0.0.1 127.0.0.2; then
	echo "\$ tc filter show dev lo"
	tc filter show dev lo
	echo "\$ tc -s filter show dev lo"
	tc -s filter show dev lo
	if tc filter show dev lo | grep -q 'nat egress 127.0.0.1/32 127.0.0.2'; then
		ok "tc u32 + action nat"
	else
		bad "tc filter show has no stateless nat action"
	fi
	tc qdisc del dev lo root
else
	bad "tc act_nat"
fi

echo "--- act_nat on real traffic (veth between two namespaces)"
# a: 10.9.0.1 --veth--> b: 10.9.0.2; a's egress rewrites source 10.9.0.1 -> 10.9.0.3;
# b counts ICMP from 10.9.0.3 with nftables (the rewrite is one way, so no replies are expected)
ip netns add a && ip netns add b &&
	ip -n a link add va type veth peer name vb netns b &&
	ip -n a addr add 10.9.0.1/24 dev va && ip -n a link set va up &&
	ip -n b addr add 10.9.0.2/24 dev vb && ip -n b link set vb up &&
	ip -n a neigh add 10.9.0.2 lladdr "$(ip -n b -br link show vb | awk '{print $3}')" dev va &&
	ip netns exec a tc qdisc add dev va root handle 1: htb &&
	ip netns exec a tc filter add dev va parent 1: protocol ip prio 10 u32 match ip src 10.9.0.1/32 \
		action nat egress 10.9.0.1/32 10.9.0.3 &&
	printf 'table ip t {\n chain in {\n  type filter hook prerouting priority 0;\n  ip saddr 10.9.0.3 counter\n }\n}\n' |
	ip netns exec b nft -f - &&
	ip netns exec a ping -c 2 -W 1 10.9.0.2 >/dev/null 2>&1
n=$(ip netns exec b nft list table ip t 2>/dev/null | sed -n 's/.*counter packets \([0-9]*\).*/\1/p')
if [ "${n:-0}" -ge 2 ]; then ok "b saw $n packets from the rewritten source 10.9.0.3"; else bad "act_nat rewrite not seen (packets=${n:-?})"; fi

echo "--- nft netdev egress on a veth"
if ip link add v0 type veth peer name v1 && ip link set v0 up && ip link set v1 up &&
	printf 'table netdev dsrctl {\n  chain egress {\n    type filter hook egress device "v0" priority 0;\n    ip saddr 172.16.0.0/28 udp sport 53 ip saddr set 192.168.99.10\n  }\n}\n' | nft -f -; then
	nft list table netdev dsrctl
	ok "nft netdev egress table on veth v0"
else
	bad "nft netdev egress"
fi

echo "--- overlay: writes stay in the VM"
if echo probe >/etc/dsrctl-vm-probe && [ "$(cat /etc/dsrctl-vm-probe)" = probe ]; then
	ok "wrote /etc/dsrctl-vm-probe inside (the host must not have it)"
else
	bad "cannot write /etc inside the VM"
fi
if grep -q ' /run/dsrvm/lower 9p ro,' /proc/mounts && ! touch /run/dsrvm/lower/etc/dsrctl-vm-probe 2>/dev/null; then
	ok "host root is mounted read-only (9p ro) under the overlay"
else
	bad "9p lower layer is writable"
fi

echo "--- timings"
t=$(now)
out=$(node -e 'console.log(1)' 2>&1)
echo "node -e 'console.log(1)': $(since "$t") s (printed: $out)"
t=$(now)
ip netns exec x true
echo "ip netns exec x true: $(since "$t") s"
t=$(now)
if ip netns exec x nginx -t >/tmp/nginx-t.log 2>&1; then
	echo "ip netns exec x nginx -t: $(since "$t") s"
	ok "nginx -t"
else
	cat /tmp/nginx-t.log
	bad "nginx -t"
fi
echo "uptime at end: $(cut -d' ' -f1 /proc/uptime) s"
echo "$fails failed"
[ "$fails" -eq 0 ]
