// The child partition's paravisor (vmbus.md §3.3: OpenHCL's place in the
// partition): it runs in the VP's thread at a higher privilege than the
// guest and emulates, for the unmodified guest, the devices of QEMU virt's
// board that are neither the microkernel's (PLIC, CLINT) nor intercepted by
// the parent (UART, finisher): the goldfish RTC and the eight virtio-mmio
// slots.
import type { Paravisor, ParavisorContext } from "@ringzero/hypervisor-micro";
import { EmptyVirtioSlot, GoldfishRtc, VIRT } from "@ringzero/platform";
import { z } from "zod";

export const ParavisorDataSchema = z
  .object({
    /** virtio devices by slot (filled by the parent from the VmConfig). */
    devices: z.array(z.object({ slot: z.number().int().min(0).max(7), kind: z.string() }).strict()).max(8),
  })
  .strict();
export type ParavisorData = z.output<typeof ParavisorDataSchema>;

export function createParavisor(ctx: ParavisorContext): Paravisor {
  ParavisorDataSchema.parse(ctx.data);
  const rtc = new GoldfishRtc({
    irq: ctx.irq(VIRT.rtc.irq),
    clock: () => BigInt(Date.now()) * 1_000_000n,
  });
  ctx.addMmio("rtc", VIRT.rtc.base, VIRT.rtc.size, rtc);
  for (let slot = 0; slot < VIRT.virtio.count; slot++) {
    ctx.addMmio(`virtio${slot}`, VIRT.virtio.base + slot * VIRT.virtio.stride, VIRT.virtio.size, new EmptyVirtioSlot());
  }
  return {
    poll: () => rtc.poll(),
    nextDeadlineMs: () => rtc.nanosUntilAlarm() / 1e6,
  };
}
