#!/usr/bin/env bash
# dsrctl test lab: the NGINX guide's topology in network namespaces on this machine.
#
#   lab.sh up                    build the lab (tears down any previous one first)
#   lab.sh down                  remove everything the lab made (always exits 0)
#   lab.sh status                list the lab's namespaces and processes; exit 0 if up, 1 if not
#   lab.sh exec HOST -- CMD...   run CMD in HOST's net, mount and UTS namespaces
#   lab.sh pids HOST             print HOST's sshd PID (the router's anchor PID for "router")
#
# Environment:
#   DSR_LAB_DIR        state directory (default /var/lib/dsrctl-lab/<prefix>: outside the checkout,
#                      because each lab host mounts its own /root and /tmp, where checkouts live)
#   DSR_LAB_PREFIX     namespace/link name prefix (default dsr, at most 10 characters)
#   DSR_LAB_MODE       mode written to the inventory (default ip-transparency)
#   DSR_LAB_PROTOCOL   service protocol written to the inventory (default http; udp when
#                      DSR_LAB_MODE is dsr-*, the guide's DSR being UDP only). It also picks the
#                      ports and the proxy's managed_config (see inventory_yaml below):
#                        http  80 -> 8080  (nginx hello server), /etc/nginx/conf.d/app.conf
#                        udp   53 -> 53    (dnsmasq),            /etc/nginx/dsrctl/stream.conf
#                        tcp 8081 -> 8080  (nginx hello server), /etc/nginx/dsrctl/stream.conf
#   DSR_LAB_INVENTORY  inventory to write (default <repo>/inventory/lab.yaml)
#   DSR_LAB_DNS        what the upstreams' dnsmasq serves: demo (default; the guide's zone
#                      example.com, www.example.com answered) or authoritative (like a real
#                      authoritative server of another zone: only lab.test is answered, e.g.
#                      www.lab.test; www.example.com and every other name get REFUSED)
#   DSR_LAB_JUMP=1     the upstreams get no mgmt0: their sshd listens on their private address
#                      (172.16.0.1N:22), which only the proxy (and the router) can reach; the
#                      inventory says ssh_host: 172.16.0.1N and ssh: { jump: proxy }.
#   DSR_LAB_SUDO=1     every host gets a non-root user "ops" (key login, /bin/sh, home /tmp) allowed
#                      to sudo without a password; the inventory says user: ops, sudo: true. Each host
#                      bind-mounts its own /etc/passwd, /etc/group, /etc/shadow and /etc/sudoers.d
#                      (copies under <lab-dir>/hosts/<host>/etc), so the machine gets no user.
#                      Installs sudo when missing. /etc/sudoers.d/dsrctl-lab on a host holds the rule.
#   DSR_LAB_STOCK      a proxy as a real host comes (default: none, the demo's conf.d/app.conf):
#                        default-site   Debian's sites-enabled/default (listen 80 default_server)
#                                       stays enabled, no conf.d/app.conf
#                        reverse-proxy  no default site; the user's own reverse proxy on :80 as
#                                       sites-available/app, enabled by a symlink in sites-enabled
#                      Either way the inventory leaves managed_config at its default
#                      (conf.d/dsrctl.conf), and dsrctl must find the server that holds port 80.
#   DSR_LAB_SUDO_PASSWORD  with DSR_LAB_SUDO=1: ops's password (for sudo, and SSH password login,
#                      which sshd then allows for ops)
#   DSR_LAB_UPSTREAMS  number of upstreams dev1..devN (default 4, at most 200): devI has private
#                      address 172.16.0.(10+I) and mgmt 10.211.<octet>.(10+I). `up` records N in the
#                      state dir; down, status, exec and pids use it (and down removes every dev*
#                      namespace of the prefix whatever N says). Hosts are set up in parallel.
#
# Topology (the guide's addresses):
#   public  192.168.99.0/24  bridge br-pub  in <prefix>-sw: client .1, proxy .10, router .254  (pub0)
#   private 172.16.0.0/24    bridge br-priv in <prefix>-sw: proxy .1, dev1-N .11-.(10+N), router .254 (priv0)
#   mgmt    10.211.0.0/24    bridge <prefix>-mgmt in the ROOT namespace (10.211.0.1):
#                            client .2, proxy .10, dev1-N .11-.(10+N) (mgmt0); the router has none.
# (N = DSR_LAB_UPSTREAMS, 4 by default: the guide's dev1-4 .11-.14.)
# Services: nginx on the proxy (conf.d/app.conf: http :80 -> upstreams :8080) and on dev1-N
# (conf.d/hello.conf: :8080 says who connected from where); dnsmasq on dev1-N, UDP and TCP 53 on
# the private address only, answering www.example.com and ns1.example.com A with the host's own
# address (the guide's DSR demo zone); sshd on mgmt0 everywhere but the router.
# test/lab/dsr-by-hand.sh applies and checks the guide's Method 2 by hand in an up lab.
# The lab's only trace in the root namespace is that bridge (with its connected route) and the
# bridge ports <prefix>-m-<cl|px|d1..dN>; IPv6 is disabled on them so no fe80::/64 route appears.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
P=${DSR_LAB_PREFIX:-dsr}
LAB=$(realpath -m "${DSR_LAB_DIR:-/var/lib/dsrctl-lab/$P}")
MODE=${DSR_LAB_MODE:-ip-transparency}
DNS=${DSR_LAB_DNS:-demo}
case $DNS in demo) ZONE=example.com ;; authoritative) ZONE=lab.test ;; *) echo "DSR_LAB_DNS must be demo or authoritative" >&2; exit 2 ;; esac
case $MODE in dsr-*) PROTOCOL=${DSR_LAB_PROTOCOL:-udp} ;; *) PROTOCOL=${DSR_LAB_PROTOCOL:-http} ;; esac
INVENTORY=${DSR_LAB_INVENTORY:-$repo/inventory/lab.yaml}

