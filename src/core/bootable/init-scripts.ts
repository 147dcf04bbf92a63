/**
 * The two scripts of aim's minimal init, both run by busybox (static, so they need nothing from
 * the image): the initramfs /init loads the platform's modules, finds and mounts the root
 * filesystem and switches to it; /.aim/init in the root mounts the API filesystems, brings up
 * the network by DHCP and runs the application's entrypoint as a supervised service, its output
 * on the console. The power button (ACPI) stops everything and powers off.
 */

import type { RuntimeAction } from '../runtime/plan.js';
import { runtimeShell } from '../runtime/shell.js';

/** Where aim's own files live in the root filesystem of a bootable image. */
export const AIM_DIR = '/.aim';
export const AIM_BUSYBOX = `${AIM_DIR}/busybox`;
export const AIM_INIT = `${AIM_DIR}/init`;

/**
 * What aim's init writes on the console each time the service exits (then it starts it again after
 * a second), followed by the exit status: qualification counts these lines to tell a crashing
 * service from a slow one.
 */
export const SERVICE_EXITED = 'aim: service exited with status';

/** Single-quotes a word for sh. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * Kernel argument of PXE boots: the root filesystem is already in RAM, unpacked by the kernel from
 * the second cpio of the initrd under /newroot, so /init enters it with chroot (busybox switch_root
 * needs the new root to be a mount of its own). A root= (any) also makes the kernel's rootfs a
 * ramfs instead of a tmpfs capped at half the memory: the gold nginx root then unpacks in 400 MiB
 * instead of failing at 480. The kernel never looks the name up, since the initramfs has /init.
 */
export const RAM_ROOT_ARG = 'root=ram';
/** Where the root of a RAM-root initrd is unpacked (the core initramfs has this directory empty). */
export const RAM_ROOT_DIR = 'newroot';
/**
 * The last member of the root cpio. The kernel stops unpacking at its first error (out of memory:
 * "Initramfs unpacking failed: write error") and boots anyway, so /init checks that it got this far.
 */
export const RAM_ROOT_MARKER = 'etc/aim/root-complete';

/** The initramfs /init: modules in /etc/aim/modules (load order), the init to start in /etc/aim/init. */
export function initramfsInit(): string {
  return `#!/bin/busybox sh
# aim initramfs: load modules, mount the root named by root= (UUID=, LABEL= or a device), switch to it;
# with ${RAM_ROOT_ARG} the root is already unpacked in /${RAM_ROOT_DIR}: enter it with chroot.
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox --install -s /bin
export PATH=/bin
exec </dev/console >/dev/console 2>&1
fail() { echo "aim: $*"; echo "aim: cannot boot, stopping"; sleep 1; poweroff -f; }
while read -r m; do
  [ -n "$m" ] && { insmod "/lib/modules/$m" || echo "aim: could not load $m"; }
done </etc/aim/modules
root=
ram=
for arg in $(cat /proc/cmdline); do
  case "$arg" in root=*) root="\${arg#root=}" ;; esac
done
[ "root=$root" = "${RAM_ROOT_ARG}" ] && ram=1
init=$(cat /etc/aim/init)
if [ -n "$ram" ]; then
  [ -e /${RAM_ROOT_MARKER} ] || fail "the root filesystem in RAM is incomplete: the kernel could not unpack all of the initrd (too little memory?)"
  [ -x "/newroot$init" ] || [ -L "/newroot$init" ] || fail "$init not found in the root in RAM (is the root cpio missing from the initrd?)"
  umount /proc /sys
  mount --move /dev /newroot/dev 2>/dev/null || umount /dev
  exec chroot /newroot "$init"
fi
[ -n "$root" ] || fail "no root= on the kernel command line"
dev=
i=0
while [ $i -lt 300 ]; do
  case "$root" in
    UUID=*|LABEL=*) dev=$(findfs "$root" 2>/dev/null) ;;
    *) dev="$root" ;;
  esac
  [ -n "$dev" ] && [ -b "$dev" ] && break
  dev=
  i=$((i + 1))
  sleep 0.1
done
[ -n "$dev" ] || fail "root filesystem $root not found"
mount -t ext4 -o rw "$dev" /newroot || fail "cannot mount $dev ($root)"
[ -x "/newroot$init" ] || [ -L "/newroot$init" ] || fail "$init not found in the root filesystem"
umount /proc /sys
if [ -d /newroot/dev ]; then mount --move /dev /newroot/dev; else umount /dev; fi
exec switch_root /newroot "$init"
`;
}

