#!/bin/busybox sh
# /init of the tiny initramfs built by run-in-vm.sh (busybox-static + virtio/9p/overlay modules).
#
# 1. load the modules listed in /modules.list (dependency order, resolved from modules.dep)
# 2. mount the host's root (9p tag "hostroot") READ-ONLY at /mnt/lower
#    (qemu also exports it with readonly=on, so the host refuses writes twice over)
# 3. overlayfs: lowerdir=9p root, upperdir/workdir on a tmpfs => the VM can write
#    anywhere, and every write lands in guest RAM, never on the host
# 4. put /run (tmpfs, holding stage2 + the job), /dev, /proc, /sys into the new root
#    and switch_root into it, running stage2 with the host's /bin/sh as PID 1.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /mnt/lower /mnt/rw /newroot
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t devtmpfs devtmpfs /dev
# fds 0-2 are closed when the initramfs has no /dev/console node
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo 1 >/proc/sys/kernel/printk

fail() {
	# ttyS1 is the data channel the host parses; ttyS0 is the console log
	echo "DSRVM-INIT-FAIL: $*"
	echo "DSRVM-INIT-FAIL: $*" >/dev/ttyS1 2>/dev/null
	sync
	echo o >/proc/sysrq-trigger
	sleep 5
	poweroff -f
}

while read -r ko; do
	[ -n "$ko" ] || continue
	insmod "/modules/$ko" || fail "insmod $ko"
done </modules.list

# 9pnet_virtio binds the device while it loads; retry briefly anyway
i=0
until mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=262144,cache=loose hostroot /mnt/lower; do
	i=$((i + 1))
	[ $i -lt 20 ] || fail "mount 9p hostroot"
	sleep 0.1
done
mount -t tmpfs -o mode=0755 tmpfs /mnt/rw || fail "tmpfs for overlay"
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /newroot ||
	fail "overlay mount"

mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run || fail "tmpfs /run"
mkdir -p /newroot/run/dsrvm
cp /stage2 /newroot/run/dsrvm/stage2 || fail "copy stage2"
cp -a /job/. /newroot/run/dsrvm/ || fail "copy job"
# keep the layers reachable for debugging, read-only view of the host included
mkdir -p /newroot/run/dsrvm/lower /newroot/run/dsrvm/rw
mount --move /mnt/lower /newroot/run/dsrvm/lower
mount --move /mnt/rw /newroot/run/dsrvm/rw
mount --move /dev /newroot/dev || fail "move /dev"
mount --move /proc /newroot/proc || fail "move /proc"
mount --move /sys /newroot/sys || fail "move /sys"

[ -x /newroot/bin/sh ] || fail "no /bin/sh on the host root"
exec switch_root /newroot /bin/sh /run/dsrvm/stage2
fail "switch_root"
