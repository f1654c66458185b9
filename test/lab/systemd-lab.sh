#!/usr/bin/env bash
# dsrctl test lab, systemd flavour: the guide's topology with hosts that boot Debian's real
# systemd and can really reboot (test/lab/lab.sh is the namespace flavour; this reuses its
# settings, addresses, client/router hosts, teardown and inventory).
#
#   systemd-lab.sh up                  build the lab (tears down any previous one first)
#   systemd-lab.sh down                remove everything (containers by PID, overlays, links, netns)
#   systemd-lab.sh status              hosts, boots, PIDs, system state; exit 0 if up, 1 if not
#   systemd-lab.sh exec HOST -- CMD    run CMD in HOST (systemd hosts: in all of its container's
#                                      namespaces, as its PID 1 sees the world)
#   systemd-lab.sh reboot HOST...      `systemctl reboot` inside each HOST, then wait-up
#   systemd-lab.sh wait-up [HOST...]   wait until sshd answers, `systemctl is-system-running` has
#                                      settled and nginx answers; prints boot-to-serving times
#   systemd-lab.sh snapshot HOST       HOST's normalised network state (test/lab/net-snapshot.sh)
#   systemd-lab.sh boots HOST          how many times HOST has booted since `up`
#
# Hosts:
#   proxy, dev1, dev2   systemd-nspawn containers booting /lib/systemd/systemd as PID 1. Each root
#                       is an overlay of the machine's own root (lowerdir=/) with an upper dir of
#                       its own (<lab-dir>/sd/<host>/upper): whatever a host writes (/etc included)
#                       lands there and survives its reboots, never on the machine. /root is a
#                       per-host dir (sd/<host>/home), /tmp a tmpfs. Stocked like real hosts:
#                       systemd-networkd configures the links from /etc/systemd/network/*.network
#                       (the upstreams' priv0 file has Gateway=172.16.0.254, the router, as
#                       lab.sh's upstreams' default route), nginx.service, ssh.service and (on the
#                       upstreams) dnsmasq.service are started by systemd.
#   client, router      plain namespaces exactly as in lab.sh (they never reboot).
# A reboot loses all kernel network state, as a real one does: each host's supervisor (one
# process per host, sd/<host>/supervisor.pid) makes a fresh network namespace <prefix>-<host>
# with fresh veth ports (fixed MAC addresses, like real NICs) before every boot, and boots the
# container again when systemd-nspawn exits with 133 (the container rebooted).
#
# Environment: as lab.sh (DSR_LAB_PREFIX default sd, DSR_LAB_DIR, DSR_LAB_MODE, DSR_LAB_PROTOCOL,
# DSR_LAB_INVENTORY default <lab-dir>/lab.yaml, DSR_LAB_MGMT_OCTET default 1, DSR_LAB_DNS);
# DSR_LAB_BOOT_TIMEOUT seconds a host may take to boot (default 90).
set -euo pipefail

sd_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export DSR_LAB_PREFIX=${DSR_LAB_PREFIX:-sd}
# its own management net by default (10.211.1.0/24), so it runs beside lab.sh's default lab (10.211.0.0/24)
export DSR_LAB_MGMT_OCTET=${DSR_LAB_MGMT_OCTET:-1}
export DSR_LAB_UPSTREAMS=2
: "${DSR_LAB_INVENTORY:=${DSR_LAB_DIR:-/var/lib/dsrctl-lab/$DSR_LAB_PREFIX}/lab.yaml}"
export DSR_LAB_INVENTORY
[[ -z ${DSR_LAB_JUMP:-}${DSR_LAB_SUDO:-}${DSR_LAB_STOCK:-} ]] || { echo "systemd-lab.sh: DSR_LAB_JUMP, DSR_LAB_SUDO and DSR_LAB_STOCK are lab.sh options only" >&2; exit 2; }
# shellcheck source=lab.sh
source "$sd_here/lab.sh"

SD_HOSTS=(proxy dev1 dev2)   # systemd containers
PLAIN_HOSTS=(client router)  # lab.sh hosts
DEVS=(dev1 dev2)
ALL_HOSTS=(client router proxy dev1 dev2)
SD=$LAB/sd
BOOT_TIMEOUT=${DSR_LAB_BOOT_TIMEOUT:-90}
declare -A HOST_NO=([proxy]=1 [dev1]=2 [dev2]=3)
declare -A IF_NO=([pub0]=1 [priv0]=2 [mgmt0]=3)

