// Named counters of guest misbehaviour. Every guest error bumps exactly one
// of these; none is ever thrown into the host.
export const GuestErrorCounter = {
  /** A head or `next` index is >= the table size (§2.7.5.3.1). */
  descIndexOutOfRange: "descIndexOutOfRange",
  /** A chain visits more descriptors than its table holds: a loop (§2.7.5.3.1). */
  descriptorLoop: "descriptorLoop",
  /** A chain (with indirect tables) is longer than the queue size (§2.7.5.3.1). */
  chainTooLong: "chainTooLong",
  /** An indirect descriptor inside an indirect table (§2.7.5.3.1). */
  nestedIndirect: "nestedIndirect",
  /** INDIRECT used without VIRTIO_F_INDIRECT_DESC, or INDIRECT together with NEXT (§2.7.5.3.1). */
  indirectNotAllowed: "indirectNotAllowed",
  /** An indirect table whose length is zero or not a multiple of 16 (§2.7.5.3.1). */
  badIndirectTable: "badIndirectTable",
  /** A descriptor or indirect table not entirely in guest RAM. */
  addressOutsideRam: "addressOutsideRam",
  /** A device-readable descriptor after a device-writable one (§2.7.4.2). */
  readableAfterWritable: "readableAfterWritable",
  /** A ring not aligned as §2.7 Table 2.2 requires. */
  unalignedRing: "unalignedRing",
  /** A ring not entirely in guest RAM. */
  ringOutsideRam: "ringOutsideRam",
  /** QueueNum zero, above QueueNumMax or not a power of 2 (§2.7, §4.2.3.2). */
  badQueueSize: "badQueueSize",
  /** avail.idx moved by more than the queue size (§2.7.6). */
  availIdxJump: "availIdxJump",
  /** A buffer of the wrong direction or too short for the request (device-specific layout). */
  wrongDirection: "wrongDirection",
  /** A request header the device cannot parse. */
  malformedRequest: "malformedRequest",
  /** A register access of a size or offset the transport does not allow (§4.2.2). */
  badRegisterAccess: "badRegisterAccess",
  /** A status write that breaks §3.1 (clearing bits, DRIVER_OK before FEATURES_OK…). */
  statusProtocol: "statusProtocol",
  /** FEATURES_OK refused: VERSION_1 missing or unoffered bits accepted (§2.2, §6.1). */
  featuresRejected: "featuresRejected",
  /** A queue register written while the queue is ready, or QueueSel out of range (§4.2.3.2). */
  queueRegisterMisuse: "queueRegisterMisuse",
  /** QueueNotify naming a queue that is absent or not ready. */
  badNotify: "badNotify",
  /** DEVICE_NEEDS_RESET set (sum of the structural errors above that broke a queue). */
  needsReset: "needsReset",
} as const;
export type GuestErrorCounter = (typeof GuestErrorCounter)[keyof typeof GuestErrorCounter];

export type GuestErrorCounters = Record<GuestErrorCounter, number>;

export function newCounters(): GuestErrorCounters {
  const c = {} as GuestErrorCounters;
  for (const k of Object.values(GuestErrorCounter)) c[k] = 0;
  return c;
}