# The upstream count: DSR_LAB_UPSTREAMS for `up`; otherwise what the last `up` of this lab
# recorded (so `lab.sh exec dev30 -- ...` works without repeating it), else 4.
if [[ -n ${DSR_LAB_UPSTREAMS:-} ]]; then
  N=$DSR_LAB_UPSTREAMS
elif [[ ${1:-} != up && -s $LAB/upstreams ]]; then
  N=$(<"$LAB/upstreams")
else
  N=4
fi
[[ $N =~ ^[0-9]{1,3}$ && $N -ge 1 && $N -le 200 ]] || { echo "DSR_LAB_UPSTREAMS must be 1-200 (got '$N')" >&2; exit 2; }
DEVS=()
for ((i = 1; i <= N; i++)); do DEVS+=("dev$i"); done
HOSTS=(client proxy router "${DEVS[@]}") # every host namespace
SSH_HOSTS=(client proxy "${DEVS[@]}")    # hosts with mgmt0 + sshd
SW=$P-sw
MGMT_BR=$P-mgmt
# DSR_LAB_MGMT_OCTET: third octet of the management net (10.211.N.0/24), so labs with different
# prefixes can run side by side (everything else lives inside the lab's own namespaces).
M=${DSR_LAB_MGMT_OCTET:-0}
[[ $M =~ ^[0-9]{1,3}$ && $M -le 255 ]] || { echo "DSR_LAB_MGMT_OCTET must be 0-255" >&2; exit 2; }
MGMT_GW=10.211.$M.1

declare -A MGMT_IP=([client]=10.211.$M.2 [proxy]=10.211.$M.10)
declare -A PUB_IP=([client]=192.168.99.1 [proxy]=192.168.99.10 [router]=192.168.99.254)
declare -A PRIV_IP=([proxy]=172.16.0.1 [router]=172.16.0.254)
declare -A CODE=([client]=cl [proxy]=px)
for ((i = 1; i <= N; i++)); do
  MGMT_IP[dev$i]=10.211.$M.$((10 + i))
  PRIV_IP[dev$i]=172.16.0.$((10 + i))
  CODE[dev$i]=d$i
done
# SSH_IP: where each host's sshd listens (and what the inventory's ssh_host says).
declare -A SSH_IP=()
for h in "${!MGMT_IP[@]}"; do SSH_IP[$h]=${MGMT_IP[$h]}; done
JUMP=${DSR_LAB_JUMP:-}
SUDO=${DSR_LAB_SUDO:-}
SUDO_PASSWORD=${DSR_LAB_SUDO_PASSWORD:-}
STOCK=${DSR_LAB_STOCK:-}
case $STOCK in '' | default-site | reverse-proxy) ;; *) echo "DSR_LAB_STOCK must be default-site or reverse-proxy" >&2; exit 2 ;; esac
if [[ -n $JUMP ]]; then
  for h in "${DEVS[@]}"; do SSH_IP[$h]=${PRIV_IP[$h]}; unset "MGMT_IP[$h]"; done
fi
LAB_USER=ops

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

