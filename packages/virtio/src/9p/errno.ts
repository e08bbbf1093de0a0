// Linux errno numbers (include/uapi/asm-generic/errno-base.h, errno.h) as the
// guest sees them in Rlerror, and the mapping from Node's error codes. The
// guest is Linux whatever the host is, so the numbers are fixed here rather
// than taken from os.constants.errno.
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ETXTBSY: 26,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EMLINK: 31,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EPROTO: 71,
  EOVERFLOW: 75,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  ESTALE: 116,
  EDQUOT: 122,
} as const;
export type ErrnoName = keyof typeof Errno;

const NODE_ALIASES: Readonly<Record<string, ErrnoName>> = { ENOTSUP: "EOPNOTSUPP", EWOULDBLOCK: "EAGAIN" };

/** A guest-visible failure: becomes Rlerror(errno). Internal to the server. */
export class P9Errno extends Error {
  override readonly name = "P9Errno";
  constructor(
    readonly errno: number,
    detail?: string,
  ) {
    super(detail ?? `errno ${errno}`);
  }
}

export function fail(name: ErrnoName, detail?: string): never {
  throw new P9Errno(Errno[name], detail ? `${name}: ${detail}` : name);
}

/** Linux errno for a thrown value: a P9Errno, a Node system error (err.code), else EIO. */
export function errnoOf(err: unknown): number {
  if (err instanceof P9Errno) return err.errno;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string") {
    const name = (code in Errno ? code : NODE_ALIASES[code]) as ErrnoName | undefined;
    if (name !== undefined) return Errno[name];
  }
  return Errno.EIO;
}
