#!/usr/bin/env bash
# The guide's Method 2 (Direct Server Return for UDP/DNS) applied BY HAND in an already-up lab,
# with no dsrctl code involved: the reference recipe that dsrctl's dsr-* playbooks must match.
#
#   dsr-by-hand.sh router-nat   apply Method 2a (NAT on the proxy's public egress), then check it
#   dsr-by-hand.sh origin-nat   apply Method 2b (NAT on each upstream's own egress), then check it
#   dsr-by-hand.sh check        check whichever method is applied
#   dsr-by-hand.sh undo         put everything back and compare with the state before the apply
#   dsr-by-hand.sh tc-nat       try the guide's literal `tc ... action nat` commands (and clean up)
#   dsr-by-hand.sh all          tc-nat, router-nat, undo, origin-nat, undo (exit 1 on any failure)
#
# Uses lab.sh's environment (DSR_LAB_DIR, DSR_LAB_PREFIX, ...) to find the lab, and `lab.sh exec`
# to run every command inside the lab hosts. State (what undo restores, the "before" snapshot) is
# kept in $DSR_LAB_DIR/dsr-by-hand/ and is tied to the running lab (its proxy's sshd PID).
#
# What gets applied (the guide's Method 2, with nftables netdev egress instead of tc's act_nat,
# which this kernel lacks):
#   proxy  /etc/nginx/nginx.conf gets a top-level `stream { include /etc/nginx/dsrctl/*.conf; }`
#          (Debian loads ngx_stream_module from modules-enabled/50-mod-stream.conf) and
#          /etc/nginx/dsrctl/dns-by-hand.conf the guide's DSR server: listen 53 udp;
#          proxy_bind $remote_addr:$remote_port transparent; proxy_responses 0; four upstreams :53.
#          `user www-data;` stays: no `user root`, no fwmark rule, no MARK rule (Method 1 only).
#   router-nat: devN default route via the proxy (172.16.0.1); proxy ip_forward=1 and
#          udp_early_demux=0 (see DESIGN.md); proxy table netdev dsr_by_hand on pub0 egress.
#   origin-nat: devN keep their default route via the router; each devN gets table netdev
#          dsr_by_hand on its own priv0 egress; nothing on the proxy beyond nginx.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
LABSH=$here/lab.sh
LAB=$(realpath -m "${DSR_LAB_DIR:-/var/lib/dsrctl-lab/${DSR_LAB_PREFIX:-dsr}}")
STATE=$LAB/dsr-by-hand
DEVS=(dev1 dev2 dev3 dev4)
declare -A DEV_IP=([dev1]=172.16.0.11 [dev2]=172.16.0.12 [dev3]=172.16.0.13 [dev4]=172.16.0.14)
PUBLIC=192.168.99.10
SNAP_HOSTS=(client proxy router dev1 dev2 dev3 dev4)
STREAM_FILE=/etc/nginx/dsrctl/dns-by-hand.conf
FAILED=0