is_sd_host() { local h; for h in "${SD_HOSTS[@]}"; do [[ $h == "$1" ]] && return 0; done; return 1; }
is_any_host() { local h; for h in "${ALL_HOSTS[@]}"; do [[ $h == "$1" ]] && return 0; done; return 1; }
mac_of() { printf '02:d5:%02x:%02x:%02x:00' "$M" "${HOST_NO[$1]}" "${IF_NO[$2]}"; }

# ---------------------------------------------------------------------------------------------
# Containers and their PIDs.

# The container's PID 1, only when it really is in a PID and network namespace of its own (a PID
# taken for it by mistake would make `exec` act on the machine itself).
leader() {
  local h=$1 f=$SD/$1/nspawn.pid npid c self_pid self_net
  [[ -s $f ]] || return 1
  npid=$(<"$f")
  alive "$npid" || return 1
  self_pid=$(readlink /proc/self/ns/pid)
  self_net=$(readlink /proc/self/ns/net)
  for c in $(ps -o pid= --ppid "$npid" 2>/dev/null); do
    alive "$c" || continue
    [[ $(readlink "/proc/$c/ns/pid" 2>/dev/null) != "$self_pid" ]] || continue
    [[ $(readlink "/proc/$c/ns/net" 2>/dev/null) == "net:[$(stat -L -c %i "/run/netns/$(ns_of "$h")" 2>/dev/null)]" ]] || continue
    [[ $(readlink "/proc/$c/ns/net") != "$self_net" ]] || continue
    echo "$c"
    return 0
  done
  return 1
}

