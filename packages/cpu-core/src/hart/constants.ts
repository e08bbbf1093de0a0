// Architectural constants: privilege levels, trap causes, CSR numbers and
// mstatus/mip bits (RISC-V privileged spec 1.12).

export const PRV_U = 0;
export const PRV_S = 1;
export const PRV_M = 3;

/** Exception causes, priv 1.12 §3.1.15 Table 3.6. */
export const Cause = {
  INSN_MISALIGNED: 0,
  INSN_ACCESS: 1,
  ILLEGAL_INSN: 2,
  BREAKPOINT: 3,
  LOAD_MISALIGNED: 4,
  LOAD_ACCESS: 5,
  STORE_MISALIGNED: 6,
  STORE_ACCESS: 7,
  ECALL_U: 8,
  ECALL_S: 9,
  ECALL_M: 11,
  INSN_PAGE_FAULT: 12,
  LOAD_PAGE_FAULT: 13,
  STORE_PAGE_FAULT: 15,
} as const;

/** Interrupt numbers (mip/mie bit positions), priv 1.12 §3.1.9. */
export const Irq = { SSI: 1, MSI: 3, STI: 5, MTI: 7, SEI: 9, MEI: 11 } as const;
export const MIP_SSIP = 1 << 1;
export const MIP_MSIP = 1 << 3;
export const MIP_STIP = 1 << 5;
export const MIP_MTIP = 1 << 7;
export const MIP_SEIP = 1 << 9;
export const MIP_MEIP = 1 << 11;
export const S_INTERRUPTS = MIP_SSIP | MIP_STIP | MIP_SEIP;
export const M_INTERRUPTS = MIP_MSIP | MIP_MTIP | MIP_MEIP;

// mstatus bits (low word), priv 1.12 §3.1.6
export const MSTATUS_SIE = 1 << 1;
export const MSTATUS_MIE = 1 << 3;
export const MSTATUS_SPIE = 1 << 5;
export const MSTATUS_UBE = 1 << 6;
export const MSTATUS_MPIE = 1 << 7;
export const MSTATUS_SPP = 1 << 8;
export const MSTATUS_MPP_SHIFT = 11;
export const MSTATUS_MPP = 3 << 11;
export const MSTATUS_FS_SHIFT = 13;
export const MSTATUS_FS = 3 << 13;
export const MSTATUS_MPRV = 1 << 17;
export const MSTATUS_SUM = 1 << 18;
export const MSTATUS_MXR = 1 << 19;
export const MSTATUS_TVM = 1 << 20;
export const MSTATUS_TW = 1 << 21;
export const MSTATUS_TSR = 1 << 22;
/** Writable mstatus bits (the low word; UXL=SXL=2 and SD are synthesised). */
export const MSTATUS_WRITABLE =
  MSTATUS_SIE |
  MSTATUS_MIE |
  MSTATUS_SPIE |
  MSTATUS_MPIE |
  MSTATUS_SPP |
  MSTATUS_MPP |
  MSTATUS_FS |
  MSTATUS_MPRV |
  MSTATUS_SUM |
  MSTATUS_MXR |
  MSTATUS_TVM |
  MSTATUS_TW |
  MSTATUS_TSR;
/** The sstatus view of mstatus, priv 1.12 §4.1.1. */
export const SSTATUS_MASK = MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_FS | MSTATUS_SUM | MSTATUS_MXR;

/** CSR numbers, priv 1.12 §2.2. */
export const Csr = {
  fflags: 0x001,
  frm: 0x002,
  fcsr: 0x003,
  cycle: 0xc00,
  time: 0xc01,
  instret: 0xc02,
  sstatus: 0x100,
  sie: 0x104,
  stvec: 0x105,
  scounteren: 0x106,
  senvcfg: 0x10a,
  sscratch: 0x140,
  sepc: 0x141,
  scause: 0x142,
  stval: 0x143,
  sip: 0x144,
  stimecmp: 0x14d,
  satp: 0x180,
  mvendorid: 0xf11,
  marchid: 0xf12,
  mimpid: 0xf13,
  mhartid: 0xf14,
  mconfigptr: 0xf15,
  mstatus: 0x300,
  misa: 0x301,
  medeleg: 0x302,
  mideleg: 0x303,
  mie: 0x304,
  mtvec: 0x305,
  mcounteren: 0x306,
  menvcfg: 0x30a,
  mcountinhibit: 0x320,
  mscratch: 0x340,
  mepc: 0x341,
  mcause: 0x342,
  mtval: 0x343,
  mip: 0x344,
  pmpcfg0: 0x3a0,
  pmpaddr0: 0x3b0,
  mseccfg: 0x747,
  tselect: 0x7a0,
  tdata1: 0x7a1,
  tdata2: 0x7a2,
  tdata3: 0x7a3,
  tinfo: 0x7a4,
  mcycle: 0xb00,
  minstret: 0xb02,
} as const;

/** misa for RV64IMAFDCSU: MXL=2 (bit 63), extensions A C D F I M S U. */
export const MISA_EXTENSIONS = (1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20);

/**
 * What the hart implements, as a device tree's `riscv,isa` string: the misa
 * letters plus the multi-letter extensions (Zicsr, Zifencei, Zicntr, Sstc),
 * and its MMU modes (satp.MODE values it accepts: Sv39, Sv48).
 */
export const HART_ISA = "rv64imafdc_zicsr_zifencei_zicntr_sstc";
export const HART_MMU = "sv48";

/** Exceptions that may be delegated to S-mode (medeleg is WARL: ecall-from-M is not delegable). */
export const MEDELEG_WRITABLE = 0xb3ff;
