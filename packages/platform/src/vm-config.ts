// VmConfig: one zod schema for a whole VM, shared by both hypervisors
// (ARCHITECTURE.md §4). Sizes are bytes; paths are host files.
import * as z from "./zod.js";

const MiB = 1024 * 1024;

/** Disk image formats a drive may name (what @ringzero/disk-formats opens; "auto" probes). */
export const DRIVE_FORMATS = ["auto", "raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx", "parallels"] as const;

export const DriveConfigSchema = z.strictObject({
  /** Host path of the disk image. */
  path: z.string().check(z.minLength(1)),
  format: z._default(z.enum(DRIVE_FORMATS), "auto"),
  readOnly: z._default(z.boolean(), false),
});

export const ShareConfigSchema = z.strictObject({
  /** Host directory exported over virtio-9p. */
  path: z.string().check(z.minLength(1)),
  /** The mount tag the guest names (mount -t 9p TAG /mnt); at most 31 bytes here. */
  tag: z.optional(z.string().check(z.regex(/^[A-Za-z0-9_.-]{1,31}$/, "a tag of 1..31 letters, digits, '_', '.', '-'"))),
  readOnly: z._default(z.boolean(), false),
});

const port = z.int().check(z.minimum(1), z.maximum(65535));

export const NetConfigSchema = z
  .strictObject({
    /**
     * none; user (NAT, DHCP, DNS on 10.0.2.0/24); socket (the NIC joins the
     * switch of another ringzero process that runs `user` with `listen`).
     */
    mode: z._default(z.enum(["none", "user", "socket"]), "none"),
    /** Host port forwards (127.0.0.1:hostPort → guest:guestPort). */
    hostfwd: z._default(
      z
        .array(z.strictObject({ protocol: z.enum(["tcp", "udp"]), hostPort: port, guestPort: port }))
        .check(z.maxLength(64)),
      [],
    ),
    /** No egress at all (services and host forwards only). */
    restrict: z._default(z.boolean(), false),
    /**
     * user mode: the virtual network (QEMU's net=, default 10.0.2.0/24) and the
     * addresses in it (host=, dns=, dhcpstart=); a network given alone brings
     * .2, .3 and .15 as in QEMU (derived by @ringzero/net-stack).
     */
    network: z.optional(z.cidrv4()),
    gateway: z.optional(z.ipv4()),
    dns: z.optional(z.ipv4()),
    dhcpStart: z.optional(z.ipv4()),
    /** Write the guest's traffic to this pcap file. */
    pcap: z.optional(z.string().check(z.minLength(1))),
    /** The DNS forwarder's upstream (default: the host's resolver from /etc/resolv.conf). */
    dnsUpstream: z.optional(z.strictObject({ host: z.ipv4(), port: z._default(port, 53) })),
    /**
     * user mode: put the NIC and the NAT on a virtual switch and accept other
     * VMs' NICs on this endpoint — a Unix socket path, or 127.0.0.1:PORT.
     * Frames travel length-prefixed, as QEMU's `-netdev stream`.
     */
    listen: z.optional(z.string().check(z.minLength(1))),
    /** socket mode: the endpoint of a switch to join (a Unix socket path or 127.0.0.1:PORT). */
    connect: z.optional(z.string().check(z.minLength(1))),
    /** The guest NIC's MAC address (default 52:54:00:12:34:56, as QEMU). */
    mac: z.optional(
      z.string().check(z.regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i, "a MAC address like 52:54:00:12:34:56")),
    ),
  })
  .check(
    z.superRefine((n, ctx) => {
      if (n.mode === "socket") {
        if (!n.connect) ctx.addIssue({ code: "custom", path: ["connect"], message: "socket mode needs connect" });
        const userOnly = {
          hostfwd: n.hostfwd.length > 0,
          restrict: n.restrict,
          pcap: n.pcap,
          dnsUpstream: n.dnsUpstream,
          listen: n.listen,
          network: n.network,
          gateway: n.gateway,
          dns: n.dns,
          dhcpStart: n.dhcpStart,
        };
        for (const [k, set] of Object.entries(userOnly))
          if (set)
            ctx.addIssue({ code: "custom", path: [k], message: `${k} belongs to the user mode (the switch's owner)` });
      } else if (n.connect !== undefined) {
        ctx.addIssue({ code: "custom", path: ["connect"], message: "connect is for socket mode" });
      }
      for (const k of ["listen", "connect"] as const) {
        const v = n[k];
        if (v !== undefined && /^[^/]*:\d+$/.test(v) && !/^(127\.0\.0\.1)?:\d{1,5}$/.test(v))
          ctx.addIssue({ code: "custom", path: [k], message: "a TCP endpoint must be on 127.0.0.1" });
      }
    }),
  );

