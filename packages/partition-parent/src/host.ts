// What the parent partition needs from the host it runs on: how to start
// threads (its VSP workers), the VSP thread's module, and, where the host has
// them, files, gzip and a network back end. Node's are in node-host.ts (the
// "./node" entry); a browser passes web Workers and its own bundles' URLs.
import type { ThreadSpawner } from "@ringzero/hypervisor-micro";
import type { NetBackend } from "@ringzero/net-stack";
import type { VmConfig } from "@ringzero/platform";
import type { GuestImageIo } from "./images.js";

/** Runs one back end's open; its failure becomes DEVICE_OPEN naming the device (devices.ts). */
export type Opening = <T>(device: string, path: string | undefined, open: () => T | Promise<T>) => Promise<T>;

export interface ParentHost {
  readonly threads: ThreadSpawner;
  /** The VSP thread's module: it calls `runVspThread` with a VspThreadHost. */
  readonly vspModule: URL | string;
  /** Files and gzip for the guest's kernel and initrd (absent: bytes only, uncompressed). */
  readonly images?: GuestImageIo;
  /**
   * Opens `config.net`'s back end (user-mode NAT, switch) and pushes what
   * closes it onto `closers`; absent: a VM with a network is refused (DEVICE_OPEN).
   */
  readonly openNet?: (
    net: VmConfig["net"],
    opening: Opening,
    closers: (() => void | Promise<void>)[],
  ) => Promise<NetBackend>;
}
