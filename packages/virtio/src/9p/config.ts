import * as z from "../zod.js";
import { MIN_MSIZE } from "./protocol.js";

/**
 * Configuration of a {@link NinePServer}. The share is exported like QEMU's
 * `-virtfs local,security_model=none`: files are created with the server's
 * credentials, then chowned to the attaching uid and the requested gid, and a
 * refused chown is ignored.
 */
export const NinePServerConfigSchema = z.object({
  /** Host directory to export. Resolved once (realpath) when the server is built. */
  root: z.string().check(z.minLength(1)),
  /** Every mutating request fails with EROFS. */
  readOnly: z._default(z.boolean(), false),
  /** Largest msize the server accepts in Tversion (bytes). Linux asks for 512 KiB at most over virtio. */
  maxMsize: z._default(z.int().check(z.minimum(MIN_MSIZE), z.maximum(16 * 1024 * 1024)), 512 * 1024),
  /** Live fids at once; Twalk/Tattach beyond it get ENFILE. */
  maxFids: z._default(z.int().check(z.minimum(16), z.maximum(1_048_576)), 65_536),
  /** Fids with an open host file at once; Tlopen/Tlcreate beyond it get EMFILE. */
  maxOpenFiles: z._default(z.int().check(z.minimum(1), z.maximum(65_536)), 1024),
  /** Path components below the root; deeper walks get ENAMETOOLONG. */
  maxDepth: z._default(z.int().check(z.minimum(1), z.maximum(4096)), 1024),
  /** Directory entries snapshotted per Treaddir stream; the rest are not listed (counted). */
  maxDirEntries: z._default(z.int().check(z.minimum(16), z.maximum(16_777_216)), 1_048_576),
  /** Entries held by all open directory streams together; a snapshot beyond it gets ENOMEM. */
  maxDirEntriesTotal: z._default(z.int().check(z.minimum(16), z.maximum(67_108_864)), 2_097_152),
});
export type NinePServerConfig = z.input<typeof NinePServerConfigSchema>;
export type NinePServerOptions = z.output<typeof NinePServerConfigSchema>;
