// The kit's initramfs: busybox, its applet links, a console node, /init and
// the few files busybox's tools expect. Written by writeCpio, gzip-compressed.
import { gzipSync } from "node:zlib";
import { type CpioEntry, writeCpio } from "./cpio.js";

/** Printed by /init just before it starts the shell. */
export const LINUX_KIT_MARKER = "ringzero-guest: init done";
/** The shell prompt (PS1) on the console. */
export const LINUX_KIT_PROMPT = "rz# ";
/** The kernel command line the kit is made for on QEMU virt (ttyS0 is the 16550 UART). */
export const LINUX_KIT_APPEND = "console=ttyS0";

export const INIT_SCRIPT = `#!/bin/sh
# ringzero Linux guest kit: /init, PID 1 on the initramfs.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
hostname ringzero
ifconfig lo 127.0.0.1 up 2>/dev/null
echo "${LINUX_KIT_MARKER}"
export PS1='${LINUX_KIT_PROMPT}'
# A shell with the console as its controlling tty (job control, Ctrl-C);
# a new one if it exits (PID 1 must not exit). \`poweroff -f\` ends the guest.
while true; do
  setsid cttyhack sh
done
`;

/** busybox udhcpc's event script ($1: deconfig, bound, renew, leasefail, nak; environment from the lease). */
export const UDHCPC_SCRIPT = `#!/bin/sh
# udhcpc event script (busybox udhcpc(8)): configures $interface from the lease.
case "$1" in
  deconfig)
    ifconfig "$interface" 0.0.0.0 up
    ;;
  bound|renew)
    ifconfig "$interface" "$ip" netmask "\${subnet:-255.255.255.0}" \${broadcast:+broadcast "$broadcast"} up
    if [ -n "$router" ]; then
      while route del default gw 0.0.0.0 dev "$interface" 2>/dev/null; do :; done
      for r in $router; do route add default gw "$r" dev "$interface"; break; done
    fi
    : > /etc/resolv.conf
    [ -n "$domain" ] && echo "search $domain" >> /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
exit 0
`;

const PASSWD = "root:x:0:0:root:/root:/bin/sh\n";
const GROUP = "root:x:0:\n";

/**
 * The archive's entries. `applets` are paths from `busybox --list-full`
 * (e.g. `bin/ls`, `usr/sbin/udhcpd`); each becomes a link to /bin/busybox.
 */
export function initramfsEntries(busybox: Uint8Array, applets: readonly string[]): CpioEntry[] {
  const dirs = [
    "bin",
    "sbin",
    "usr",
    "usr/bin",
    "usr/sbin",
    "usr/share",
    "usr/share/udhcpc",
    "dev",
    "proc",
    "sys",
    "tmp",
    "run",
    "etc",
    "etc/udhcpc",
    "root",
    "var",
    "mnt",
  ];
  const entries: CpioEntry[] = dirs.map((path) => ({
    type: "dir",
    path,
    mode: path === "tmp" ? 0o1777 : path === "root" ? 0o700 : 0o755,
  }));
  entries.push({ type: "char", path: "dev/console", major: 5, minor: 1, mode: 0o600 });
  entries.push({ type: "file", path: "bin/busybox", data: busybox, mode: 0o755 });
  const have = new Set(["bin/busybox"]);
  for (const a of applets) {
    if (have.has(a)) continue;
    const parent = a.slice(0, a.lastIndexOf("/"));
    if (!dirs.includes(parent)) continue; // only the standard bin directories
    have.add(a);
    entries.push({ type: "symlink", path: a, target: "/bin/busybox" });
  }
  entries.push({ type: "file", path: "init", data: Buffer.from(INIT_SCRIPT), mode: 0o755 });
  entries.push({
    type: "file",
    path: "usr/share/udhcpc/default.script",
    data: Buffer.from(UDHCPC_SCRIPT),
    mode: 0o755,
  });
  // Debian builds busybox with CONFIG_UDHCPC_DEFAULT_SCRIPT="/etc/udhcpc/default.script".
  entries.push({ type: "symlink", path: "etc/udhcpc/default.script", target: "/usr/share/udhcpc/default.script" });
  entries.push({ type: "file", path: "etc/passwd", data: Buffer.from(PASSWD) });
  entries.push({ type: "file", path: "etc/group", data: Buffer.from(GROUP) });
  return entries;
}

/** Parses `busybox --list-full` output into safe relative paths. */
export function parseAppletList(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => /^(?:usr\/)?s?bin\/[A-Za-z0-9_.[\]-]+$/.test(l) && !l.endsWith("/..") && !l.endsWith("/."));
}

export function buildInitramfs(busybox: Uint8Array, applets: readonly string[]): Buffer {
  return gzipSync(writeCpio(initramfsEntries(busybox, applets)), { level: 9 });
}
