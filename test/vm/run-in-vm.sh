#!/usr/bin/env bash
# run-in-vm.sh SCRIPT [ARGS...]
#
# Boots a stock Debian kernel (linux-image-amd64) under qemu TCG with this machine's root
# filesystem shared READ-ONLY over 9p and a tmpfs overlay on top (nothing the VM does reaches
# the host's files), runs SCRIPT inside as root with ARGS (with /bin/sh, or its shebang when
# it is executable), prints its stdout+stderr on our stdout and exits with its exit code.
# Why: this machine's kernel has no act_nat; the VM's kernel ships it (plus veth, htb, u32,
# nf_tables netdev ...), loadable with modprobe from the host's /lib/modules/<version>.
#
# Exit codes: the script's own, or
#   124  the run timed out (VM_TIMEOUT seconds, default 240); qemu is killed
#   125  the VM could not run the script (missing packages, qemu failed, init failed)
#   2    usage
# Environment:
#   VM_TIMEOUT=240   whole run, boot included
#   VM_MEM=1024      guest memory in MiB
#   VM_KERNEL=VER    kernel version to boot (default: newest /boot/vmlinuz-* with modules)
#   VM_DEBUG=1       print qemu's log and the guest console on stderr afterwards
#   VM_QUIET=1       no timing summary on stderr
#   VM_PVH=0         boot the compressed bzImage instead of the cached, uncompressed vmlinux
#   VM_APPEND=...    extra kernel command line (e.g. "loglevel=7" with VM_DEBUG=1)
# The tiny initramfs is cached in test/vm/.cache/ (keyed by kernel, init scripts, busybox).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=$HERE/.cache
VM_TIMEOUT=${VM_TIMEOUT:-240}
VM_MEM=${VM_MEM:-1024}
# modules the initramfs needs to mount the host's root (dependencies resolved below)
INITRAMFS_MODULES=(virtio_pci 9pnet_virtio 9p overlay)

log() { echo "run-in-vm: $*" >&2; }
die() {
	log "error: $*"
	exit 125
}

if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
	sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
[[ $VM_TIMEOUT =~ ^[0-9]+$ ]] && [ "$VM_TIMEOUT" -gt 0 ] || { log "VM_TIMEOUT must be a positive integer"; exit 2; }
[[ $VM_MEM =~ ^[0-9]+$ ]] || { log "VM_MEM must be an integer (MiB)"; exit 2; }
script=$(realpath -e -- "$1" 2>/dev/null) && [ -f "$script" ] || { log "no such script: $1"; exit 2; }
shift
[ "$(id -u)" = 0 ] || die "must run as root (qemu reads the whole root filesystem; packages may need installing)"
mkdir -p "$CACHE" || die "cannot create $CACHE"

