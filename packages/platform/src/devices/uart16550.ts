// UART 16550A (TI/National PC16550D datasheet; the register use of Linux's
// drivers/tty/serial/8250, and QEMU's hw/char/serial.c for emulation
// choices): eight byte-wide registers, DLAB-banked divisor latch, 16-byte
// FIFOs with the four receive trigger levels, the four interrupt sources in
// IIR priority order, loopback, and modem status. Transmission is instant:
// THR and the transmitter are always empty again after a write, so THRE and
// TEMT stay set and a THRE interrupt follows every write (as in QEMU). Host
// input waits in a bounded queue and enters the receive FIFO as it drains,
// so the guest never sees an overrun from the host (flow control).
import * as z from "../zod.js";
import { parseConfig, parseState } from "./errors.js";
import type { AccessCounters, AccessSize, IrqLine, MmioDevice } from "./types.js";
import { low32, NO_IRQ } from "./types.js";

/** Register offsets (PC16550D table 2). */
export const UART_RBR = 0; // read: receiver buffer (DLAB=0)
export const UART_THR = 0; // write: transmitter holding (DLAB=0)
export const UART_DLL = 0; // divisor latch low (DLAB=1)
export const UART_IER = 1; // interrupt enable (DLAB=0)
export const UART_DLM = 1; // divisor latch high (DLAB=1)
export const UART_IIR = 2; // read: interrupt identification
export const UART_FCR = 2; // write: FIFO control
export const UART_LCR = 3; // line control; bit 7 = DLAB
export const UART_MCR = 4; // modem control
export const UART_LSR = 5; // line status
export const UART_MSR = 6; // modem status
export const UART_SCR = 7; // scratch

export const IER_RDI = 0x01; // received data available
export const IER_THRI = 0x02; // THR empty
export const IER_RLSI = 0x04; // receiver line status
export const IER_MSI = 0x08; // modem status

export const IIR_NO_INT = 0x01;
export const IIR_MSI = 0x00;
export const IIR_THRI = 0x02;
export const IIR_RDI = 0x04;
export const IIR_RLSI = 0x06;
export const IIR_CTI = 0x0c; // character timeout (FIFO mode)
export const IIR_FIFO_ENABLED = 0xc0;

export const FCR_ENABLE = 0x01;
export const FCR_CLEAR_RX = 0x02;
export const FCR_CLEAR_TX = 0x04;

export const LCR_DLAB = 0x80;

export const MCR_DTR = 0x01;
export const MCR_RTS = 0x02;
export const MCR_OUT1 = 0x04;
export const MCR_OUT2 = 0x08;
export const MCR_LOOP = 0x10;

export const LSR_DR = 0x01;
export const LSR_OE = 0x02;
export const LSR_PE = 0x04;
export const LSR_FE = 0x08;
export const LSR_BI = 0x10;
export const LSR_THRE = 0x20;
export const LSR_TEMT = 0x40;
const LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI;

export const MSR_DCTS = 0x01;
export const MSR_DDSR = 0x02;
export const MSR_TERI = 0x04;
export const MSR_DDCD = 0x08;
export const MSR_CTS = 0x10;
export const MSR_DSR = 0x20;
export const MSR_RI = 0x40;
export const MSR_DCD = 0x80;

export const UART_FIFO_SIZE = 16;

function loopbackMsr(mcr: number): number {
  return (
    (mcr & MCR_RTS ? MSR_CTS : 0) |
    (mcr & MCR_DTR ? MSR_DSR : 0) |
    (mcr & MCR_OUT1 ? MSR_RI : 0) |
    (mcr & MCR_OUT2 ? MSR_DCD : 0)
  );
}
const RX_TRIGGER = [1, 4, 8, 14] as const; // FCR bits 7:6 (PC16550D table 5)

export const UartConfigSchema = z.object({
  /** Host input bytes held while the receive FIFO is full; more are dropped and counted. */
  inputLimit: z._default(z.int().check(z.minimum(1), z.maximum(64 << 20)), 1 << 20),
});
export type UartConfig = z.input<typeof UartConfigSchema>;

export interface UartOptions extends UartConfig {
  /** The interrupt line (PLIC source 10 on virt). */
  readonly irq?: IrqLine;
  /** Receives each transmitted byte (not called in loopback mode). */
  readonly onTransmit?: (bytes: Uint8Array) => void;
}

const byte = z.int().check(z.minimum(0), z.maximum(255));
export const UartStateSchema = z.object({
  version: z.literal(1),
  ier: byte,
  fcr: byte,
  lcr: byte,
  mcr: byte,
  /** Error bits of LSR not yet read (OE/PE/FE/BI). */
  lsrErrors: byte,
  msr: byte,
  scr: byte,
  dll: byte,
  dlm: byte,
  thrIpending: z.boolean(),
  rx: z.array(byte).check(z.maxLength(UART_FIFO_SIZE)),
  input: z.array(byte).check(z.maxLength(64 << 20)),
});
export type UartState = z.infer<typeof UartStateSchema>;