say() { printf '%s\n' "$*"; }
hdr() { printf '\n=== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; FAILED=1; }
die() { printf 'dsr-by-hand: error: %s\n' "$*" >&2; exit 2; }
on() { local h=$1; shift; bash "$LABSH" exec "$h" -- "$@"; }
onsh() { local h=$1; shift; bash "$LABSH" exec "$h" -- bash -c "$*"; }

lab_id() { bash "$LABSH" pids proxy 2>/dev/null; }

# Everything the recipes may touch, as text (counters zeroed), for the before/after comparison.
SNAPSHOT_SCRIPT='
echo "## ip rule"; ip rule show
echo "## ip route (all tables)"; ip route show table all
echo "## ip -6 route (all tables)"; ip -6 route show table all
echo "## iptables-save"; iptables-save 2>/dev/null | grep -v "^#" | sed "s/\[[0-9]*:[0-9]*\]/[0:0]/"
echo "## nft list ruleset"; nft list ruleset
echo "## tc"; for d in $(ls /sys/class/net); do echo "# $d"; tc qdisc show dev "$d"; tc filter show dev "$d"; done
echo "## sysctl"; sysctl net.ipv4.ip_forward net.ipv4.udp_early_demux; sysctl -a 2>/dev/null | grep "\.rp_filter"
echo "## listening sockets"; ss -Hlntu | awk "{print \$1, \$5}" | sort
echo "## /etc/nginx"; sha256sum /etc/nginx/nginx.conf; find /etc/nginx \( -type f -o -type l \) | sort | while read -r f; do echo "# $f $(stat -c "%a %U %G %s" "$f") $(sha256sum < "$f" | cut -c1-64)"; done
'
snapshot_all() { # $1: output file
  local h
  for h in "${SNAP_HOSTS[@]}"; do echo "######## $h"; onsh "$h" "$SNAPSHOT_SCRIPT"; done >"$1" 2>&1
}

# ---------------------------------------------------------------------------------------------
state_check() { # drop state left by an earlier lab
  local id
  id=$(lab_id) || die "the lab is not up (lab.sh up first; same DSR_LAB_* environment)"
  if [[ -d $STATE && $(cat "$STATE/lab-id" 2>/dev/null) != "$id" ]]; then rm -rf "$STATE"; fi
}
applied_mode() { cat "$STATE/mode" 2>/dev/null || true; }

begin_apply() { # $1: mode
  state_check
  local m
  m=$(applied_mode)
  [[ -z $m ]] || die "$m is applied; run '$0 undo' first"
  # A lab just brought up may still run IPv6 DAD: its fe80:: local routes would appear between
  # the before and after snapshots.
  local h i
  for i in $(seq 50); do
    for h in "${SNAP_HOSTS[@]}"; do [[ -z $(on "$h" ip -6 addr show tentative) ]] || { sleep 0.1; continue 2; }; done
    break
  done
  mkdir -p "$STATE"
  lab_id >"$STATE/lab-id"
  snapshot_all "$STATE/before.txt"
  echo "$1" >"$STATE/mode"
}

nginx_reload_wait() { # $1: present|absent, the UDP :53 listener on the proxy
  on proxy nginx -t -q || { fail "nginx -t failed on the proxy"; return 1; }
  local err
  err=$(on proxy nginx -s reload 2>&1) || { fail "nginx -s reload failed: $err"; return 1; }
  local i out
  for i in $(seq 100); do
    out=$(on proxy ss -Hlun 'sport = :53')
    if [[ $1 == present && -n $out ]] || [[ $1 == absent && -z $out ]]; then return 0; fi
    sleep 0.05
  done
  fail "nginx's UDP :53 listener on the proxy is not $1 after reload"
}

apply_nginx() {
  hdr "proxy: nginx stream service (the guide's DSR server)"
  onsh proxy 'grep -H . /etc/nginx/modules-enabled/*stream*.conf && ls -l /usr/lib/nginx/modules/ngx_stream_module.so' ||
    fail "the stream module is not loaded by modules-enabled"
  on proxy cat /etc/nginx/nginx.conf >"$STATE/nginx.conf.orig"
  on proxy test -d /etc/nginx/dsrctl && touch "$STATE/dsrctl-dir-existed"
  onsh proxy "mkdir -p /etc/nginx/dsrctl && cat >>/etc/nginx/nginx.conf" <<'EOF'

# dsr-by-hand.sh: the guide's Method 2 (stream servers cannot live in conf.d, which is inside http {})
stream {
	include /etc/nginx/dsrctl/*.conf;
}
EOF
  onsh proxy "cat >$STREAM_FILE" <<'EOF'
# dsr-by-hand.sh: the guide's DSR service (Method 2)
upstream dns_upstreams {
    server 172.16.0.11:53;
    server 172.16.0.12:53;
    server 172.16.0.13:53;
    server 172.16.0.14:53;
}

server {
    listen 53 udp;
    proxy_bind $remote_addr:$remote_port transparent;
    proxy_responses 0;
    # proxy_timeout 1s;
    proxy_pass dns_upstreams;
}
EOF
  on proxy tail -n 6 /etc/nginx/nginx.conf
  on proxy cat "$STREAM_FILE"
  nginx_reload_wait present
  onsh proxy 'echo "nginx.conf: $(grep -E "^\s*user\b" /etc/nginx/nginx.conf)"'
}

nft_router_nat() {
  cat <<EOF
table netdev dsr_by_hand {
  chain egress {
    type filter hook egress device "pub0" priority 0;
    ip saddr 172.16.0.11-172.16.0.14 udp sport 53 counter ip saddr set $PUBLIC
  }
}
EOF
}
nft_origin_nat() { # $1: the upstream's own address
  cat <<EOF
table netdev dsr_by_hand {
  chain egress {
    type filter hook egress device "priv0" priority 0;
    ip saddr $1 udp sport 53 counter ip saddr set $PUBLIC
  }
}
EOF
}

cmd_router_nat() {
  begin_apply router-nat
  apply_nginx
  hdr "upstreams: default route via the proxy"
  local h
  for h in "${DEVS[@]}"; do
    on "$h" ip route show default >"$STATE/$h.default-route"
    on "$h" ip route replace default via 172.16.0.1 dev priv0
    say "$h: $(on "$h" ip route show default)"
  done
  hdr "proxy: forwarding, early demux off, stateless NAT on pub0 egress"
  on proxy sysctl -n net.ipv4.ip_forward >"$STATE/proxy.ip_forward"
  on proxy sysctl -n net.ipv4.udp_early_demux >"$STATE/proxy.udp_early_demux"
  on proxy sysctl -w net.ipv4.ip_forward=1 net.ipv4.udp_early_demux=0
  nft_router_nat | on proxy nft -f - || fail "nft -f (router NAT) failed"
  on proxy nft list table netdev dsr_by_hand
  cmd_check
}

cmd_origin_nat() {
  begin_apply origin-nat
  apply_nginx
  hdr "upstreams: stateless NAT on each one's own priv0 egress (default route stays via the router)"
  local h
  for h in "${DEVS[@]}"; do
    nft_origin_nat "${DEV_IP[$h]}" | on "$h" nft -f - || fail "nft -f (origin NAT) failed on $h"
    say "$h: $(on "$h" ip route show default)"
  done
  on dev1 nft list table netdev dsr_by_hand
  cmd_check
}

# ---------------------------------------------------------------------------------------------
# Checks.
digs() { # $1: count, $2: dig +time; prints one line per query: the answer or FAIL
  onsh client "for i in \$(seq $1); do a=\$(dig +short +tries=1 +time=$2 @$PUBLIC www.example.com A 2>&1); [[ \$a =~ ^172\.16\.0\.1[1-4]\$ ]] && echo \"\$a\" || echo FAIL; done"
}

watch_on() { # counters for UDP source port 53 on the proxy's and the router's interfaces
  onsh proxy 'nft -f -' <<'EOF'
table netdev dsr_by_hand_watch {
  chain in_priv {
    type filter hook ingress device "priv0" priority -10;
    ip saddr 172.16.0.0/24 udp sport 53 counter
  }
  chain out_pub {
    type filter hook egress device "pub0" priority 10;
    udp sport 53 counter
  }
}
EOF
  onsh router 'nft -f -' <<'EOF'
table netdev dsr_by_hand_watch {
  chain in_priv {
    type filter hook ingress device "priv0" priority -10;
    udp sport 53 counter
  }
  chain out_pub {
    type filter hook egress device "pub0" priority 10;
    udp sport 53 counter
  }
}
EOF
}
watch_off() { local h; for h in proxy router; do on "$h" nft delete table netdev dsr_by_hand_watch 2>/dev/null; done; true; }
counters() { # host: prints "in_priv=N out_pub=N"
  on "$1" nft list table netdev dsr_by_hand_watch |
    awk '/chain/ {c=$2} /counter packets/ {for (i=1;i<=NF;i++) if ($i=="packets") printf "%s=%s ", c, $(i+1)} END {print ""}'
}

summarise() { # stdin: digs output; prints counts, returns the number of failures
  local out fails
  out=$(cat)
  fails=$(grep -c FAIL <<<"$out")
  say "answers: $(grep -v FAIL <<<"$out" | sort | uniq -c | awk '{printf "%s x%s  ", $2, $1}')failures: $fails/$(wc -l <<<"$out")"
  return "$fails"
}

cmd_check() {
  state_check
  local m
  m=$(applied_mode)
  [[ -n $m ]] || die "nothing applied (router-nat or origin-nat first)"
  hdr "check $m: one full dig from the client"
  on client dig +tries=1 +time=2 @"$PUBLIC" www.example.com A | grep -E 'status|^www|SERVER|WARNING|unexpected' || fail "the first dig got no answer"

  hdr "check $m: 8 queries from the client (dig +short +tries=1 +time=2 @$PUBLIC www.example.com)"
  watch_off
  watch_on
  local out
  out=$(digs 8 2)
  echo "$out" | paste -sd' '
  summarise <<<"$out" || fail "$m: some of 8 queries got no answer"
  [[ $(grep -v FAIL <<<"$out" | sort -u | wc -l) -eq 4 ]] || fail "$m: the answers did not come from all four upstreams"
  local pc rc
  pc=$(counters proxy)
  rc=$(counters router)
  say "UDP sport 53 seen by the proxy:  $pc(in_priv: from 172.16.0.0/24 in on priv0; out_pub: out on pub0)"
  say "UDP sport 53 seen by the router: $rc"
  say "NAT rule counter(s): $(
    if [[ $m == router-nat ]]; then on proxy nft list table netdev dsr_by_hand | grep -o 'counter packets [0-9]*'
    else for h in "${DEVS[@]}"; do printf '%s ' "$h:$(on "$h" nft list table netdev dsr_by_hand | grep -o 'packets [0-9]*')"; done; fi)"
  if [[ $m == origin-nat ]]; then
    [[ $pc == "in_priv=0 out_pub=0 " ]] || fail "origin NAT: replies crossed the proxy ($pc)"
  else
    [[ $pc == "in_priv=8 out_pub=8 " ]] || fail "router NAT: expected the 8 replies in on priv0 and out on pub0 ($pc)"
  fi
  watch_off
  say "what dev1's dnsmasq saw (log-queries):"
  on dev1 tail -n 2 "$LAB/hosts/dev1/dnsmasq.log" | sed 's/^/  /'

  hdr "check $m: nginx user and transparent bind"
  onsh proxy 'm=$(cat /run/nginx.pid); echo "master $(ps -o user= -p "$m"), workers: $(ps -o user= --ppid "$m" | sort | uniq -c | paste -sd" ")"; grep -E "^\s*user\b" /etc/nginx/nginx.conf'
  onsh proxy 'e=$(grep -iE "transparent|bind\(|EPERM|not permitted" /var/log/nginx/error.log | tail -n 3); echo "error.log: ${e:-no bind/transparent errors}"'

  if [[ $m == router-nat ]]; then
    hdr "check router-nat: net.ipv4.udp_early_demux on the proxy, 30 queries each"
    local v was
    was=$(on proxy sysctl -n net.ipv4.udp_early_demux)
    for v in 1 0; do
      on proxy sysctl -qw net.ipv4.udp_early_demux=$v
      printf 'udp_early_demux=%s: ' "$v"
      digs 30 1 | summarise
    done
    on proxy sysctl -qw net.ipv4.udp_early_demux="$was"
  else
    hdr "check origin-nat: rp_filter"
    say "all rp_filter values (every host): $(for h in "${SNAP_HOSTS[@]}"; do on "$h" sysctl -a 2>/dev/null | grep '\.rp_filter' | awk '{print $3}'; done | sort | uniq -c | paste -sd' ')"
    say "the router receives the rewritten replies (source $PUBLIC) on priv0; with its default rp_filter=0 it forwards them."
    local all priv
    all=$(on router sysctl -n net.ipv4.conf.all.rp_filter)
    priv=$(on router sysctl -n net.ipv4.conf.priv0.rp_filter)
    for v in 1 2; do
      on router sysctl -qw net.ipv4.conf.all.rp_filter=$v net.ipv4.conf.priv0.rp_filter=$v
      printf 'router rp_filter=%s (all, priv0), 8 queries: ' "$v"
      digs 8 1 | summarise
    done
    on router sysctl -qw net.ipv4.conf.all.rp_filter="$all" net.ipv4.conf.priv0.rp_filter="$priv"

    hdr "check origin-nat: side effect on direct queries to an upstream"
    printf 'proxy -> dig @172.16.0.11 (not through nginx): '
    on proxy dig +short +tries=1 +time=1 @172.16.0.11 www.example.com A | paste -sd' '
    printf 'router -> dig @172.16.0.11: '
    on router dig +short +tries=1 +time=1 @172.16.0.11 www.example.com A | paste -sd' '
  fi
  return 0
}

# ---------------------------------------------------------------------------------------------
cmd_undo() {
  state_check
  local m h
  m=$(applied_mode)
  [[ -n $m ]] || { say "nothing applied"; return 0; }
  hdr "undo $m"
  for h in proxy router "${DEVS[@]}"; do
    on "$h" nft delete table netdev dsr_by_hand 2>/dev/null
    on "$h" nft delete table netdev dsr_by_hand_watch 2>/dev/null
  done
  for h in "${DEVS[@]}"; do
    [[ -s $STATE/$h.default-route ]] || continue
    # shellcheck disable=SC2046 # the saved route, word by word
    on "$h" ip route replace $(<"$STATE/$h.default-route")
  done
  [[ -s $STATE/proxy.ip_forward ]] && on proxy sysctl -qw net.ipv4.ip_forward="$(<"$STATE/proxy.ip_forward")"
  [[ -s $STATE/proxy.udp_early_demux ]] && on proxy sysctl -qw net.ipv4.udp_early_demux="$(<"$STATE/proxy.udp_early_demux")"
  if [[ -s $STATE/nginx.conf.orig ]]; then
    on proxy tee /etc/nginx/nginx.conf <"$STATE/nginx.conf.orig" >/dev/null
    on proxy rm -f "$STREAM_FILE"
    [[ -e $STATE/dsrctl-dir-existed ]] || on proxy rmdir /etc/nginx/dsrctl 2>/dev/null
    nginx_reload_wait absent
  fi
  snapshot_all "$STATE/after.txt"
  if diff -u "$STATE/before.txt" "$STATE/after.txt" >"$STATE/undo.diff"; then
    say "undo: every host is as before ($(wc -l <"$STATE/before.txt") lines of ip rule/route, nft, iptables-save, tc, sysctl, sockets, /etc/nginx hashes compared)"
    rm -rf "$STATE"
  else
    fail "undo left differences (kept in $STATE/undo.diff):"
    cat "$STATE/undo.diff"
    rm -f "$STATE/mode"
  fi
}

cmd_tc_nat() {
  state_check
  hdr "tc: the guide's literal router-NAT commands on the proxy's pub0"
  local out rc
  out=$(on proxy tc qdisc add dev pub0 root handle 10: htb 2>&1); rc=$?
  say "\$ tc qdisc add dev pub0 root handle 10: htb  -> rc=$rc ${out}"
  out=$(on proxy tc filter add dev pub0 parent 10: protocol ip prio 10 u32 match ip src 172.16.0.11 match ip sport 53 action nat egress 172.16.0.11 192.168.99.10 2>&1); rc=$?
  say "\$ tc filter add dev pub0 parent 10: protocol ip prio 10 u32 match ip src 172.16.0.11 match ip sport 53 action nat egress 172.16.0.11 192.168.99.10  -> rc=$rc"
  say "$out" | sed 's/^/    /'
  out=$(on proxy tc filter add dev pub0 parent 10: protocol ip prio 10 u32 match ip src 172.16.0.11 match ip sport 53 0xffff action nat egress 172.16.0.11 192.168.99.10 2>&1); rc=$?
  say "\$ ... match ip sport 53 0xffff action nat egress ...  -> rc=$rc"
  say "$out" | sed 's/^/    /'
  on proxy tc qdisc del dev pub0 root 2>/dev/null
  say "qdisc on pub0 after cleanup: $(on proxy tc qdisc show dev pub0)"
}

cmd_all() {
  cmd_tc_nat
  cmd_router_nat
  cmd_undo
  cmd_origin_nat
  cmd_undo
}

case ${1:-} in
  router-nat) cmd_router_nat ;;
  origin-nat) cmd_origin_nat ;;
  check) cmd_check ;;
  undo) cmd_undo ;;
  tc-nat) cmd_tc_nat ;;
  all) cmd_all ;;
  *) echo "usage: $0 router-nat|origin-nat|check|undo|tc-nat|all" >&2; exit 2 ;;
esac
((FAILED == 0)) && echo "dsr-by-hand: ok" || echo "dsr-by-hand: FAILED"
exit "$FAILED"
