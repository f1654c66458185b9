#!/usr/bin/env bash
# Boots one lab host. lab.sh runs it as
#   setsid -w ip netns exec <prefix>-<host> unshare --mount --uts --propagation private -- \
#     bash host-init.sh <host> <lab-dir>
# so it already sits in the host's own network, mount and UTS namespaces. It gives the host its
# hostname, a private /run, its own /etc/nginx, /var/log/nginx, /var/lib/nginx, /var/lib/dsrctl
# and /tmp (bind mounts of <lab-dir>/hosts/<host>/...), starts its daemons, writes their PIDs to
# <lab-dir>/pids/<host>.<daemon> and exits; the daemons keep the namespaces alive.
# Mounts are private to this mount namespace: nothing here is visible on the machine.
set -euo pipefail

host=$1
lab=$2
hd=$lab/hosts/$host
piddir=$lab/pids

hostname "$host"

# Private /run: sshd's privilege-separation dir, pid files, utmp.
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p -m 0755 /run/sshd

if [[ $host == router ]]; then
  # The router only forwards; an idle anchor process keeps its mount/UTS namespaces alive
  # so `lab.sh exec router -- ...` works like on the other hosts.
  (exec -a lab-router-anchor sleep infinity) </dev/null >/dev/null 2>&1 &
  echo $! >"$piddir/$host.anchor"
  exit 0
fi

for d in etc/nginx var/log/nginx var/lib/nginx var/lib/dsrctl tmp; do
  mount --bind "$hd/$d" "/$d"
done
# Root's home of its own: the machine's /root/.bashrc (sourced by bash for every SSH exec) must
# not run on lab hosts; here it ran pyenv init and made each exec cost 0.5-1.5 s.
mkdir -p -m 0700 "$hd/root"
mount --bind "$hd/root" /root

case $host in
  proxy | dev*)
    rm -f /run/nginx.pid
    nginx </dev/null >>"$hd/nginx.start.log" 2>&1
    for _ in $(seq 50); do [[ -s /run/nginx.pid ]] && break; sleep 0.05; done
    [[ -s /run/nginx.pid ]] || { echo "$host: nginx wrote no /run/nginx.pid" >&2; exit 1; }
    cat /run/nginx.pid >"$piddir/$host.nginx"
    ;;
esac

# The guide's DNS upstreams. dnsmasq daemonizes (fork + setsid) and its parent exits only once
# the daemon has bound its sockets and written the pid file, reporting startup errors in its
# exit status; so no polling is needed, unlike --keep-in-foreground with '&'. lab.sh's teardown
# kills every process of the namespace, this one included.
case $host in
  dev*)
    rm -f /run/dnsmasq.pid
    /usr/sbin/dnsmasq --conf-file="$hd/dnsmasq.conf" </dev/null >>"$hd/dnsmasq.start.log" 2>&1 ||
      { echo "$host: dnsmasq failed to start:" >&2; cat "$hd/dnsmasq.start.log" >&2; exit 1; }
    [[ -s /run/dnsmasq.pid ]] || { echo "$host: dnsmasq wrote no /run/dnsmasq.pid" >&2; exit 1; }
    cat /run/dnsmasq.pid >"$piddir/$host.dns"
    ;;
esac

# sshd needs an absolute path to re-exec itself; -D keeps it in the foreground so $! is its PID.
/usr/sbin/sshd -D -f "$hd/ssh/sshd_config" -E "$hd/ssh/sshd.log" </dev/null >/dev/null 2>&1 &
echo $! >"$piddir/$host.sshd"