export interface UartCounters extends AccessCounters {
  /** Host input bytes dropped because the input queue was full. */
  inputDropped: number;
  /** Bytes lost to receive overrun (loopback only). */
  overruns: number;
  txBytes: number;
  rxBytes: number;
}

export class Uart16550 implements MmioDevice {
  readonly counters: UartCounters = { badAccesses: 0, inputDropped: 0, overruns: 0, txBytes: 0, rxBytes: 0 };
  private readonly irqLine: IrqLine;
  private readonly onTransmit: ((bytes: Uint8Array) => void) | undefined;
  private readonly inputLimit: number;
  private irqLevel = false;

  private ier = 0;
  private fcr = 0;
  private lcr = 0;
  private mcr = MCR_OUT2; // QEMU's reset value
  private lsrErrors = 0;
  private msr = MSR_DCD | MSR_DSR | MSR_CTS; // no modem: carrier, data set ready, clear to send (as QEMU)
  private scr = 0;
  private dll = 0x0c; // 9600 baud at 1.8432 MHz, a reset-like default
  private dlm = 0;
  private thrIpending = false;
  private rx: number[] = [];
  /** Host bytes not yet in the FIFO: chunks consumed from `inputHead`. */
  private input: Uint8Array[] = [];
  private inputHead = 0;
  private inputLength = 0;

  constructor(options: UartOptions = {}) {
    const c = parseConfig(UartConfigSchema, { inputLimit: options.inputLimit }, "uart");
    this.inputLimit = c.inputLimit;
    this.irqLine = options.irq ?? NO_IRQ;
    this.onTransmit = options.onTransmit;
  }

  /** Queues bytes from the host for the guest to read. Returns how many were accepted. */
  pushInput(bytes: Uint8Array): number {
    const room = this.inputLimit - this.inputLength;
    const n = Math.min(room, bytes.length);
    this.counters.inputDropped += bytes.length - n;
    if (n > 0) {
      this.input.push(bytes.slice(0, n));
      this.inputLength += n;
      this.refill();
      this.update();
    }
    return n;
  }

  /** Host bytes waiting behind the receive FIFO. */
  get inputPending(): number {
    return this.inputLength;
  }

  /**
   * The guest's driver takes input: the received-data interrupt is enabled
   * (Linux's 8250 driver enables it when the tty is opened, after its probe
   * and startup have cleared the FIFOs). A VMM can hold host input until then.
   */
  get receiving(): boolean {
    return (this.ier & IER_RDI) !== 0;
  }

  /** FIFO mode (FCR bit 0): a 16-byte receive FIFO instead of the one-byte RBR. */
  get fifoEnabled(): boolean {
    return (this.fcr & FCR_ENABLE) !== 0;
  }

  read(offset: number, size: AccessSize): number {
    if (size !== 1 || offset < 0 || offset > 7) {
      this.counters.badAccesses++;
      return 0;
    }
    switch (offset) {
      case UART_RBR: {
        if (this.lcr & LCR_DLAB) return this.dll;
        const b = this.rx.shift() ?? 0;
        this.refill();
        this.update();
        return b;
      }
      case UART_IER:
        return this.lcr & LCR_DLAB ? this.dlm : this.ier;
      case UART_IIR: {
        const iir = this.iir();
        // Reading IIR while it reports THRE clears that interrupt (PC16550D table 4).
        if ((iir & 0x0f) === IIR_THRI) {
          this.thrIpending = false;
          this.update();
        }
        return iir | (this.fcr & FCR_ENABLE ? IIR_FIFO_ENABLED : 0);
      }
      case UART_LCR:
        return this.lcr;
      case UART_MCR:
        return this.mcr;
      case UART_LSR: {
        const lsr = this.lsr();
        if (this.lsrErrors) {
          this.lsrErrors = 0; // error bits clear on read
          this.update();
        }
        return lsr;
      }
      case UART_MSR: {
        // Loopback (PC16550D §8.6): the modem outputs read back as inputs,
        // without delta bits (as QEMU; Linux's loopback probe reads only 7:4).
        if (this.mcr & MCR_LOOP) return loopbackMsr(this.mcr);
        const msr = this.msr;
        if (msr & 0x0f) {
          this.msr &= 0xf0; // delta bits clear on read
          this.update();
        }
        return msr;
      }
      default:
        return this.scr;
    }
  }