[[ $P =~ ^[A-Za-z0-9_]([A-Za-z0-9_-]{0,9})$ ]] || die "DSR_LAB_PREFIX must be 1-10 letters, digits, '_' or '-' (interface names are at most 15 characters)"
[[ -n $JUMP ]] || ((${#P} + 4 + ${#N} <= 15)) || die "DSR_LAB_PREFIX '$P' is too long for $N upstreams: the management link $P-m-d$N would exceed 15 characters"
[[ $LAB =~ ^[A-Za-z0-9_./@+-]+$ ]] || die "DSR_LAB_DIR must not contain spaces or special characters: $LAB"
# Each host bind-mounts its own copy over these, so inside a host a lab dir below them would vanish.
for d in /tmp /run /root /etc/nginx /var/log/nginx /var/lib/nginx /var/lib/dsrctl; do
  [[ $LAB == "$d" || $LAB == "$d"/* ]] && die "DSR_LAB_DIR must not be below $d (each lab host mounts its own $d): $LAB"
done

ns_of() { echo "$P-$1"; }
root_veth() { echo "$P-m-${CODE[$1]}"; }
ns_exists() { [[ -e /run/netns/$1 ]]; }
is_host() { local h; for h in "${HOSTS[@]}"; do [[ $h == "$1" ]] && return 0; done; return 1; }

# A PID is alive when it exists and is not a zombie (PID 1 here reaps orphans only lazily).
alive() {
  local st
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  # builtins only: teardown asks this of hundreds of PIDs, many times
  { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
  st=${st##*) }
  st=${st%% *}
  [[ -n $st && $st != Z ]]
}

# The PID that anchors HOST's namespaces: its sshd (the router: its anchor process).
host_pid() {
  local f=$LAB/pids/$1.sshd pid
  [[ $1 == router ]] && f=$LAB/pids/router.anchor
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  alive "$pid" || return 1
  echo "$pid"
}

# ---------------------------------------------------------------------------------------------
# Prerequisites: install what is missing (apt only).
ensure_tools() {
  local -A need=(
    [ip]=iproute2 [sshd]=openssh-server [ssh]=openssh-client [ssh-keygen]=openssh-client
    [nginx]=nginx [iptables]=iptables [nft]=nftables [dnsmasq]=dnsmasq-base [dig]=dnsutils
    [ping]=iputils-ping [curl]=curl [tcpdump]=tcpdump [nsenter]=util-linux [unshare]=util-linux
    [setsid]=util-linux [flock]=util-linux
  )
  local -A pkgs=()
  local c
  for c in "${!need[@]}"; do
    command -v "$c" >/dev/null 2>&1 || [[ -x /usr/sbin/$c ]] || pkgs[${need[$c]}]=1
  done
  [[ -e /usr/lib/nginx/modules/ngx_stream_module.so ]] || pkgs[libnginx-mod-stream]=1
  if [[ -n $SUDO ]]; then
    [[ -x /usr/bin/sudo ]] || pkgs[sudo]=1
    [[ -z $SUDO_PASSWORD ]] || command -v openssl >/dev/null 2>&1 || pkgs[openssl]=1
  fi
  ((${#pkgs[@]})) || return 0
  log "installing ${!pkgs[*]}"
  # Keep the packages' services (nginx, ssh) from starting on the machine itself.
  local prc=/usr/sbin/policy-rc.d made_prc=
  if [[ ! -e $prc ]]; then printf '#!/bin/sh\nexit 101\n' >"$prc" && chmod +x "$prc" && made_prc=1; fi
  local rc=0
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${!pkgs[@]}"; } >&2 || rc=$?
  [[ -n $made_prc ]] && rm -f "$prc"
  ((rc == 0)) || die "apt-get install ${!pkgs[*]} failed"
}

# ---------------------------------------------------------------------------------------------
# Teardown: processes by PID, then root-side links, then namespaces, then state.
REMOVED=()
# The lab's namespaces as they exist now, whatever N this invocation was given (a lab built with
# more upstreams is removed whole).
# In the topology's order (client proxy router dev1..devN sw), whatever order `ip netns list` has:
# `lab down` prints them.
lab_namespaces() {
  local ns h
  while read -r ns _; do
    [[ $ns =~ ^$P-(client|proxy|router|sw|dev([0-9]+))$ ]] || continue
    h=${BASH_REMATCH[1]}
    case $h in client) echo "0 $ns" ;; proxy) echo "1 $ns" ;; router) echo "2 $ns" ;; sw) echo "100000 $ns" ;; *) echo "$((3 + BASH_REMATCH[2])) $ns" ;; esac
  done < <(ip netns list 2>/dev/null) | sort -n | cut -d' ' -f2
  return 0
}
# The PIDs of every process in the namespaces named (/run/netns/NAME): one pass over /proc for
# all of them (`ip netns pids` walks /proc once per namespace: seconds for a 100-upstream lab).
pids_in_namespaces() {
  (($#)) || return 0
  local inodes
  inodes=$(cd /run/netns && stat -L -c %i "$@" 2>/dev/null | tr '\n' ' ')
  [[ -n $inodes ]] || return 0
  stat -L -c '%i %n' /proc/[0-9]*/ns/net 2>/dev/null |
    awk -v want=" $inodes" 'index(want, " " $1 " ") { split($2, p, "/"); print p[3] }'
}

teardown() {
  local pids=() ns h f pid cmd nsgone=() nss=()
  local -A seen=()
  mapfile -t nss < <(lab_namespaces)

  mapfile -t pids < <(pids_in_namespaces "${nss[@]}")
  for pid in "${pids[@]}"; do seen[$pid]=1; done
  # Daemons whose namespace file is already gone (a half-finished earlier teardown): only
  # PIDs from our pid files that still look like our processes, outside the root netns.
  local rootnet
  rootnet=$(readlink /proc/1/ns/net 2>/dev/null || echo none)
  for f in "$LAB"/pids/*.sshd "$LAB"/pids/*.nginx "$LAB"/pids/*.anchor "$LAB"/pids/*.dns; do
    [[ -s $f ]] || continue
    pid=$(<"$f")
    [[ -z ${seen[$pid]:-} ]] || continue
    alive "$pid" || continue
    [[ $(readlink "/proc/$pid/ns/net" 2>/dev/null) != "$rootnet" ]] || continue
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
    case $cmd in
      "sshd: /usr/sbin/sshd -D -f $LAB/"* | "/usr/sbin/sshd -D -f $LAB/"* | "nginx: master"* | lab-router-anchor* | dnsmasq*)
        # ... and its children (nginx workers, sshd sessions), by parent PID.
        pids+=("$pid" $(ps -o pid= --ppid "$pid" 2>/dev/null || true)) ;;
    esac
  done

  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    local i left
    for i in $(seq 30); do
      left=()
      for pid in "${pids[@]}"; do alive "$pid" && left+=("$pid"); done
      ((${#left[@]})) || break
      sleep 0.1
    done
    # Anything still there (or started meanwhile in the namespaces) gets SIGKILL.
    while read -r pid; do [[ -n $pid ]] && left+=("$pid"); done < <(pids_in_namespaces "${nss[@]}")
    if ((${#left[@]})); then
      kill -KILL "${left[@]}" 2>/dev/null || true
      for i in $(seq 20); do
        local any=
        for pid in "${left[@]}"; do alive "$pid" && any=1; done
        [[ -z $any ]] && break
        sleep 0.1
      done
    fi
  fi

  ((${#pids[@]})) && REMOVED+=("$(printf '%s\n' "${pids[@]}" | sort -u | wc -l) processes (sshd, nginx, dns servers, sessions)")
  # the root ends of the management links, found by name (deleting one deletes its peer too)
  # (one `ip -batch` for each kind: a 100-upstream lab has over 200 of them)
  local l links=()
  while read -r l; do
    [[ $l =~ ^$P-m-(cl|px|d[0-9]+)$ ]] && links+=("$l")
  done < <(ip -o link show 2>/dev/null | awk -F': ' '{sub(/@.*/, "", $2); print $2}')
  ((${#links[@]})) && printf 'link del %s\n' "${links[@]}" | ip -force -batch - 2>/dev/null || true
  ip link del "$MGMT_BR" 2>/dev/null && REMOVED+=("bridge $MGMT_BR ($MGMT_GW/24)")
  ((${#links[@]})) && REMOVED+=("${#links[@]} management veth links ($P-m-*)")
  ((${#nss[@]})) && printf 'netns del %s\n' "${nss[@]}" | ip -force -batch - 2>/dev/null || true
  for ns in "${nss[@]}"; do ns_exists "$ns" || nsgone+=("$ns"); done
  if ((${#nsgone[@]} > 12)); then
    REMOVED+=("${#nsgone[@]} network namespaces $P-{client,proxy,router,sw,dev*}")
  elif ((${#nsgone[@]})); then
    REMOVED+=("network namespaces ${nsgone[*]}")
  fi
  rm -rf "$LAB/hosts" "$LAB/pids" "$LAB/known_hosts" "$LAB/authorized_keys" "$LAB/upstreams"
  remove_mountpoints
}

# The machine's mount points made by prepare_files go once no lab is left: a lab still up has
# them mounted over in its hosts' mount namespaces, and removing them would detach its mounts.
# A lab being built holds MOUNTPOINTS_LOCK shared until its hosts have mounted, so a teardown
# elsewhere never removes a mount point between its check and its mount.
MOUNTPOINTS_MADE=/var/lib/dsrctl-lab/.mountpoints-made
MOUNTPOINTS_LOCK=/var/lib/dsrctl-lab/.mountpoints.lock
remove_mountpoints() {
  [[ -s $MOUNTPOINTS_MADE ]] || return 0
  (
    flock -x -n 7 || exit 0
    for d in /var/lib/dsrctl-lab/*/pids; do [[ -d $d ]] && exit 0; done
    while read -r mp; do [[ -n $mp ]] && rmdir "$mp" 2>/dev/null; done <"$MOUNTPOINTS_MADE"
    rm -f "$MOUNTPOINTS_MADE"
  ) 7>"$MOUNTPOINTS_LOCK"
}

# ---------------------------------------------------------------------------------------------
# Build.
prepare_files() {
  mkdir -p "$LAB/hosts" "$LAB/pids"
  chmod 700 "$LAB"
  if [[ ! -s $LAB/id_ed25519 || ! -s $LAB/id_ed25519.pub ]]; then
    rm -f "$LAB/id_ed25519" "$LAB/id_ed25519.pub"
    ssh-keygen -q -t ed25519 -N '' -C dsrctl-lab -f "$LAB/id_ed25519"
  fi
  cp "$LAB/id_ed25519.pub" "$LAB/authorized_keys"
  chmod 600 "$LAB/authorized_keys"

  # Mount points on the machine for the per-host bind mounts (empty; nothing is mounted there).
  # The ones made here are listed so that the last lab's teardown removes them again.
  local mp
  mkdir -p /var/lib/dsrctl-lab
  for mp in /var/lib/dsrctl /var/log/nginx /var/lib/nginx; do
    [[ -d $mp ]] && continue
    mkdir -p "$mp" && echo "$mp" >>"$MOUNTPOINTS_MADE"
  done

  # every host's files at once (100 upstreams: cp and ssh-keygen 100 times)
  local h pid pids=() rc=0
  for h in "${HOSTS[@]}"; do
    prepare_host "$h" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  ((rc == 0)) || die "preparing the hosts' files under $LAB/hosts failed"
  for h in "${SSH_HOSTS[@]}"; do
    echo "${SSH_IP[$h]} $(cut -d' ' -f1,2 "$LAB/hosts/$h/ssh/ssh_host_ed25519_key.pub")"
  done >"$LAB/known_hosts"
}

# One host's files under $LAB/hosts/<host>: its /etc/nginx, sshd config and host key, dnsmasq.conf.
prepare_host() {
  local h=$1 hd=$LAB/hosts/$1 d
  mkdir -p "$hd"
  [[ $h == router ]] && return 0
  mkdir -p "$hd/etc" "$hd/var/log/nginx" "$hd/var/lib/nginx" "$hd/var/lib/dsrctl" "$hd/tmp" "$hd/ssh"
  chmod 1777 "$hd/tmp"
  cp -a /etc/nginx "$hd/etc/nginx"
  # Debian's default site: kept on a stock proxy only (the copy's symlink points into the
  # host's own /etc/nginx, which is mounted over the machine's)
  [[ $h == proxy && $STOCK == default-site ]] || rm -f "$hd/etc/nginx/sites-enabled/default"
  case $h in
    dev*)
      cat >"$hd/etc/nginx/conf.d/hello.conf" <<'EOF'
server {
    listen 8080;
    location / {
        return 200 "Hello from $hostname. You connected from $remote_addr:$remote_port to $server_addr:$server_port\n";
    }
}
EOF
      ;;
    proxy)
      if [[ $STOCK == reverse-proxy ]]; then
        cat >"$hd/etc/nginx/sites-available/app" <<'EOF'
# The user's own reverse proxy, enabled the Debian way (a symlink in sites-enabled).
server {
    listen 80;
    server_name app.example.com;
    location / {
        proxy_pass http://127.0.0.1:9000;
    }
}
EOF
        ln -s /etc/nginx/sites-available/app "$hd/etc/nginx/sites-enabled/app"
      fi
      [[ -n $STOCK ]] || {
        echo "# The guide's standard reverse proxy (before IP Transparency)."
        echo 'upstream http_upstreams {'
        for d in "${DEVS[@]}"; do echo "    server ${PRIV_IP[$d]}:8080;"; done
        cat <<'EOF'
}

server {
    listen 80;
    location / {
        proxy_pass http://http_upstreams;
    }
}
EOF
      } >"$hd/etc/nginx/conf.d/app.conf"
      ;;
  esac
  # The guide's DNS upstreams: each dev answers www.example.com and ns1.example.com with its own
  # address (the guide's zone file), on UDP and TCP 53 of its private address only. dnsmasq
  # reads nothing from /etc (-C replaces /etc/dnsmasq.conf; no-resolv, no-hosts); other
  # example.com names get NXDOMAIN, anything else REFUSED. host-init.sh starts it.
  # DSR_LAB_DNS=authoritative: the zone is lab.test instead, so www.example.com gets REFUSED.
  if [[ $h == dev* ]]; then
    cat >"$hd/dnsmasq.conf" <<EOF
# lab host $h: DNS upstream of the guide's DSR demo ($DNS: answers $ZONE only)
no-resolv
no-hosts
port=53
listen-address=${PRIV_IP[$h]}
bind-interfaces
user=root
pid-file=/run/dnsmasq.pid
log-facility=$hd/dnsmasq.log
log-queries
local=/$ZONE/
host-record=www.$ZONE,${PRIV_IP[$h]}
host-record=ns1.$ZONE,${PRIV_IP[$h]}
EOF
  fi

  ssh-keygen -q -t ed25519 -N '' -C "lab-$h" -f "$hd/ssh/ssh_host_ed25519_key"
  cat >"$hd/ssh/sshd_config" <<EOF
# lab host $h
ListenAddress ${SSH_IP[$h]}:22
HostKey $hd/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AuthorizedKeysFile $LAB/authorized_keys
MaxStartups 50
MaxSessions 50
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
LogLevel INFO
EOF
  # sshd reads authorized_keys as the user: ops cannot enter the (0700) lab dir, so its copy
  # lives in the host's private /run (written by setup_users).
  if [[ -n $SUDO ]]; then
    printf 'Match User %s\n    AuthorizedKeysFile /run/dsrctl-lab/authorized_keys\n' "$LAB_USER" >>"$hd/ssh/sshd_config"
    [[ -z $SUDO_PASSWORD ]] || printf '    PasswordAuthentication yes\n' >>"$hd/ssh/sshd_config"
  fi
}

# DSR_LAB_SUDO: the user ops on every host, in per-host copies of the account files (and of
# /etc/hosts, naming the host) bind-mounted over the machine's inside the host's mount namespace
# (nothing changes on the machine), and a per-host /etc/sudoers.d with a NOPASSWD rule for ops.
setup_users() {
  local h hd pid uid hash
  uid=4200
  while getent passwd "$uid" >/dev/null || getent group "$uid" >/dev/null; do uid=$((uid + 1)); done
  hash='*'
  [[ -z $SUDO_PASSWORD ]] || hash=$(printf '%s\n' "$SUDO_PASSWORD" | openssl passwd -6 -stdin)
  for h in "${SSH_HOSTS[@]}"; do
    hd=$LAB/hosts/$h
    pid=$(host_pid "$h") || die "host $h is not running"
    mkdir -p "$hd/etc/sudoers.d"
    grep -v "^$LAB_USER:" /etc/passwd >"$hd/etc/passwd"
    echo "$LAB_USER:x:$uid:$uid:dsrctl lab:/tmp:/bin/sh" >>"$hd/etc/passwd"
    grep -v "^$LAB_USER:" /etc/group >"$hd/etc/group"
    echo "$LAB_USER:x:$uid:" >>"$hd/etc/group"
    grep -v "^$LAB_USER:" /etc/shadow >"$hd/etc/shadow"
    echo "$LAB_USER:$hash:19000:0:99999:7:::" >>"$hd/etc/shadow"
    chmod 644 "$hd/etc/passwd" "$hd/etc/group"
    chmod 640 "$hd/etc/shadow"
    chgrp shadow "$hd/etc/shadow" 2>/dev/null || true
    # sudo looks its host name up: without this, each sudo waits for DNS (seconds) and warns
    { cat /etc/hosts; echo "127.0.1.1 $h"; } >"$hd/etc/hosts"
    cp -a /etc/sudoers.d/. "$hd/etc/sudoers.d/" 2>/dev/null || true
    echo "$LAB_USER ALL=(ALL) NOPASSWD: ALL" >"$hd/etc/sudoers.d/dsrctl-lab"
    chmod 750 "$hd/etc/sudoers.d"
    chmod 440 "$hd/etc/sudoers.d/dsrctl-lab"
    # shellcheck disable=SC2016
    nsenter -t "$pid" -m -- sh -ec '
      for f in passwd group shadow hosts; do mount --bind "$1/etc/$f" "/etc/$f"; done
      mount --bind "$1/etc/sudoers.d" /etc/sudoers.d
      mkdir -p /run/dsrctl-lab
      cp "$2" /run/dsrctl-lab/authorized_keys
      chmod 755 /run/dsrctl-lab
      chmod 644 /run/dsrctl-lab/authorized_keys
    ' sh "$hd" "$LAB/authorized_keys"
  done
}

# veth pair: $1 in namespace $2 (name $3), peer in the switch namespace on bridge $4 (name $5).
sw_link() {
  local ns=$1 ifname=$2 br=$3 swname=$4
  ip link add "$swname" netns "$SW" type veth peer name "$ifname" netns "$ns"
  ip -n "$SW" link set "$swname" master "$br" up
}

build_network() {
  local h pid pids=() rc=0
  # one process makes every namespace (a 100-upstream lab has over 100)
  for h in "${HOSTS[@]}" sw; do echo "netns add $(ns_of "$h")"; done | ip -batch -
  ip -n "$SW" link set lo up
  # The switch namespace is plumbing, not a host: no IPv6 chatter from its ports.
  ip netns exec "$SW" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
  ip -n "$SW" link add br-pub type bridge
  ip -n "$SW" link add br-priv type bridge
  ip -n "$SW" link set br-pub up
  ip -n "$SW" link set br-priv up

  # Management bridge in the root namespace: its connected route is the lab's only route there.
  ip link add "$MGMT_BR" type bridge
  [[ -e /proc/sys/net/ipv6/conf/$MGMT_BR ]] && echo 1 >"/proc/sys/net/ipv6/conf/$MGMT_BR/disable_ipv6"
  ip addr add "$MGMT_GW/24" dev "$MGMT_BR"
  ip link set "$MGMT_BR" up

  for h in "${HOSTS[@]}"; do
    link_host "$h" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  ((rc == 0)) || die "connecting the hosts failed"
  ip netns exec "$(ns_of router)" sysctl -qw net.ipv4.ip_forward=1
}

# One host's links (to the switch's bridges and the management bridge), addresses and default route.
link_host() {
  local h=$1 ns rv
  ns=$(ns_of "$h")
  ip -n "$ns" link set lo up
  # No duplicate address detection on the host's links: their fe80:: addresses (and the local
  # routes for them) exist at once instead of 1-2 s after `up`, so a snapshot taken right
  # after `up` equals one taken later. (Set before the links exist: new links take the default.)
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 2>/dev/null || true
  if [[ -n ${PUB_IP[$h]:-} ]]; then
    sw_link "$ns" pub0 br-pub "$h-pub"
    ip -n "$ns" addr add "${PUB_IP[$h]}/24" dev pub0
    ip -n "$ns" link set pub0 up
  fi
  if [[ -n ${PRIV_IP[$h]:-} ]]; then
    sw_link "$ns" priv0 br-priv "$h-priv"
    ip -n "$ns" addr add "${PRIV_IP[$h]}/24" dev priv0
    ip -n "$ns" link set priv0 up
  fi
  if [[ -n ${MGMT_IP[$h]:-} ]]; then
    rv=$(root_veth "$h")
    ip link add "$rv" type veth peer name mgmt0 netns "$ns"
    [[ -e /proc/sys/net/ipv6/conf/$rv ]] && echo 1 >"/proc/sys/net/ipv6/conf/$rv/disable_ipv6"
    ip link set "$rv" master "$MGMT_BR" up
    ip -n "$ns" addr add "${MGMT_IP[$h]}/24" dev mgmt0
    ip -n "$ns" link set mgmt0 up
  fi
  case $h in
    dev*) ip -n "$ns" route add default via 172.16.0.254 ;;
    client | proxy) ip -n "$ns" route add default via 192.168.99.254 ;;
  esac
}

start_hosts() {
  local h pids=() rc=0
  for h in "${HOSTS[@]}"; do
    setsid -w ip netns exec "$(ns_of "$h")" unshare --mount --uts --propagation private -- \
      bash "$here/host-init.sh" "$h" "$LAB" </dev/null >"$LAB/hosts/$h/init.log" 2>&1 9>&- 8>&- &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { rc=1; log "host ${HOSTS[$i]} failed to start:"; sed 's/^/  /' "$LAB/hosts/${HOSTS[$i]}/init.log" >&2; }
  done
  return $rc
}

# Wait until every sshd accepts a TCP connection and every nginx answers: every host at once.
wait_ready() {
  local h pid pids=() rc=0
  for h in "${SSH_HOSTS[@]}"; do
    wait_host "$h" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  ((rc == 0)) || return 1
  wait_client
}

# One host: its sshd accepts connections; an upstream's nginx and dnsmasq answer.
wait_host() {
  local h=$1 i ok out from=()
  # DSR_LAB_JUMP: the upstreams' sshd is reachable from the proxy only
  [[ -n ${MGMT_IP[$h]:-} ]] || from=(ip netns exec "$(ns_of proxy)")
  for i in $(seq 100); do
    if "${from[@]}" timeout 1 bash -c "exec 3<>/dev/tcp/${SSH_IP[$h]}/22" 2>/dev/null; then ok=1; break; fi
    sleep 0.05
  done
  [[ -n $ok ]] || { log "sshd on $h (${SSH_IP[$h]}:22) does not accept connections"; sed 's/^/  /' "$LAB/hosts/$h/ssh/sshd.log" >&2 2>/dev/null || true; return 1; }
  [[ $h == dev* ]] || return 0
  ok=
  for i in $(seq 50); do
    out=$(ip netns exec "$(ns_of "$h")" curl -s -m 2 "http://${PRIV_IP[$h]}:8080/" 2>/dev/null) || true
    if [[ $out == "Hello from $h."* ]]; then ok=1; break; fi
    sleep 0.05
  done
  [[ -n $ok ]] || { log "nginx on $h does not answer on ${PRIV_IP[$h]}:8080 (got: ${out:-nothing})"; return 1; }
  ok=
  for i in $(seq 20); do
    out=$(ip netns exec "$(ns_of proxy)" dig +short +tries=1 +time=1 "@${PRIV_IP[$h]}" "www.$ZONE" A 2>/dev/null) || true
    if [[ $out == "${PRIV_IP[$h]}" ]]; then ok=1; break; fi
    sleep 0.05
  done
  [[ -n $ok ]] || { log "dnsmasq on $h does not answer www.$ZONE on ${PRIV_IP[$h]}:53 (got: ${out:-nothing})"; sed 's/^/  /' "$LAB/hosts/$h/dnsmasq.log" >&2 2>/dev/null || true; return 1; }
}

# The client reaches the upstreams through the proxy.
wait_client() {
  local i ok= out
  local want="Hello from dev*You connected from 172.16.0.1:*"
  # a stock proxy answers with its own site: Debian's welcome page, or the user's proxy's 502
  case $STOCK in default-site) want="*Welcome to nginx!*" ;; reverse-proxy) want="*502 Bad Gateway*" ;; esac
  for i in $(seq 50); do
    out=$(ip netns exec "$(ns_of client)" curl -s -m 2 "http://192.168.99.10/" 2>/dev/null) || true
    # shellcheck disable=SC2053 # $want is a pattern
    if [[ $out == $want ]]; then ok=1; break; fi
    sleep 0.05
  done
  [[ -n $ok ]] || { log "nginx on the proxy does not answer the client on 192.168.99.10:80 (got: ${out:-nothing})"; return 1; }
}

inventory_yaml() { # $1: lab dir as written into the inventory
  local dir=$1 h n service managed
  case $PROTOCOL in
    udp)
      service="  # udp: the guide's DSR demo. dnsmasq on each upstream answers www.$ZONE A with
  # its own address on :53$([[ $DNS == demo ]] || printf ' (and REFUSED for every name outside %s)' "$ZONE"); check with: dig +short @${PUB_IP[proxy]} www.$ZONE
  protocol: udp
  listen_port: 53
  upstream_port: 53"
      ;;
    tcp)
      service="  # tcp: the upstreams' nginx hello server (:8080) proxied as plain TCP on :8081 (the
  # proxy's :80 is taken by its http server in conf.d/app.conf); check with:
  # curl http://${PUB_IP[proxy]}:8081/  (the answer names the source address the upstream saw).
  # The upstreams' dnsmasq also answers DNS over TCP on :53 (dig +tcp).
  protocol: tcp
  listen_port: 8081
  upstream_port: 8080"
      ;;
    *)
      service="  protocol: $PROTOCOL
  listen_port: 80
  upstream_port: 8080"
      ;;
  esac
  case $PROTOCOL in
    udp | tcp)
      managed="  # The proxy's conf.d/app.conf (http :80 -> upstreams :8080) stays as it is. A stream server
  # cannot live in conf.d (Debian's nginx.conf includes conf.d inside http {}), so the managed
  # file is a new one, included from a top-level stream {} block in nginx.conf.
  managed_config: /etc/nginx/dsrctl/stream.conf"
      ;;
    *) [[ -n $STOCK ]] && managed="  # stock proxy ($STOCK): dsrctl's own file, the default managed_config" || managed="  managed_config: /etc/nginx/conf.d/app.conf" ;;
  esac
  cat <<EOF
# Generated by test/lab/lab.sh: the guide's topology in network namespaces on this machine.
mode: $MODE
service:
$service
ssh:
  user: $([[ -n $SUDO ]] && echo "$LAB_USER" || echo root)
  port: 22
  private_key: $dir/id_ed25519
  known_hosts: $dir/known_hosts$([[ -z $SUDO ]] || printf '\n  sudo: true')$([[ -z $JUMP ]] || printf '\n  # the upstreams have no address the agent can reach: through the proxy\n  jump: proxy')
proxy:
  ssh_host: ${MGMT_IP[proxy]}
  public_ip: ${PUB_IP[proxy]}
  public_interface: pub0
  private_ip: ${PRIV_IP[proxy]}
  private_interface: priv0
  masquerade: false
$managed
upstreams:
EOF
  for h in "${DEVS[@]}"; do
    echo "  - { name: $h, ssh_host: ${SSH_IP[$h]}, ip: ${PRIV_IP[$h]}, interface: priv0 }"
  done
  cat <<EOF
verify:
  ping_targets: []
  probe:
    ssh_host: ${MGMT_IP[client]}
    expect_source: ${PUB_IP[client]}
EOF
}

summary() {
  local h
  echo "lab up (prefix $P, state $LAB)"
  printf '  %-7s %-14s %-15s %-14s %s\n' host mgmt public private 'pids (sshd/nginx/dns)'
  for h in "${HOSTS[@]}"; do
    printf '  %-7s %-14s %-15s %-14s %s\n' "$h" "${MGMT_IP[$h]:--}" "${PUB_IP[$h]:--}" "${PRIV_IP[$h]:--}" \
      "$(cat "$LAB/pids/$h.sshd" 2>/dev/null || cat "$LAB/pids/$h.anchor" 2>/dev/null || echo -)/$(cat "$LAB/pids/$h.nginx" 2>/dev/null || echo -)/$(cat "$LAB/pids/$h.dns" 2>/dev/null || echo -)"
  done
  echo "  inventory: $INVENTORY"
  echo "  ssh key: $LAB/id_ed25519   known_hosts: $LAB/known_hosts (the wizard's answers for this lab)"
  echo "  ssh: ssh -i $LAB/id_ed25519 -o UserKnownHostsFile=$LAB/known_hosts root@${MGMT_IP[dev1]:-${SSH_IP[proxy]}}"
}

with_lock() { # serialises up/down; the daemons never inherit fd 9
  mkdir -p "$LAB"
  exec 9>"$LAB/.lock"
  flock -w 120 9
}

cmd_up() {
  [[ $EUID -eq 0 ]] || die "must run as root"
  ensure_tools
  with_lock || die "another lab.sh up/down holds $LAB/.lock"
  teardown
  local t0=$SECONDS
  trap 'rc=$?; set +e; if ((rc != 0)); then log "up failed (exit $rc); tearing down"; teardown; fi' EXIT
  trap 'exit 130' INT TERM
  mkdir -p /var/lib/dsrctl-lab
  exec 8>"$MOUNTPOINTS_LOCK"
  flock -s 8
  prepare_files
  build_network
  start_hosts
  exec 8>&-
  [[ -z $SUDO ]] || setup_users
  wait_ready
  echo "$N" >"$LAB/upstreams"
  mkdir -p "$(dirname "$INVENTORY")"
  inventory_yaml "$LAB" >"$INVENTORY.tmp" && mv "$INVENTORY.tmp" "$INVENTORY"
  trap - EXIT INT TERM
  summary
  echo "  took $((SECONDS - t0))s"
}

cmd_down() {
  [[ $EUID -eq 0 ]] || { log "must run as root"; exit 0; }
  set +e
  local had_state=
  [[ -d $LAB ]] && had_state=1 # before with_lock makes it for its lock file
  with_lock 2>/dev/null || log "could not take $LAB/.lock; tearing down anyway"
  teardown
  # a lab in the default place leaves nothing behind (its key is made again by the next up)
  if [[ $LAB == /var/lib/dsrctl-lab/* ]]; then
    rm -rf "$LAB" && [[ -n $had_state ]] && REMOVED+=("$LAB (key, known_hosts, inventory, host files)")
    rmdir /var/lib/dsrctl-lab 2>/dev/null || true
  fi
  if ((${#REMOVED[@]})); then
    echo "lab down (prefix $P): removed"
    printf '  %s\n' "${REMOVED[@]}"
  else
    echo "lab down (prefix $P): nothing to remove, no lab was up"
  fi
  exit 0
}

cmd_status() {
  local h ns up=0 pid nx dn
  for h in "${HOSTS[@]}" sw; do
    ns=$(ns_of "$h")
    if ! ns_exists "$ns"; then printf '%-12s missing\n' "$ns"; up=1; continue; fi
    [[ $h == sw ]] && { printf '%-12s present (bridges br-pub br-priv)\n' "$ns"; continue; }
    pid=$(host_pid "$h") || { printf '%-12s present, %s not running\n' "$ns" "$([[ $h == router ]] && echo anchor || echo sshd)"; up=1; continue; }
    nx=-
    if [[ -s $LAB/pids/$h.nginx ]]; then
      nx=$(<"$LAB/pids/$h.nginx")
      alive "$nx" || { nx="$nx(dead)"; up=1; }
    fi
    dn=-
    if [[ -s $LAB/pids/$h.dns ]]; then
      dn=$(<"$LAB/pids/$h.dns")
      alive "$dn" || { dn="$dn(dead)"; up=1; }
    fi
    printf '%-12s %s %-7s nginx %-9s dns %-9s processes: %s\n' "$ns" "$([[ $h == router ]] && echo anchor || echo 'sshd  ')" "$pid" "$nx" "$dn" \
      "$(ip netns pids "$ns" 2>/dev/null | xargs -r ps -o pid=,comm= -p 2>/dev/null | awk '{printf "%s%s:%s", (NR>1?", ":""), $1, $2}')"
    # the addresses the host has now (ssh: the one dsrctl's inventory connects to)
    printf '%-12s addresses: %s%s\n' '' \
      "$(ip -n "$ns" -4 -o addr show 2>/dev/null | awk '$2 != "lo" {printf "%s%s %s", (n++ ? ", " : ""), $2, $4}')" \
      "$([[ -n ${SSH_IP[$h]:-} ]] && echo "; ssh root@${SSH_IP[$h]}")"
  done
  if ip link show "$MGMT_BR" >/dev/null 2>&1; then echo "$MGMT_BR      present ($MGMT_GW/24)"; else echo "$MGMT_BR      missing"; up=1; fi
  ((up == 0)) && echo "lab is up" || echo "lab is not (fully) up"
  return $up
}

# `exec HOST -- CMD...`: dies with USAGE unless a host and a command are given; sets EXEC_HOST and
# EXEC_ARGV (systemd-lab.sh's exec parses the same way)
exec_args() {
  local usage=$1
  shift
  EXEC_HOST=${1:-}
  [[ -n $EXEC_HOST ]] || die "$usage"
  shift
  [[ ${1:-} == -- ]] && shift
  (($#)) || die "$usage"
  EXEC_ARGV=("$@")
}

cmd_exec() {
  exec_args "usage: lab.sh exec HOST -- CMD..." "$@"
  local h=$EXEC_HOST
  set -- "${EXEC_ARGV[@]}"
  is_host "$h" || die "unknown host '$h' (hosts: ${HOSTS[*]})"
  local pid
  pid=$(host_pid "$h") || die "host $h is not running (lab.sh up?)"
  exec nsenter -t "$pid" -n -m -u -- "$@"
}

cmd_pids() {
  local h=${1:-}
  is_host "$h" || die "usage: lab.sh pids HOST (hosts: ${HOSTS[*]})"
  host_pid "$h" || die "host $h is not running"
}

# Sourced (test/lab/systemd-lab.sh reuses the settings and functions above): define, do not run.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  exec) shift; cmd_exec "$@" ;;
  pids) shift; cmd_pids "$@" ;;
  *) echo "usage: $0 up|down|status|exec HOST -- CMD...|pids HOST" >&2; exit 2 ;;
esac