in_container() { # HOST CMD...: run CMD in every namespace of HOST's PID 1, with a clean environment
  local h=$1 pid
  shift
  pid=$(leader "$h") || die "host $h is not running"
  nsenter -t "$pid" -m -u -i -n -p -C -r -w -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

boots() { [[ -s $SD/$1/boots ]] && wc -l <"$SD/$1/boots" || echo 0; }

# ---------------------------------------------------------------------------------------------
# Network: the switch, the management bridge, client and router (as in lab.sh), and for a
# systemd host a fresh namespace with unconfigured ports before each boot.

mgmt_link() { # HOST NS: veth mgmt0 in NS, its peer <prefix>-m-<code> a port of the mgmt bridge
  local rv
  rv=$(root_veth "$1")
  ip link add "$rv" type veth peer name mgmt0 netns "$2"
  [[ -e /proc/sys/net/ipv6/conf/$rv ]] && echo 1 >"/proc/sys/net/ipv6/conf/$rv/disable_ipv6"
  ip link set "$rv" master "$MGMT_BR" up
}

build_base_network() {
  local h ns
  for h in client router sw; do
    ip netns add "$(ns_of "$h")"
    ip -n "$(ns_of "$h")" link set lo up
  done
  for h in client router; do ip netns exec "$(ns_of "$h")" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 2>/dev/null || true; done
  ip netns exec "$SW" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
  ip -n "$SW" link add br-pub type bridge
  ip -n "$SW" link add br-priv type bridge
  ip -n "$SW" link set br-pub up
  ip -n "$SW" link set br-priv up
  ip link add "$MGMT_BR" type bridge
  [[ -e /proc/sys/net/ipv6/conf/$MGMT_BR ]] && echo 1 >"/proc/sys/net/ipv6/conf/$MGMT_BR/disable_ipv6"
  ip addr add "$MGMT_GW/24" dev "$MGMT_BR"
  ip link set "$MGMT_BR" up

  ns=$(ns_of client)
  sw_link "$ns" pub0 br-pub client-pub
  ip -n "$ns" addr add "${PUB_IP[client]}/24" dev pub0
  ip -n "$ns" link set pub0 up
  mgmt_link client "$ns"
  ip -n "$ns" addr add "${MGMT_IP[client]}/24" dev mgmt0
  ip -n "$ns" link set mgmt0 up
  ip -n "$ns" route add default via "${PUB_IP[router]}"

  ns=$(ns_of router)
  sw_link "$ns" pub0 br-pub router-pub
  sw_link "$ns" priv0 br-priv router-priv
  ip -n "$ns" addr add "${PUB_IP[router]}/24" dev pub0
  ip -n "$ns" addr add "${PRIV_IP[router]}/24" dev priv0
  ip -n "$ns" link set pub0 up
  ip -n "$ns" link set priv0 up
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1
}

# A fresh network namespace for HOST's next boot: ports only (the host's networkd configures
# them). The previous boot's namespace is deleted first; its veth pairs go with it.
fresh_netns() {
  local h=$1 ns i
  ns=$(ns_of "$h")
  ip netns del "$ns" 2>/dev/null || true
  # the old pairs vanish asynchronously: their names must be free before they are made again
  for i in $(seq 100); do
    ip link show "$(root_veth "$h")" >/dev/null 2>&1 || ip -n "$SW" link show "$h-priv" >/dev/null 2>&1 || break
    sleep 0.05
  done
  ip netns add "$ns"
  if [[ $h == proxy ]]; then
    sw_link "$ns" pub0 br-pub "$h-pub"
    ip -n "$ns" link set pub0 address "$(mac_of "$h" pub0)"
  fi
  sw_link "$ns" priv0 br-priv "$h-priv"
  ip -n "$ns" link set priv0 address "$(mac_of "$h" priv0)"
  mgmt_link "$h" "$ns"
  ip -n "$ns" link set mgmt0 address "$(mac_of "$h" mgmt0)"
}

# ---------------------------------------------------------------------------------------------
# A systemd host's disk: the overlay and what its upper dir gets before the first boot.

network_file() { # NAME ADDRESS [GATEWAY]
  cat <<EOF
# lab: $1 (written by systemd-lab.sh, read by systemd-networkd)
[Match]
Name=$1

[Network]
Address=$2
${3:+Gateway=$3
}LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
}

stock_host() { # HOST: writes through the mounted overlay (so deletions become whiteouts)
  local h=$1 r=$SD/$1/root d
  # a machine-id of its own: without one systemd treats every boot as the first (and applies presets)
  od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$r/etc/machine-id"
  echo >>"$r/etc/machine-id"
  echo "$h" >"$r/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$h" >"$r/etc/hosts"
  # what the machine has enabled but a lab host must not run (or would slow every boot)
  for d in postgresql.service e2scrub_reap.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer fstrim.timer man-db.timer; do
    ln -sfn /dev/null "$r/etc/systemd/system/$d"
  done
  systemctl --root="$r" --quiet enable systemd-networkd.service systemd-networkd-wait-online.service nginx.service ssh.service 2>/dev/null
  mkdir -p "$r/etc/systemd/network"
  rm -f "$r"/etc/systemd/network/*
  if [[ $h == proxy ]]; then
    network_file pub0 "${PUB_IP[proxy]}/24" "${PUB_IP[router]}" >"$r/etc/systemd/network/10-pub0.network"
    network_file priv0 "${PRIV_IP[proxy]}/24" >"$r/etc/systemd/network/10-priv0.network"
  else
    network_file priv0 "${PRIV_IP[$h]}/24" "${PRIV_IP[router]}" >"$r/etc/systemd/network/10-priv0.network"
  fi
  network_file mgmt0 "${MGMT_IP[$h]}/24" >"$r/etc/systemd/network/10-mgmt0.network"

  # sshd: a host key of its own, root by key only (a drop-in: Debian's sshd_config includes them first)
  rm -f "$r"/etc/ssh/ssh_host_*
  ssh-keygen -q -t ed25519 -N '' -C "lab-$h" -f "$r/etc/ssh/ssh_host_ed25519_key"
  cat >"$r/etc/ssh/sshd_config.d/dsrctl-lab.conf" <<EOF
# lab host $h
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 50
MaxSessions 50
UseDNS no
PrintMotd no
EOF
  mkdir -p -m 0700 "$SD/$h/home/.ssh"
  cp "$LAB/authorized_keys" "$SD/$h/home/.ssh/authorized_keys"
  echo "${MGMT_IP[$h]} $(cut -d' ' -f1,2 "$r/etc/ssh/ssh_host_ed25519_key.pub")" >>"$LAB/known_hosts"

  # nginx: no default site; the upstreams' hello server, the proxy's reverse proxy
  rm -f "$r/etc/nginx/sites-enabled/default"
  if [[ $h == proxy ]]; then
    {
      echo "# The guide's standard reverse proxy (before IP Transparency)."
      echo 'upstream http_upstreams {'
      for d in "${DEVS[@]}"; do echo "    server ${PRIV_IP[$d]}:8080;"; done
      printf '}\n\nserver {\n    listen 80;\n    location / {\n        proxy_pass http://http_upstreams;\n    }\n}\n'
    } >"$r/etc/nginx/conf.d/app.conf"
    return 0
  fi
  cat >"$r/etc/nginx/conf.d/hello.conf" <<'EOF'
server {
    listen 8080;
    location / {
        return 200 "Hello from $hostname. You connected from $remote_addr:$remote_port to $server_addr:$server_port\n";
    }
}
EOF
  # the guide's DNS upstream (as lab.sh's, see there), started by systemd
  cat >"$r/etc/dnsmasq-lab.conf" <<EOF
# lab host $h: DNS upstream of the guide's DSR demo ($DNS: answers $ZONE only)
no-resolv
no-hosts
port=53
listen-address=${PRIV_IP[$h]}
bind-interfaces
user=root
log-queries
local=/$ZONE/
host-record=www.$ZONE,${PRIV_IP[$h]}
host-record=ns1.$ZONE,${PRIV_IP[$h]}
EOF
  cat >"$r/etc/systemd/system/dnsmasq.service" <<'EOF'
[Unit]
Description=dnsmasq: the lab's DNS upstream
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/sbin/dnsmasq --keep-in-foreground --log-facility=- --conf-file=/etc/dnsmasq-lab.conf

[Install]
WantedBy=multi-user.target
EOF
  systemctl --root="$r" --quiet enable dnsmasq.service 2>/dev/null
}

prepare_sd_host() {
  local h=$1 d=$SD/$1
  mkdir -p "$d/upper" "$d/work" "$d/root" "$d/home"
  chmod 0700 "$d/home"
  mount -t overlay overlay -o "lowerdir=/,upperdir=$d/upper,workdir=$d/work" "$d/root"
  stock_host "$h"
}

# ---------------------------------------------------------------------------------------------
# cgroups: systemd-nspawn --keep-unit puts the container below the cgroup it was started in
# (<cgroup>/payload), and a container's systemd makes its own tree there (system.slice/...).
# Containers started from one cgroup would share that tree and move each other's services
# (seen: a unit failing with 219/CGROUP), so each host's supervisor runs in a cgroup of its own,
# in each hierarchy systemd uses: the named v1 "systemd" one and the unified one (or the only
# one on a pure cgroup2 machine).
cgroup_dirs() { # HOST
  local root
  if [[ $(stat -f -c %T /sys/fs/cgroup 2>/dev/null) == cgroup2fs ]]; then
    echo "/sys/fs/cgroup/dsrctl-lab/$P-$1"
    return 0
  fi
  for root in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
    mountpoint -q "$root" 2>/dev/null && echo "$root/dsrctl-lab/$P-$1"
  done
  return 0
}

cgroup_enter() { # HOST: move this process into HOST's cgroups
  local c
  for c in $(cgroup_dirs "$1"); do
    mkdir -p "$c"
    echo $$ >"$c/cgroup.procs"
  done
}

cgroup_remove() { # HOST: its cgroups, bottom up, once no process is left in them
  local c
  for c in $(cgroup_dirs "$1"); do
    [[ -d $c ]] && { find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true; }
    rmdir "$(dirname "$c")" 2>/dev/null || true # dsrctl-lab/, when no other lab uses it
  done
  return 0
}

# ---------------------------------------------------------------------------------------------
# The supervisor: one per systemd host, detached; boots the container again after each reboot.
supervise() {
  local h=$1 d=$SD/$1 ns rc
  ns=$(ns_of "$h")
  echo $$ >"$d/supervisor.pid"
  cgroup_enter "$h"
  while :; do
    fresh_netns "$h"
    date +%s.%N >>"$d/boots"
    SYSTEMD_NSPAWN_API_VFS_WRITABLE=network systemd-nspawn -q -D "$d/root" -b -M "$P-$h" \
      --register=no --keep-unit --network-namespace-path="/run/netns/$ns" --capability=CAP_NET_ADMIN \
      --bind="$d/home:/root" --tmpfs=/tmp --link-journal=no --resolv-conf=off --timezone=off \
      --console=passive </dev/null >>"$d/console.log" 2>&1 &
    echo $! >"$d/nspawn.pid"
    rc=0
    wait $! || rc=$?
    echo "lab: systemd-nspawn exited with $rc" >>"$d/console.log"
    rm -f "$d/nspawn.pid"
    ip netns del "$ns" 2>/dev/null || true
    # 133: the container rebooted (systemd-nspawn@.service's RestartForceExitStatus)
    [[ $rc == 133 && ! -e $d/stop ]] || break
  done
}

start_sd_hosts() {
  local h
  for h in "${SD_HOSTS[@]}"; do
    rm -f "$SD/$h/stop"
    rm -f "$SD/$h/supervisor.pid"
    setsid bash "$sd_here/systemd-lab.sh" __supervise "$h" </dev/null >>"$SD/$h/supervisor.log" 2>&1 9>&- 8>&- &
  done
  # each supervisor writes its PID first thing: from then on its end means its container's end
  for h in "${SD_HOSTS[@]}"; do
    for _ in $(seq 100); do [[ -s $SD/$h/supervisor.pid ]] && break; sleep 0.05; done
    [[ -s $SD/$h/supervisor.pid ]] || die "$h: its supervisor did not start (see $SD/$h/supervisor.log)"
  done
}

# Stop every container: SIGKILL to its PID 1 ends its whole PID namespace at once (a clean
# poweroff would take seconds and nothing on these disks needs it); the supervisor then sees
# nspawn exit with something other than 133 and stops too.
stop_sd_hosts() {
  local h pid pids=() i any
  for h in "${SD_HOSTS[@]}"; do
    [[ -d $SD/$h ]] || continue
    touch "$SD/$h/stop"
    pid=$(leader "$h") && kill -KILL "$pid" 2>/dev/null || true
  done
  for h in "${SD_HOSTS[@]}"; do
    for f in "$SD/$h/supervisor.pid" "$SD/$h/nspawn.pid"; do
      [[ -s $f ]] && alive "$(<"$f")" && pids+=("$(<"$f")")
    done
  done
  for i in $(seq 100); do
    any=
    for pid in "${pids[@]}"; do alive "$pid" && any=1; done
    [[ -z $any ]] && break
    ((i == 50)) && kill -KILL "${pids[@]}" 2>/dev/null
    sleep 0.1
  done
  ((${#pids[@]})) && REMOVED+=("containers ${SD_HOSTS[*]} (supervisors and systemd-nspawn: ${pids[*]})")
  for h in "${SD_HOSTS[@]}"; do cgroup_remove "$h"; done
  return 0
}

unmount_sd_hosts() {
  local h mp ok=0
  for h in "${SD_HOSTS[@]}"; do
    mp=$SD/$h/root
    if mountpoint -q "$mp" 2>/dev/null; then
      umount "$mp" 2>/dev/null || { sleep 0.5; umount "$mp"; } || { log "could not unmount $mp"; ok=1; continue; }
      REMOVED+=("overlay $mp")
    fi
  done
  return $ok
}

sd_teardown() {
  stop_sd_hosts
  local unmounted=0
  unmount_sd_hosts || unmounted=1
  HOSTS=("${ALL_HOSTS[@]}")
  SSH_HOSTS=(client proxy dev1 dev2)
  teardown
  # the upper dirs go only when nothing is mounted below them any more
  if ((unmounted == 0)) && [[ -d $SD ]] && ! findmnt -rn -o TARGET | grep -q "^$SD/"; then
    rm -rf --one-file-system "$SD"
  elif [[ -d $SD ]]; then
    log "left $SD in place: something is still mounted below it"
  fi
}

# ---------------------------------------------------------------------------------------------
# Waiting for hosts.

# HOST is up: its sshd answers on mgmt, systemd's start-up has finished (running or degraded)
# and nginx answers (dev: the hello server and dnsmasq; proxy: accepts a connection on :80).
# Prints the seconds from the start of the boot until nginx answered.
wait_up_one() {
  local h=$1 end state t0 i ok
  end=$((SECONDS + BOOT_TIMEOUT))
  until leader "$h" >/dev/null; do
    ((SECONDS < end)) || { log "$h: no container running"; return 1; }
    # a container that did not boot ends its supervisor: say why at once instead of timing out
    if ! { [[ -s $SD/$h/supervisor.pid ]] && alive "$(<"$SD/$h/supervisor.pid")"; }; then
      log "$h: its supervisor has ended; the end of $SD/$h/console.log:"
      tail -n 15 "$SD/$h/console.log" 2>/dev/null | sed 's/^/  /' >&2
      return 1
    fi
    sleep 0.1
  done
  until timeout 1 bash -c "exec 3<>/dev/tcp/${MGMT_IP[$h]}/22" 2>/dev/null; do
    ((SECONDS < end)) || { log "$h: sshd on ${MGMT_IP[$h]}:22 does not answer"; return 1; }
    sleep 0.1
  done
  state=$(in_container "$h" timeout "$BOOT_TIMEOUT" systemctl is-system-running --wait 2>/dev/null) || true
  case $state in
    running) ;;
    degraded) log "$h: degraded: $(in_container "$h" systemctl --failed --plain --no-legend | awk '{printf "%s ", $1}')" ;;
    *) log "$h: systemctl is-system-running says '$state'"; return 1 ;;
  esac
  ok=
  while ((SECONDS < end)); do
    if [[ $h == proxy ]]; then
      # a TCP connect to :80, no request: an HTTP request from here would go through the proxy to
      # the upstreams (with proxy_bind $remote_addr transparent, from 127.0.0.1: EINVAL), and
      # nginx would mark them failed for fail_timeout
      in_container "$h" timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/80' 2>/dev/null && ok=1
    else
      [[ $(in_container "$h" curl -s -m 2 "http://${PRIV_IP[$h]}:8080/" 2>/dev/null) == "Hello from $h."* &&
        $(in_container "$h" dig +short +tries=1 +time=1 "@${PRIV_IP[$h]}" "www.$ZONE" A 2>/dev/null) == "${PRIV_IP[$h]}" ]] && ok=1
    fi
    [[ -n $ok ]] && break
    sleep 0.1
  done
  [[ -n $ok ]] || { log "$h: nginx does not answer"; return 1; }
  t0=$(tail -n 1 "$SD/$h/boots")
  printf '%s boot %s: serving %.1fs after boot start\n' "$h" "$(boots "$h")" "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{print a-b}')"
}

wait_up() {
  local h pids=() rc=0 i
  (($#)) || set -- "${SD_HOSTS[@]}"
  for h in "$@"; do
    wait_up_one "$h" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  return $rc
}

# ---------------------------------------------------------------------------------------------
# Commands.

sd_cmd_up() {
  [[ $EUID -eq 0 ]] || die "must run as root"
  ensure_tools
  command -v systemd-nspawn >/dev/null 2>&1 || {
    log "installing systemd-container"
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd-container; } >&2 || die "apt-get install systemd-container failed"
  }
  with_lock || die "another up/down holds $LAB/.lock"
  sd_teardown
  local t0=$SECONDS h
  trap 'rc=$?; set +e; if ((rc != 0)); then log "up failed (exit $rc); tearing down"; sd_teardown; fi' EXIT
  trap 'exit 130' INT TERM
  mkdir -p /var/lib/dsrctl-lab
  exec 8>"$MOUNTPOINTS_LOCK"
  flock -s 8
  HOSTS=("${PLAIN_HOSTS[@]}")
  SSH_HOSTS=(client)
  prepare_files
  build_base_network
  start_hosts
  exec 8>&-
  mkdir -p "$SD"
  for h in "${SD_HOSTS[@]}"; do prepare_sd_host "$h"; done
  start_sd_hosts
  wait_up
  mkdir -p "$(dirname "$INVENTORY")"
  # lab.sh's inventory, for this lab's upstreams only
  inventory_yaml "$LAB" | sed '1s|.*|# Generated by test/lab/systemd-lab.sh: the guide'"'"'s topology with real systemd hosts (nspawn).|' |
    grep -Ev "name: dev([3-9]|[1-9][0-9]+)," >"$INVENTORY.tmp"
  mv "$INVENTORY.tmp" "$INVENTORY"
  trap - EXIT INT TERM
  echo "systemd lab up (prefix $P, state $LAB) in $((SECONDS - t0))s"
  echo "  inventory: $INVENTORY"
  echo "  ssh: ssh -i $LAB/id_ed25519 -o UserKnownHostsFile=$LAB/known_hosts root@${MGMT_IP[proxy]}"
}

sd_cmd_down() {
  [[ $EUID -eq 0 ]] || { log "must run as root"; exit 0; }
  set +e
  with_lock 2>/dev/null || log "could not take $LAB/.lock; tearing down anyway"
  sd_teardown
  if [[ $LAB == /var/lib/dsrctl-lab/* && ! -d $SD ]]; then
    rm -rf --one-file-system "$LAB"
    rmdir /var/lib/dsrctl-lab 2>/dev/null || true
  fi
  if ((${#REMOVED[@]})); then
    echo "systemd lab down (prefix $P): removed"
    printf '  %s\n' "${REMOVED[@]}"
  else
    echo "systemd lab down (prefix $P): nothing to remove, no lab was up"
  fi
  exit 0
}

sd_cmd_status() {
  local h up=0 pid state
  for h in "${PLAIN_HOSTS[@]}"; do
    pid=$(host_pid "$h") && printf '%-7s namespace %-14s pid %s\n' "$h" "$(ns_of "$h")" "$pid" || { printf '%-7s not running\n' "$h"; up=1; }
  done
  for h in "${SD_HOSTS[@]}"; do
    if pid=$(leader "$h"); then
      state=$(in_container "$h" systemctl is-system-running 2>/dev/null) || true
      printf '%-7s container %-14s PID 1 = %s, boot %s, %s, supervisor %s\n' "$h" "$P-$h" "$pid" "$(boots "$h")" "$state" "$(cat "$SD/$h/supervisor.pid" 2>/dev/null)"
    else
      printf '%-7s not running\n' "$h"
      up=1
    fi
  done
  ((up == 0)) && echo "lab is up" || echo "lab is not (fully) up"
  return $up
}

sd_cmd_exec() {
  exec_args "usage: systemd-lab.sh exec HOST -- CMD..." "$@"
  local h=$EXEC_HOST
  set -- "${EXEC_ARGV[@]}"
  is_any_host "$h" || die "unknown host '$h' (hosts: ${ALL_HOSTS[*]})"
  if is_sd_host "$h"; then
    in_container "$h" "$@"
  else
    HOSTS=("${PLAIN_HOSTS[@]}")
    cmd_exec "$h" -- "$@"
  fi
}

sd_cmd_reboot() {
  (($#)) || die "usage: systemd-lab.sh reboot HOST..."
  local h
  declare -A before=()
  for h in "$@"; do is_sd_host "$h" || die "$h cannot reboot (systemd hosts: ${SD_HOSTS[*]})"; done
  for h in "$@"; do
    before[$h]=$(boots "$h")
    in_container "$h" systemctl reboot || die "$h: systemctl reboot failed"
  done
  local end=$((SECONDS + BOOT_TIMEOUT))
  for h in "$@"; do
    while (($(boots "$h") <= before[$h])); do
      ((SECONDS < end)) || die "$h did not reboot within ${BOOT_TIMEOUT}s"
      [[ -s $SD/$h/supervisor.pid ]] && alive "$(<"$SD/$h/supervisor.pid")" || die "$h: its supervisor is gone (see $SD/$h/console.log)"
      sleep 0.1
    done
  done
  wait_up "$@"
}

sd_cmd_snapshot() {
  local h=${1:-}
  is_any_host "$h" || die "usage: systemd-lab.sh snapshot HOST"
  sd_cmd_exec "$h" -- sh -c "$(cat "$sd_here/net-snapshot.sh")"
}

case ${1:-} in
  up) sd_cmd_up ;;
  down) sd_cmd_down ;;
  status) sd_cmd_status ;;
  exec) shift; sd_cmd_exec "$@" ;;
  reboot) shift; sd_cmd_reboot "$@" ;;
  wait-up) shift; wait_up "$@" ;;
  snapshot) shift; sd_cmd_snapshot "$@" ;;
  boots) shift; is_sd_host "${1:-}" || die "usage: systemd-lab.sh boots HOST"; boots "$1" ;;
  __supervise) shift; supervise "$1" ;;
  *) echo "usage: $0 up|down|status|exec HOST -- CMD...|reboot HOST...|wait-up [HOST...]|snapshot HOST|boots HOST" >&2; exit 2 ;;
esac