  write(offset: number, size: AccessSize, value: number | bigint): void {
    if (size !== 1 || offset < 0 || offset > 7) {
      this.counters.badAccesses++;
      return;
    }
    const v = low32(value) & 0xff;
    switch (offset) {
      case UART_THR:
        if (this.lcr & LCR_DLAB) this.dll = v;
        else this.transmit(v);
        break;
      case UART_IER:
        if (this.lcr & LCR_DLAB) {
          this.dlm = v;
        } else {
          const changed = (this.ier ^ v) & 0x0f;
          this.ier = v & 0x0f;
          // Enabling ETBEI with THR empty raises THRE at once (as QEMU and the 8250 THRE test expect).
          if (changed & IER_THRI && this.ier & IER_THRI) this.thrIpending = true;
        }
        break;
      case UART_FCR: {
        const enable = v & FCR_ENABLE;
        if (enable !== (this.fcr & FCR_ENABLE)) this.rx.length = 0; // changing FIFO mode resets both FIFOs
        if (enable && v & FCR_CLEAR_RX) this.rx.length = 0;
        this.fcr = enable ? v & 0xc9 : 0;
        this.refill();
        break;
      }
      case UART_LCR:
        this.lcr = v;
        break;
      case UART_MCR:
        this.mcr = v & 0x1f;
        this.refill();
        break;
      case UART_LSR:
        break; // LSR is read-only here (factory test register on the 16550)
      case UART_MSR:
        break; // read-only
      default:
        this.scr = v;
    }
    this.update();
  }

  private transmit(b: number): void {
    this.counters.txBytes++;
    if (this.mcr & MCR_LOOP) {
      if (this.rx.length < this.rxCapacity()) {
        this.rx.push(b);
      } else {
        // Overrun (PC16550D LSR bit 1): without FIFOs the new character replaces
        // the unread one in RBR; with FIFOs it is lost in the shift register.
        if (!(this.fcr & FCR_ENABLE)) this.rx[0] = b;
        this.lsrErrors |= LSR_OE;
        this.counters.overruns++;
      }
    } else {
      this.onTransmit?.(Uint8Array.of(b));
    }
    this.thrIpending = true; // the byte left at once: THR empty again
  }

  private rxCapacity(): number {
    return this.fcr & FCR_ENABLE ? UART_FIFO_SIZE : 1;
  }

  /** Moves host input into the receive FIFO while there is room (not in loopback: the line is disconnected). */
  private refill(): void {
    if (this.mcr & MCR_LOOP) return;
    const cap = this.rxCapacity();
    while (this.rx.length < cap && this.inputLength > 0) {
      const chunk = this.input[0];
      this.rx.push(chunk[this.inputHead++]);
      this.inputLength--;
      this.counters.rxBytes++;
      if (this.inputHead === chunk.length) {
        this.input.shift();
        this.inputHead = 0;
      }
    }
  }

  private lsr(): number {
    return (this.rx.length ? LSR_DR : 0) | LSR_THRE | LSR_TEMT | this.lsrErrors;
  }

  /** The pending interrupt of highest priority (PC16550D table 4), without FIFO bits. */
  private iir(): number {
    if (this.ier & IER_RLSI && this.lsrErrors & LSR_ERRORS) return IIR_RLSI;
    if (this.ier & IER_RDI && this.rx.length) {
      if (!(this.fcr & FCR_ENABLE)) return IIR_RDI;
      // FIFO mode: data at the trigger level, else a character timeout (raised at
      // once: the emulated line has no character times to wait for).
      return this.rx.length >= RX_TRIGGER[this.fcr >> 6] ? IIR_RDI : IIR_CTI;
    }
    if (this.ier & IER_THRI && this.thrIpending) return IIR_THRI;
    if (this.ier & IER_MSI && !(this.mcr & MCR_LOOP) && this.msr & 0x0f) return IIR_MSI;
    return IIR_NO_INT;
  }

  private update(): void {
    const level = !(this.iir() & IIR_NO_INT);
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irqLine.set(level);
    }
  }

  state(): UartState {
    const input: number[] = [];
    this.input.forEach((chunk, i) => {
      for (let j = i === 0 ? this.inputHead : 0; j < chunk.length; j++) input.push(chunk[j]);
    });
    return {
      version: 1,
      ier: this.ier,
      fcr: this.fcr,
      lcr: this.lcr,
      mcr: this.mcr,
      lsrErrors: this.lsrErrors,
      msr: this.msr,
      scr: this.scr,
      dll: this.dll,
      dlm: this.dlm,
      thrIpending: this.thrIpending,
      rx: [...this.rx],
      input,
    };
  }

  static fromState(state: unknown, options: UartOptions = {}): Uart16550 {
    const s = parseState(UartStateSchema, state, "uart");
    const u = new Uart16550(options);
    u.ier = s.ier & 0x0f;
    u.fcr = s.fcr & FCR_ENABLE ? s.fcr & 0xc9 : 0;
    u.lcr = s.lcr;
    u.mcr = s.mcr & 0x1f;
    u.lsrErrors = s.lsrErrors & LSR_ERRORS;
    u.msr = s.msr;
    u.scr = s.scr;
    u.dll = s.dll;
    u.dlm = s.dlm;
    u.thrIpending = s.thrIpending;
    u.rx = s.rx.slice(0, u.rxCapacity());
    if (s.input.length) {
      const n = Math.min(s.input.length, u.inputLimit);
      u.input = [Uint8Array.from(s.input.slice(0, n))];
      u.inputLength = n;
    }
    u.update();
    return u;
  }
}
