// Popek and Goldberg's three properties of a virtual machine monitor (CACM
// 17(7), 1974), shown under both hypervisors on bare-metal guests built here
// with Debian's riscv64-unknown-elf-gcc:
//  - equivalence: a guest's output and instruction count are identical to
//    bare execution on cpu-core's interpreter (cpu-core/testing's runElf, no
//    hypervisor), in deterministic mode where time comes from instret;
//  - resource control: a guest cannot touch memory or devices it was not
//    given — probes that must fault — and (micro) a child partition cannot
//    reach memory no one granted it;
//  - efficiency: most instructions run without an exit (the share is a
//    `ringzero compare` row, "instructions without an exit").
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildElf, requireTool, runElf } from "@ringzero/cpu-core/testing";
import { HvStatus, ROOT_PARTITION_ID } from "@ringzero/hypervisor-micro";
import { Microkernel } from "@ringzero/hypervisor-micro/node";
import { createVm } from "@ringzero/hypervisor-monolithic/node";
import { paravisorModuleUrl } from "@ringzero/partition-child";
import { createMicroVm } from "@ringzero/partition-parent/node";
import { afterAll, describe, expect, it } from "vitest";
import { HYPERVISORS, type Hypervisor } from "./measures.js";

const dir = mkdtempSync(join(tmpdir(), "rz-pg-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 1024 * 1024;
const MEMORY = 16 * MiB;
const RAM_END = 0x8000_0000 + MEMORY;

/** Start-up, polled UART output (16550 THR/LSR at 0x1000_0000), the SiFive test finisher (0x10_0000). */
const RUNTIME = `
typedef unsigned long u64;
typedef unsigned int u32;
__asm__(".section .text.init\\n.globl _start\\n_start:\\n"
        "  li sp, 0x80100000\\n"
        "  call main\\n"
        "1: j 1b\\n");
#define UART ((volatile unsigned char *)0x10000000UL)
static void putch(char c) { while (!(UART[5] & 0x20)) {} UART[0] = (unsigned char)c; }
static void puts_(const char *s) { while (*s) putch(*s++); }
static void hex(u64 v) { puts_("0x"); for (int i = 60; i >= 0; i -= 4) putch("0123456789abcdef"[(v >> i) & 15]); }
static void pass(void) { *(volatile u32 *)0x100000UL = 0x5555; for (;;) {} }
static u64 rdtime(void) { u64 t; __asm__ volatile("rdtime %0" : "=r"(t)); return t; }
static u64 rdinstret(void) { u64 t; __asm__ volatile("csrr %0, minstret" : "=r"(t)); return t; }
`;

/** Equivalence: integer work whose result depends on time read from the `time` CSR along the way. */
const EQUIVALENCE = `${RUNTIME}
static u32 crc32(const unsigned char *p, int n, u32 c) {
  c = ~c;
  while (n--) { c ^= *p++; for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & -(c & 1)); }
  return ~c;
}
static unsigned char buf[4096];
int main(void) {
  u64 t0 = rdtime();
  u32 c = 0;
  for (int round = 0; round < 8; round++) {
    for (int i = 0; i < 4096; i++) buf[i] = (unsigned char)(i * 31 + round + (rdtime() & 7));
    c = crc32(buf, 4096, c);
    puts_("round "); hex((u64)round); puts_(" crc "); hex(c); puts_(" time "); hex(rdtime()); putch('\\n');
  }
  puts_("elapsed "); hex(rdtime() - t0); puts_(" minstret "); hex(rdinstret()); putch('\\n');
  pass();
  return 0;
}
`;

/** Resource control: a trap handler records each access fault; every probe must trap with the right cause and address. */
const PROBES = `${RUNTIME}
static volatile u64 cause, tval;
__attribute__((interrupt("machine"), aligned(4))) static void trap(void) {
  u64 c, t, pc;
  __asm__ volatile("csrr %0, mcause; csrr %1, mtval; csrr %2, mepc" : "=r"(c), "=r"(t), "=r"(pc));
  cause = c; tval = t;
  pc += (*(volatile unsigned short *)pc & 3) == 3 ? 4 : 2; /* skip the faulting instruction */
  __asm__ volatile("csrw mepc, %0" :: "r"(pc));
}
static void report(const char *name) {
  puts_("probe "); puts_(name); puts_(" cause "); hex(cause); puts_(" tval "); hex(tval); putch('\\n');
  cause = 0; tval = 0;
}
int main(void) {
  __asm__ volatile("csrw mtvec, %0" :: "r"(trap));
  (void)*(volatile u32 *)${RAM_END}UL;               report("load-past-ram");
  *(volatile u32 *)${RAM_END}UL = 1;                 report("store-past-ram");
  (void)*(volatile u32 *)0x30000000UL;               report("load-pcie-ecam");
  *(volatile u32 *)0x40000000UL = 1;                 report("store-pcie-mmio");
  (void)*(volatile u64 *)0x20000000UL;               report("load-flash");
  (void)*(volatile u32 *)0x1000000000UL;             report("load-high");
  (void)*(volatile u32 *)0x80000000UL;               report("load-ram");
  /* virtio-mmio slots: no drive, net or console was given, so every slot says "no device" (DeviceID 0, virtio 1.2 §4.2.2) */
  for (u64 slot = 0; slot < 8; slot++) {
    volatile u32 *r = (volatile u32 *)(0x10001000UL + slot * 0x1000);
    puts_("slot "); hex(slot); puts_(" magic "); hex(r[0]); puts_(" device "); hex(r[2]); putch('\\n');
  }
  pass();
  return 0;
}
`;

interface Outcome {
  output: string;
  instret: number;
  status: number;
  reason: string;
  /** Exits that stopped an instruction (all but budget: a slice ending is no trap). */
  trapExits: number;
}

let files = 0;
async function runUnder(hv: Hypervisor, elf: Uint8Array, deterministic: boolean): Promise<Outcome> {
  let output = "";
  const consoleOut = (b: Uint8Array) => {
    output += Buffer.from(b).toString("latin1");
  };
  const kernel = join(dir, `guest${files++}.elf`);
  writeFileSync(kernel, elf);
  const config = { kernel, memory: MEMORY, bios: "none" as const };
  if (hv === "monolithic") {
    const vm = await createVm(config, { consoleOut, deterministic });
    const r = await vm.start();
    const s = vm.stats();
    const trapExits = Object.entries(s.exits).reduce((a, [k, n]) => a + (k === "budget" ? 0 : n), 0);
    return { output, instret: s.instructions, status: r.status, reason: r.reason, trapExits };
  }
  const vm = await createMicroVm(config, { consoleOut, paravisor: paravisorModuleUrl(), deterministic });
  const r = await vm.start();
  const v = (await vm.stats()).vp;
  const n = (k: string) => v[k] ?? 0;
  return {
    output,
    instret: n("instructions"),
    status: r.status,
    reason: r.reason,
    trapExits: n("exitsMicrokernel") + n("exitsParavisor") + n("exitsIntercept") + n("exitsWfi"),
  };
}

const haveGcc = requireTool("riscv64-unknown-elf-gcc");

describe.skipIf(!haveGcc)("Popek–Goldberg: equivalence", () => {
  const elf = haveGcc ? buildElf(EQUIVALENCE, { lang: "c" }) : new Uint8Array();
  const bare = haveGcc ? runElf(elf, { ramSize: MEMORY }) : undefined;

  it("bare execution on the interpreter passes and reads time from instret", () => {
    expect(bare?.code).toBe(0);
    expect(bare?.output).toMatch(/round 0x0+7 crc 0x[0-9a-f]{16} time/);
    // time = instret / 10 (cpu-core's default time source): elapsed is about a tenth of minstret
    const m = /elapsed 0x([0-9a-f]+) minstret 0x([0-9a-f]+)/.exec(bare?.output ?? "");
    expect(Number.parseInt(m?.[1] ?? "0", 16)).toBeGreaterThan(Number.parseInt(m?.[2] ?? "0", 16) / 11);
  });

  for (const hv of HYPERVISORS) {
    it(`${hv}, deterministic: the same output and instruction count as bare execution`, async () => {
      const r = await runUnder(hv, elf, true);
      expect([r.status, r.reason]).toEqual([0, "finisher-pass"]);
      expect(r.output).toBe(bare?.output);
      expect(r.instret).toBe(bare?.instret);
      if (process.env.RZ_PG_VERBOSE) console.log(hv, r.instret, r.trapExits, `\n${r.output}`);
    }, 60_000);

    it(`${hv}, host time: the guest sees it, so its output differs from bare execution (the check above can fail)`, async () => {
      const r = await runUnder(hv, elf, false);
      expect([r.status, r.reason]).toEqual([0, "finisher-pass"]);
      expect(r.output).not.toBe(bare?.output);
      const times = (o: string) => [...o.matchAll(/ time (0x[0-9a-f]+)/g)].map((m) => m[1]);
      expect(times(r.output)).not.toEqual(times(bare?.output ?? ""));
    }, 60_000);
  }
});

describe.skipIf(!haveGcc)("Popek–Goldberg: resource control", () => {
  const elf = haveGcc ? buildElf(PROBES, { lang: "c" }) : new Uint8Array();
  const probe = (out: string, name: string) => {
    const m = new RegExp(`probe ${name} cause 0x([0-9a-f]+) tval 0x([0-9a-f]+)`).exec(out);
    return m ? { cause: Number.parseInt(m[1], 16), tval: BigInt(`0x${m[2]}`) } : undefined;
  };
  // privileged spec §3.1.15 (mcause): 5 = load access fault, 7 = store/AMO access fault
  const expected: [string, number, bigint][] = [
    ["load-past-ram", 5, BigInt(RAM_END)],
    ["store-past-ram", 7, BigInt(RAM_END)],
    ["load-pcie-ecam", 5, 0x3000_0000n],
    ["store-pcie-mmio", 7, 0x4000_0000n],
    ["load-flash", 5, 0x2000_0000n],
    ["load-high", 5, 0x10_0000_0000n],
  ];
  for (const hv of HYPERVISORS) {
    it(`${hv}: memory past the guest's RAM and devices it was not given fault; its own RAM does not`, async () => {
      const r = await runUnder(hv, elf, false);
      expect([r.status, r.reason], r.output).toEqual([0, "finisher-pass"]);
      for (const [name, cause, tval] of expected) expect(probe(r.output, name), name).toEqual({ cause, tval });
      expect(probe(r.output, "load-ram")).toEqual({ cause: 0, tval: 0n }); // the control: no trap
      const slots = [...r.output.matchAll(/slot 0x0*(\d) magic 0x0*([0-9a-f]+) device 0x0*([0-9a-f]*)\n/g)];
      expect(slots.map((m) => [m[1], m[2], m[3]])).toEqual(
        [..."01234567"].map((n) => [n, "74726976", ""]), // "virt", DeviceID 0
      );
      if (process.env.RZ_PG_VERBOSE) console.log(hv, `\n${r.output}`);
    }, 60_000);
  }

  it("micro: a child partition reaches no memory it was not granted", () => {
    const k = new Microkernel({ memoryLimit: 64 * MiB });
    const child = (name: string) => {
      const c = k.hypercall(ROOT_PARTITION_ID, "CreatePartition", { name });
      if (c.status !== 0) throw new Error("CreatePartition");
      const id = c.value.partitionId;
      const m = k.hypercall(ROOT_PARTITION_ID, "MapGpaPages", {
        partitionId: id,
        gpa: 0x8000_0000,
        size: 2 * MiB,
        kind: "ram",
      });
      expect(m.status).toBe(0);
      return id;
    };
    const a = child("a");
    const b = child("b");
    // a cannot grant itself b's pages, nor map or grant memory of its own accord
    const steal = k.hypercall(a, "GrantPages", {
      partitionId: b,
      gpa: 0x8000_0000,
      size: 4096,
      grantee: a,
      writable: true,
    });
    expect(steal.status).toBe(HvStatus.ACCESS_DENIED);
    expect(
      k.hypercall(a, "MapGpaPages", { partitionId: a, gpa: 0x9000_0000, size: 4096, kind: "private" }).status,
    ).toBe(HvStatus.ACCESS_DENIED);
    // a grant of b's pages to the root is not a's to accept
    const g = k.hypercall(ROOT_PARTITION_ID, "GrantPages", {
      partitionId: b,
      gpa: 0x8000_0000,
      size: 4096,
      grantee: ROOT_PARTITION_ID,
      writable: true,
    });
    expect(g.status).toBe(0);
    if (g.status !== 0) return;
    expect(k.hypercall(a, "AcceptGrant", { grantId: g.value.grantId }).status).toBe(HvStatus.ACCESS_DENIED);
    // deterministic mode is a typed boot parameter, checked like the others
    const boot = { pc: 0x8000_0000, mode: "machine", deterministic: "yes" } as unknown as {
      pc: number;
      mode: "machine";
    };
    expect(k.hypercall(ROOT_PARTITION_ID, "CreateVp", { partitionId: a, vpIndex: 0, boot, paravisor: "" }).status).toBe(
      HvStatus.INVALID_PARAMETER,
    );
  });
});

describe.skipIf(!haveGcc)("Popek–Goldberg: efficiency", () => {
  const elf = haveGcc ? buildElf(EQUIVALENCE, { lang: "c" }) : new Uint8Array();
  for (const hv of HYPERVISORS) {
    it(`${hv}: all but a few of the guest's instructions run without an exit`, async () => {
      const r = await runUnder(hv, elf, true);
      // the exits are the UART's (two per character: LSR, THR) and the finisher's
      const chars = r.output.length;
      expect(r.trapExits).toBeGreaterThanOrEqual(chars);
      expect(r.trapExits).toBeLessThanOrEqual(2 * chars + 2);
      expect(1 - r.trapExits / r.instret).toBeGreaterThan(0.99);
    }, 60_000);
  }
});
