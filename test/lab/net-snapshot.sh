#!/bin/sh
# A host's network state as text, normalised so that two snapshots are equal when the state is
# (run inside a lab host: `systemd-lab.sh snapshot HOST`). Compared before and after a reboot:
# what differs only because the kernel objects are new (packet/byte counters, nft handles,
# interface indexes in `@ifN` peer names) is removed; everything dsrctl sets or a boot restores
# (rules, routes of every table, addresses, firewall rules, tc, the sysctls dsrctl touches) stays.
echo '## links'
ip -br link show | awk '{ sub(/@.*/, "", $1); $1 = $1; print }' | sort
echo '## addresses'
ip -o addr show | awk '{print $2, $3, $4}' | sort
echo '## ip rule'
ip rule show
echo '## ip route (all tables)'
ip route show table all
echo '## ip -6 route (all tables)'
ip -6 route show table all
echo '## iptables-save'
iptables-save | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[0:0]/'
echo '## nft list ruleset'
nft list ruleset | sed -e 's/counter packets [0-9]* bytes [0-9]*/counter packets 0 bytes 0/' -e 's/ # handle [0-9]*//'
echo '## tc'
for d in $(ls /sys/class/net | sort); do
  echo "# $d"
  tc qdisc show dev "$d" | sed 's/direct_packets_stat [0-9]*/direct_packets_stat 0/'
  tc filter show dev "$d" ingress 2>/dev/null
  tc filter show dev "$d" egress 2>/dev/null
done
echo '## sysctl'
sysctl net.ipv4.ip_forward net.ipv4.udp_early_demux
for d in all default $(ls /sys/class/net | sort); do
  sysctl "net.ipv4.conf.$d.forwarding" "net.ipv4.conf.$d.rp_filter" "net.ipv4.conf.$d.accept_redirects" "net.ipv4.conf.$d.send_redirects" 2>/dev/null
done
