// A hart's mmio exit served by an MmioMap: the one glue every VMM built from
// cpu-core and this package needs (MmioMap reads are number | bigint, the
// hart completes a read with a bigint; a hole is an access fault).
import type { Hart, HartExit } from "@ringzero/cpu-core";
import type { MmioMap } from "./types.js";

/** Completes `exit` (a hart's `mmio` exit) on `mmio`: the value read or the write done, an access fault for a hole. */
export function serveMmioExit(hart: Hart, mmio: MmioMap, exit: Extract<HartExit, { kind: "mmio" }>): void {
  if (exit.op === "read") {
    const v = mmio.read(exit.address, exit.size);
    if (v === undefined) hart.failMmio();
    else hart.completeMmio(BigInt(v));
  } else if (mmio.write(exit.address, exit.size, exit.value)) {
    hart.completeMmio();
  } else {
    hart.failMmio();
  }
}