# ---------------------------------------------------------------- packages and kernel
pick_kernel() { # prints the version to boot; a version needs its image, modules.dep and act_nat
	local f v best=
	if [ -n "${VM_KERNEL:-}" ]; then
		[ -f "/boot/vmlinuz-$VM_KERNEL" ] && [ -f "/lib/modules/$VM_KERNEL/modules.dep" ] || return 1
		echo "$VM_KERNEL"
		return 0
	fi
	for f in /boot/vmlinuz-*; do
		[ -f "$f" ] || continue
		v=${f#/boot/vmlinuz-}
		[ -f "/lib/modules/$v/modules.dep" ] || continue
		grep -q '/act_nat\.ko' "/lib/modules/$v/modules.dep" || continue
		best+="$v"$'\n'
	done
	[ -n "$best" ] || return 1
	printf '%s' "$best" | sort -V | tail -n 1
}

ensure_packages() {
	local need=()
	command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
	# the dynamic "busybox" package also ships /bin/busybox: we need the static one
	dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
	command -v cpio >/dev/null || need+=(cpio)
	command -v perl >/dev/null || need+=(perl-base)
	pick_kernel >/dev/null || need+=(linux-image-amd64)
	[ ${#need[@]} -eq 0 ] && return 0
	log "installing ${need[*]} (log: $CACHE/apt.log)"
	# INITRD=No: the kernel's postinst.d hook from initramfs-tools then builds no
	# /boot/initrd.img (this machine boots no Debian kernel; our initramfs is our own).
	# linux-image's postinst still runs depmod and makes /vmlinuz{,.old} symlinks; there is no
	# bootloader, so nothing else happens. kmod and initramfs-tools come as its dependencies.
	(
		flock -w 900 9 || exit 1
		apt-get -o DPkg::Lock::Timeout=300 update || exit 1
		env INITRD=No DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
			install -y --no-install-recommends "${need[@]}"
	) 9>"$CACHE/install.lock" >"$CACHE/apt.log" 2>&1 || {
		tail -n 20 "$CACHE/apt.log" >&2
		die "apt-get install ${need[*]} failed"
	}
}
ensure_packages
KVER=$(pick_kernel) || die "no usable kernel in /boot (linux-image-amd64 with act_nat.ko)${VM_KERNEL:+ for VM_KERNEL=$VM_KERNEL}"
KIMG=/boot/vmlinuz-$KVER
MODDIR=/lib/modules/$KVER

# ---------------------------------------------------------------- kernel image
# Under TCG the bzImage's own xz decompressor takes ~6 s. With CONFIG_PVH the uncompressed
# ELF vmlinux boots directly (qemu's PVH entry), so decompress it once on the host and cache it.
extract_vmlinux() { # $1 = bzImage, $2 = output; tries each compressor's magic
	local img=$1 out=$2 magic cmd off
	for magic in $'\xfd7zXZ:xz -dc --single-stream' $'\x1f\x8b\x08:gzip -dc' \
		$'\x28\xb5\x2f\xfd:zstd -qdc' $'\x02\x21\x4c\x18:lz4 -dc'; do
		cmd=${magic#*:}
		command -v "${cmd%% *}" >/dev/null || continue
		for off in $(LC_ALL=C grep -aboF -- "${magic%%:*}" "$img" 2>/dev/null | cut -d: -f1 | head -n 5); do
			tail -c +$((off + 1)) "$img" | $cmd >"$out.tmp.$$" 2>/dev/null
			if [ "$(head -c 4 "$out.tmp.$$" 2>/dev/null)" = $'\x7fELF' ]; then
				mv -f "$out.tmp.$$" "$out"
				return 0
			fi
		done
	done
	rm -f "$out.tmp.$$"
	return 1
}
BOOTIMG=$KIMG
if [ "${VM_PVH:-1}" != 0 ] && grep -q '^CONFIG_PVH=y' "/boot/config-$KVER" 2>/dev/null; then
	VMLINUX=$CACHE/vmlinux-$KVER
	if [ ! -s "$VMLINUX" ] || [ "$VMLINUX" -ot "$KIMG" ]; then
		extract_vmlinux "$KIMG" "$VMLINUX" || log "cannot extract vmlinux from $KIMG: booting the bzImage (slower)"
	fi
	[ -s "$VMLINUX" ] && BOOTIMG=$VMLINUX
fi

# ---------------------------------------------------------------- initramfs (cached)
# Resolve module dependencies from modules.dep: depth first, dependencies before dependants.
declare -A MODPATH=() MODDEPS=() SEEN=()
MODORDER=()
load_modules_dep() {
	local line path deps name
	while IFS= read -r line; do
		path=${line%%:*}
		deps=${line#*:}
		name=${path##*/}
		name=${name%%.ko*}
		name=${name//-/_}
		MODPATH[$name]=$path
		MODDEPS[$name]=$deps
	done <"$MODDIR/modules.dep"
}
resolve_module() {
	local name=${1//-/_} d dn
	[ -n "${SEEN[$name]:-}" ] && return 0
	SEEN[$name]=1
	if [ -z "${MODPATH[$name]:-}" ]; then
		# built into this kernel: nothing to load
		grep -qE "/${name//_/[-_]}\.ko\$" "$MODDIR/modules.builtin" 2>/dev/null && return 0
		die "module $name not found in $MODDIR/modules.dep"
	fi
	for d in ${MODDEPS[$name]}; do
		dn=${d##*/}
		resolve_module "${dn%%.ko*}"
	done
	MODORDER+=("${MODPATH[$name]}")
}

build_initramfs() { # $1 = output file
	local out=$1 root m ko
	root=$(mktemp -d "$CACHE/build.XXXXXX") || die "mktemp"
	mkdir -p "$root"/{bin,dev,modules,job} || die "mkdir"
	cp /bin/busybox "$root/bin/busybox" || die "copy busybox"
	cp "$HERE/initramfs-init.sh" "$root/init" && chmod 755 "$root/init" || die "copy init"
	cp "$HERE/vm-stage2.sh" "$root/stage2" || die "copy stage2"
	mknod "$root/dev/console" c 5 1 || die "mknod console"
	: >"$root/modules.list"
	for m in "${MODORDER[@]}"; do
		ko=${m##*/}
		case $m in # decompress: busybox insmod takes plain .ko files
		*.ko) cp "$MODDIR/$m" "$root/modules/$ko" ;;
		*.ko.xz) ko=${ko%.xz}; xz -dc "$MODDIR/$m" >"$root/modules/$ko" ;;
		*.ko.zst) ko=${ko%.zst}; zstd -qdc "$MODDIR/$m" >"$root/modules/$ko" ;;
		*.ko.gz) ko=${ko%.gz}; gzip -dc "$MODDIR/$m" >"$root/modules/$ko" ;;
		*) false ;;
		esac || die "cannot copy module $m"
		echo "$ko" >>"$root/modules.list"
	done
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out.tmp.$$" ||
		die "cpio failed"
	mv -f "$out.tmp.$$" "$out"
	rm -rf "$root"
}

load_modules_dep
for m in "${INITRAMFS_MODULES[@]}"; do resolve_module "$m"; done
KEY=$(
	{
		echo "$KVER"
		printf '%s\n' "${MODORDER[@]}"
		cat "$HERE/initramfs-init.sh" "$HERE/vm-stage2.sh"
		sha256sum /bin/busybox
	} | sha256sum | cut -c1-16
)
INITRAMFS=$CACHE/initramfs-$KVER-$KEY.cpio
if [ ! -s "$INITRAMFS" ]; then
	log "building $INITRAMFS (${#MODORDER[@]} modules)"
	build_initramfs "$INITRAMFS"
fi

# ---------------------------------------------------------------- the run
QPID=
TMP=$(mktemp -d "${TMPDIR:-/tmp}/run-in-vm.XXXXXX") || die "mktemp"
cleanup() {
	if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
		kill -TERM "$QPID" 2>/dev/null
		for _ in $(seq 1 30); do
			kill -0 "$QPID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$QPID" 2>/dev/null
		wait "$QPID" 2>/dev/null
	fi
	QPID=
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

sq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; } # single-quote for sh
NONCE=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$TMP/jobroot/job"
cp "$script" "$TMP/jobroot/job/script"
{
	echo "DSRVM_NONCE=$NONCE"
	echo "DSRVM_SCRIPT=$(sq "$script")"
	echo "DSRVM_CWD=$(sq "$PWD")"
	printf 'set --'
	for a in "$@"; do printf ' %s' "$(sq "$a")"; done
	echo
} >"$TMP/jobroot/job/job"
# a second cpio archive appended to the cached one: the kernel unpacks both
(cd "$TMP/jobroot" && find job | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$TMP/job.cpio" ||
	die "cpio failed"
cat "$INITRAMFS" "$TMP/job.cpio" >"$TMP/initrd.cpio" || die "cannot write $TMP/initrd.cpio"

# quiet: kernel chatter stays on ttyS0 (console log); the script talks on ttyS1 only.
# mitigations=off: no PTI/retpoline costs under emulation. panic=-1 + -no-reboot: a dead
# PID 1 or panic ends qemu at once instead of hanging.
CMDLINE="console=ttyS0 quiet loglevel=0 panic=-1 rdinit=/init mitigations=off nokaslr cryptomgr.notests"
CMDLINE+=" tsc=reliable no_timer_check i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"
CMDLINE+="${VM_APPEND:+ $VM_APPEND}"
: >"$TMP/console.log"
: >"$TMP/data.log"
# qemu dies with us even if we are SIGKILLed (no trap runs then)
DEATHSIG=()
setpriv --help 2>/dev/null | grep -q -- --pdeathsig && DEATHSIG=(setpriv --pdeathsig KILL --)
T0=$EPOCHREALTIME
"${DEATHSIG[@]}" qemu-system-x86_64 \
	-name dsrvm -accel tcg -cpu max -m "$VM_MEM" -smp 1 \
	-nodefaults -no-user-config -display none -no-reboot -nic none \
	-serial "file:$TMP/console.log" -serial "file:$TMP/data.log" \
	-kernel "$BOOTIMG" -initrd "$TMP/initrd.cpio" -append "$CMDLINE" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,multidevs=remap,readonly=on \
	</dev/null >"$TMP/qemu.log" 2>&1 &
QPID=$!

elapsed() { # seconds since T0, 1 decimal
	local now=$EPOCHREALTIME
	awk -v a="$T0" -v b="$now" 'BEGIN { printf "%.1f", b - a }'
}
alive() { kill -0 "$QPID" 2>/dev/null && ! grep -q '^[^)]*) Z' "/proc/$QPID/stat" 2>/dev/null; }

BEGIN_MARK="@@DSRVM-BEGIN-$NONCE@@"
BOOT=
TIMED_OUT=
deadline=$((SECONDS + VM_TIMEOUT))
while alive; do
	if [ -z "$BOOT" ] && grep -qF "$BEGIN_MARK" "$TMP/data.log"; then BOOT=$(elapsed); fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		TIMED_OUT=1
		break
	fi
	sleep 0.1
done
if [ -n "$TIMED_OUT" ]; then
	kill -TERM "$QPID" 2>/dev/null
	sleep 0.5
	kill -KILL "$QPID" 2>/dev/null
fi
wait "$QPID" 2>/dev/null
QRC=$?
QPID=
TOTAL=$(elapsed)
[ -z "$BOOT" ] && grep -qF "$BEGIN_MARK" "$TMP/data.log" && BOOT="<$TOTAL"

show_debug() {
	echo "---- qemu (exit $QRC) ----" >&2
	cat "$TMP/qemu.log" >&2
	echo "---- guest console (tail) ----" >&2
	tail -n "${1:-40}" "$TMP/console.log" | tr -d '\r' >&2
}
[ -n "${VM_DEBUG:-}" ] && show_debug +1

# output between the markers, byte for byte (the END marker starts with its own newline)
: >"$TMP/out"
RC=$(OUT="$TMP/out" N="$NONCE" perl -0777 -ne '
	my $n = quotemeta $ENV{N}; my $p;
	if (/\n\@\@DSRVM-BEGIN-$n\@\@\n(.*)\n\@\@DSRVM-END-$n rc=(\d+)\@\@\n/s) { $p = $1; print $2 }
	elsif (/\n\@\@DSRVM-BEGIN-$n\@\@\n(.*)\z/s) { $p = $1 }
	else { exit 4 }
	open(my $o, ">", $ENV{OUT}) or exit 5; print $o $p; close $o;
	exit(defined $2 ? 0 : 3)' "$TMP/data.log")
PRC=$?
cat "$TMP/out"

if [ $PRC -eq 0 ]; then
	[ -n "${VM_QUIET:-}" ] || log "kernel $KVER: boot ${BOOT:-?} s, total $TOTAL s, exit $RC"
	exit "$RC"
fi
if grep -q 'DSRVM-INIT-FAIL' "$TMP/data.log" "$TMP/console.log" 2>/dev/null; then
	show_debug
	die "VM init failed: $(grep -ah 'DSRVM-INIT-FAIL' "$TMP/data.log" "$TMP/console.log" | tr -d '\r' | head -n 1)"
fi
if [ -n "$TIMED_OUT" ]; then
	[ $PRC -eq 3 ] && echo >&2 && log "(output above is partial)"
	show_debug 20
	log "timed out after ${VM_TIMEOUT}s (VM_TIMEOUT); qemu killed"
	exit 124
fi
show_debug
if [ $PRC -eq 3 ]; then die "the VM stopped before the script finished (qemu exit $QRC)"; fi
die "qemu exited (code $QRC) before the script started"