export const VmConfigSchema = z
  .strictObject({
    /** Guest RAM in bytes (QEMU virt places it at 0x8000_0000). */
    memory: z._default(
      z.int().check(
        z.minimum(2 * MiB, "at least 2 MiB of RAM"),
        z.maximum(2048 * MiB, "at most 2 GiB of RAM"),
        z.refine((v) => v % (2 * MiB) === 0, "RAM must be a multiple of 2 MiB"),
      ),
      256 * MiB,
    ),
    /** Number of harts (SMP guests come later: 1 for now). */
    cpus: z._default(z.literal(1), 1),
    /** "sbi": the hypervisor's built-in SBI, kernel in S-mode; "none": bare metal in M-mode at the ELF entry. */
    bios: z._default(z.enum(["sbi", "none"]), "sbi"),
    kernel: z.string().check(z.minLength(1)),
    initrd: z.optional(z.string().check(z.minLength(1))),
    /** The Linux command line (/chosen bootargs); default "console=ttyS0" for a Linux Image. */
    append: z.optional(z.string().check(z.maxLength(4096, "command line longer than Linux's 4 KiB"))),
    /** Where the guest console goes: the 16550 UART (ttyS0) or virtio-console (hvc1 under a Linux with CONFIG_HVC_RISCV_SBI, which takes hvc0). */
    console: z._default(z.enum(["uart", "virtio"]), "uart"),
    /** virtio-blk disks, in virtio-mmio slot order (vda, vdb, ...). */
    drives: z._default(z.array(DriveConfigSchema).check(z.maxLength(4, "at most 4 drives")), []),
    net: z._default(NetConfigSchema, { mode: "none", hostfwd: [], restrict: false }),
    /** virtio-9p shares. */
    shares: z._default(z.array(ShareConfigSchema).check(z.maxLength(2, "at most 2 shares")), []),
    /** A virtio-rng device (entropy from the host's crypto). */
    rng: z._default(z.boolean(), false),
    /** A virtio-balloon device; its target is set while the VM runs. */
    balloon: z._default(z.boolean(), false),
  })
  .check(
    z.superRefine((c, ctx) => {
      // virtio-mmio has 8 slots (QEMU virt): disks, NIC, shares, console, rng, balloon share them.
      const used =
        c.drives.length +
        (c.net.mode === "none" ? 0 : 1) +
        c.shares.length +
        (c.console === "virtio" ? 1 : 0) +
        (c.rng ? 1 : 0) +
        (c.balloon ? 1 : 0);
      if (used > 8)
        ctx.addIssue({ code: "custom", message: `${used} virtio devices for 8 virtio-mmio slots`, path: [] });
      const tags = c.shares.map((s, i) => s.tag ?? `share${i}`);
      if (new Set(tags).size !== tags.length)
        ctx.addIssue({ code: "custom", message: "two shares with one tag", path: ["shares"] });
    }),
  );

export type VmConfig = z.output<typeof VmConfigSchema>;
export type DriveConfig = z.output<typeof DriveConfigSchema>;
export type ShareConfig = z.output<typeof ShareConfigSchema>;
export type NetConfig = z.output<typeof NetConfigSchema>;
export type VmConfigInput = z.input<typeof VmConfigSchema>;