/**
 * /.aim/init in the root filesystem: PID 1 of an aim-booted image, supervising `entrypoint`,
 * after creating the runtime state (`runtime`: tmpfiles.d lines and the service's directories,
 * planned at build time) on the fresh /run and /tmp. `steps` are the platform's scripts, started
 * in the background once DHCP has begun (EC2: the SSH key from instance metadata).
 */
export function rootInit(entrypoint: readonly string[], runtime: readonly RuntimeAction[] = [], steps: readonly string[] = []): string {
  const command = entrypoint.map(shellQuote).join(' ');
  return `#!${AIM_BUSYBOX} sh
# aim init: API filesystems, runtime state, loopback and DHCP, then the entrypoint as a supervised service.
B=${AIM_BUSYBOX}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# /dev normally arrives moved from the initramfs; /proc and /sys do not.
$B grep -q ' /dev ' /proc/mounts 2>/dev/null || $B mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/null >/dev/console 2>&1
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mkdir -p /dev/pts /dev/shm
$B mount -t devpts -o gid=5,mode=620 devpts /dev/pts
$B mount -t tmpfs -o mode=1777 tmpfs /dev/shm
$B mount -t tmpfs -o mode=0755 tmpfs /run
$B mount -t tmpfs -o mode=1777 tmpfs /tmp
${runtimeShell(runtime)}$B hostname aim
$B ip link set lo up
$B acpid -c ${AIM_DIR}/acpi -l /run/aim-acpid.log
if $B ip link show eth0 >/dev/null 2>&1; then
  $B udhcpc -i eth0 -s ${AIM_DIR}/dhcp -b -t 20 -T 1
else
  echo "aim: no eth0, network not configured"
fi
${steps.map((path) => `${shellQuote(path)} &\n`).join('')}aim_service() {
  while :; do
    echo aim: starting ${shellQuote(command)}
    ${command}
    echo "${SERVICE_EXITED} $?, restarting in 1 s"
    $B sleep 1
  done
}
aim_service &
while :; do wait; $B sleep 1; done
`;
}

/** udhcpc's event script: address, default route and resolv.conf from the lease. */
export function dhcpScript(): string {
  return `#!${AIM_BUSYBOX} sh
B=${AIM_BUSYBOX}
case "$1" in
  deconfig)
    $B ip addr flush dev "$interface"
    $B ip link set "$interface" up
    ;;
  bound|renew)
    $B ip addr flush dev "$interface"
    $B ip addr add "$ip/\${mask:-24}" dev "$interface"
    for r in $router; do $B ip route replace default via "$r" dev "$interface"; break; done
    if [ -n "$dns" ] && [ -d /etc ]; then
      { for s in $dns; do echo "nameserver $s"; done; } >/etc/resolv.conf 2>/dev/null
    fi
    echo "aim: $interface has address $ip"
    ;;
esac
exit 0
`;
}

/** busybox acpid's handler for the power button (PWRF/00000080): stop everything, power off. */
export function powerButtonScript(): string {
  return `#!${AIM_BUSYBOX} sh
B=${AIM_BUSYBOX}
echo "aim: power button pressed: stopping services and powering off" >/dev/console
# the shell's own kill: kill(-1) spares the caller, and the caller must be this script
kill -TERM -1
$B sleep 2
kill -KILL -1
$B sync
$B umount -a -r 2>/dev/null
$B mount -o remount,ro / 2>/dev/null
$B poweroff -f
`;
}
