// Versioned, zod-validated state of a UserNet that outlives host sockets: the
// DHCP leases (STYLE.md 3). Live NAT flows are tied to host sockets and are not
// part of it; a restored stack starts with none.

import { NetError, NetErrorCode } from "./errors.js";
import * as z from "./zod.js";

export const UserNetStateSchema = z.object({
  version: z.literal(1),
  leases: z
    .array(
      z.object({
        mac: z.string().check(z.regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/)),
        ip: z.ipv4(),
        /** Expiry as milliseconds since the Unix epoch. */
        expiresAt: z.int().check(z.nonnegative()),
      }),
    )
    .check(z.maxLength(65536)),
});
export type UserNetState = z.infer<typeof UserNetStateSchema>;

export function parseUserNetState(input: unknown): UserNetState {
  const r = UserNetStateSchema.safeParse(input);
  if (!r.success) throw new NetError(NetErrorCode.STATE_INVALID, { issues: r.error.issues.map((i) => i.message) });
  return r.data;
}
