#!/bin/sh
# PID 1 of the VM after switch_root (runs with the host's /bin/sh on the overlay root).
# Mounts the usual pseudo filesystems, runs the job's script, frames its output and exit
# code on the data channel (/dev/ttyS1) and powers off.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

data=/dev/ttyS1
poweroff_now() {
	sync
	echo o >/proc/sysrq-trigger
	sleep 5
	busybox poweroff -f
}
fail() {
	echo "DSRVM-INIT-FAIL: $*"
	echo "DSRVM-INIT-FAIL: $*" >"$data" 2>/dev/null
	poweroff_now
}

# job: DSRVM_NONCE, DSRVM_SCRIPT, DSRVM_CWD and `set -- ARGS`
. /run/dsrvm/job || fail "read job"
# A checkout under /tmp (a fresh clone there) must stay visible under the VM's own empty /tmp:
# keep the host's directory (through the overlay, so writable) and bind it back in place.
case "$DSRVM_CWD" in
/tmp/?*)
	mkdir -p /run/dsrvm/hosttmp && mount --bind "$DSRVM_CWD" /run/dsrvm/hosttmp || fail "bind $DSRVM_CWD"
	;;
esac
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp || fail "tmpfs /tmp"
case "$DSRVM_CWD" in
/tmp/?*)
	mkdir -p "$DSRVM_CWD" && mount --bind /run/dsrvm/hosttmp "$DSRVM_CWD" || fail "bind $DSRVM_CWD back"
	;;
esac
mkdir -p /dev/pts /dev/shm /run/lock /run/netns
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
hostname dsrvm 2>/dev/null
ip link set lo up 2>/dev/null

# raw, no CR/LF translation: the host extracts the output byte for byte
stty -F "$data" raw -echo 2>/dev/null || fail "stty $data"

script=$DSRVM_SCRIPT
[ -r "$script" ] || script=/run/dsrvm/script # host path under /tmp or /run: use the copy
cd "$DSRVM_CWD" 2>/dev/null || cd /

export HOME=/root TERM=dumb LANG=C.UTF-8 DSRVM=1
unset DSRVM_SCRIPT DSRVM_CWD

printf '\n@@DSRVM-BEGIN-%s@@\n' "$DSRVM_NONCE" >"$data"
# honour a shebang when the script is executable, else /bin/sh
if [ -x "$script" ] && [ "$(head -c 2 "$script")" = "#!" ]; then
	"$script" "$@" >"$data" 2>&1 </dev/null
else
	/bin/sh "$script" "$@" >"$data" 2>&1 </dev/null
fi
rc=$?
printf '\n@@DSRVM-END-%s rc=%d@@\n' "$DSRVM_NONCE" "$rc" >"$data"
poweroff_now
