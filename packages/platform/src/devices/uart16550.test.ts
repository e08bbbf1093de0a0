import { describe, expect, it } from "vitest";
import { PlatformError } from "./errors.js";
import { RecordingLine } from "./test-helpers.js";
import {
  FCR_CLEAR_RX,
  FCR_ENABLE,
  IER_MSI,
  IER_RDI,
  IER_RLSI,
  IER_THRI,
  IIR_CTI,
  IIR_FIFO_ENABLED,
  IIR_NO_INT,
  IIR_RDI,
  IIR_RLSI,
  IIR_THRI,
  LCR_DLAB,
  LSR_DR,
  LSR_OE,
  LSR_TEMT,
  LSR_THRE,
  MCR_DTR,
  MCR_LOOP,
  MCR_OUT2,
  MCR_RTS,
  MSR_CTS,
  MSR_DCD,
  MSR_DSR,
  UART_DLL,
  UART_DLM,
  UART_FCR,
  UART_IER,
  UART_IIR,
  UART_LCR,
  UART_LSR,
  UART_MCR,
  UART_MSR,
  UART_RBR,
  UART_SCR,
  UART_THR,
  Uart16550,
} from "./uart16550.js";

function board(inputLimit?: number) {
  const irq = new RecordingLine();
  const out: number[] = [];
  const uart = new Uart16550({ irq, onTransmit: (b) => out.push(...b), inputLimit });
  const r = (off: number) => uart.read(off, 1);
  const w = (off: number, v: number) => uart.write(off, 1, v);
  return { uart, irq, out, r, w };
}
const text = (s: string) => new TextEncoder().encode(s);

describe("UART 16550A", () => {
  it("transmits THR bytes to the host, with THRE and TEMT always set", () => {
    const { out, r, w } = board();
    expect(r(UART_LSR) & (LSR_THRE | LSR_TEMT)).toBe(LSR_THRE | LSR_TEMT);
    for (const b of text("hi\n")) w(UART_THR, b);
    expect(Buffer.from(out).toString()).toBe("hi\n");
    expect(r(UART_LSR) & LSR_DR).toBe(0);
  });

  it("banks the divisor latch behind DLAB and keeps IER/RBR apart", () => {
    const { out, r, w } = board();
    w(UART_IER, IER_RDI);
    w(UART_LCR, LCR_DLAB | 0x03);
    w(UART_DLL, 0x01);
    w(UART_DLM, 0x02);
    expect(r(UART_DLL)).toBe(1);
    expect(r(UART_DLM)).toBe(2);
    w(UART_LCR, 0x03);
    expect(r(UART_IER)).toBe(IER_RDI);
    expect(r(UART_LCR)).toBe(3);
    expect(out).toEqual([]); // DLL writes are not transmitted
    w(UART_SCR, 0xa5);
    expect(r(UART_SCR)).toBe(0xa5);
  });

  it("raises THRE when ETBEI is enabled, clears it on IIR read, raises it again after each write (8250 THRE test)", () => {
    const { irq, r, w } = board();
    expect(r(UART_IIR)).toBe(IIR_NO_INT);
    w(UART_IER, IER_THRI);
    expect(irq.level).toBe(true);
    expect(r(UART_IIR)).toBe(IIR_THRI);
    expect(irq.level).toBe(false);
    expect(r(UART_IIR)).toBe(IIR_NO_INT);
    w(UART_IER, 0);
    w(UART_IER, IER_THRI);
    expect(r(UART_IIR)).toBe(IIR_THRI);
    w(UART_THR, 0x41);
    expect(irq.level).toBe(true);
    w(UART_IER, 0);
    expect(irq.level).toBe(false);
  });

  it("receives host input through the FIFO with trigger levels and character timeout", () => {
    const { uart, irq, r, w } = board();
    w(UART_FCR, FCR_ENABLE | FCR_CLEAR_RX | 0x80); // trigger 8
    w(UART_IER, IER_RDI);
    expect(r(UART_IIR)).toBe(IIR_NO_INT | IIR_FIFO_ENABLED);
    uart.pushInput(text("abc"));
    expect(irq.level).toBe(true);
    expect(r(UART_IIR)).toBe(IIR_CTI | IIR_FIFO_ENABLED); // below trigger
    uart.pushInput(text("defghijklmnopqrstuvwxyz"));
    expect(uart.inputPending).toBe(26 - 16);
    expect(r(UART_IIR)).toBe(IIR_RDI | IIR_FIFO_ENABLED);
    let got = "";
    while (r(UART_LSR) & LSR_DR) got += String.fromCharCode(r(UART_RBR));
    expect(got).toBe("abcdefghijklmnopqrstuvwxyz");
    expect(irq.level).toBe(false);
    expect(r(UART_RBR)).toBe(0); // empty
  });

  it("holds one byte at a time without FIFOs (flow control, no overrun)", () => {
    const { uart, r, w } = board();
    w(UART_IER, IER_RDI);
    uart.pushInput(text("xy"));
    expect(r(UART_IIR)).toBe(IIR_RDI);
    expect(r(UART_RBR)).toBe(0x78);
    expect(r(UART_RBR)).toBe(0x79);
    expect(r(UART_LSR) & (LSR_DR | LSR_OE)).toBe(0);
  });

  it("FCR clear-RX and FIFO mode changes discard received bytes", () => {
    const { uart, r, w } = board();
    w(UART_FCR, FCR_ENABLE);
    uart.pushInput(text("12345"));
    w(UART_FCR, FCR_ENABLE | FCR_CLEAR_RX);
    expect(r(UART_LSR) & LSR_DR).toBe(0);
    uart.pushInput(text("6"));
    w(UART_FCR, 0);
    expect(r(UART_LSR) & LSR_DR).toBe(0);
  });

  it("resets like QEMU's 16550: MCR=OUT2, LSR=THRE|TEMT, MSR=DCD|DSR|CTS, IIR=no interrupt", () => {
    const { r } = board();
    expect([UART_IER, UART_IIR, UART_LCR, UART_MCR, UART_LSR, UART_MSR].map(r)).toEqual([
      0,
      IIR_NO_INT,
      0,
      MCR_OUT2,
      LSR_THRE | LSR_TEMT,
      MSR_DCD | MSR_DSR | MSR_CTS,
    ]);
  });

  it("loops TX back to RX, maps MCR to MSR, reports overrun as a line-status interrupt", () => {
    const { out, irq, r, w } = board();
    w(UART_MCR, MCR_LOOP);
    expect(r(UART_MSR)).toBe(0);
    w(UART_MCR, MCR_LOOP | MCR_RTS | MCR_OUT2);
    expect(r(UART_MSR)).toBe(MSR_CTS | MSR_DCD); // Linux's 8250 loopback probe expects 0x90
    w(UART_IER, IER_RLSI | IER_RDI | IER_MSI);
    expect(r(UART_IIR)).toBe(IIR_NO_INT); // no modem-status deltas in loopback
    w(UART_THR, 0x55);
    expect(out).toEqual([]);
    expect(r(UART_IIR)).toBe(IIR_RDI);
    w(UART_THR, 0x66); // holding register full: overrun
    expect(irq.level).toBe(true);
    expect(r(UART_IIR)).toBe(IIR_RLSI);
    expect(r(UART_LSR) & LSR_OE).toBe(LSR_OE);
    expect(r(UART_LSR) & LSR_OE).toBe(0); // cleared by the read
    expect(r(UART_RBR)).toBe(0x66); // without FIFOs the overrunning byte replaces the unread one
    w(UART_MCR, MCR_DTR);
    expect(r(UART_MSR) & 0xf0).toBe(MSR_CTS | MSR_DSR | MSR_DCD);
    expect(r(UART_IIR)).toBe(IIR_NO_INT);
  });

  it("does not feed host input into the receiver while in loopback", () => {
    const { uart, r, w } = board();
    w(UART_MCR, MCR_LOOP);
    uart.pushInput(text("z"));
    expect(r(UART_LSR) & LSR_DR).toBe(0);
    w(UART_MCR, 0);
    expect(r(UART_RBR)).toBe(0x7a);
  });

  it("bounds host input and counts drops", () => {
    const { uart } = board(4);
    expect(uart.pushInput(text("abcdefgh"))).toBe(4);
    expect(uart.counters.inputDropped).toBe(4);
  });

  it("counts garbage accesses and never throws", () => {
    const { uart, r } = board();
    expect(uart.read(0, 4)).toBe(0);
    expect(uart.read(8, 1)).toBe(0);
    expect(uart.read(-1, 1)).toBe(0);
    uart.write(0, 2, 0x4141);
    uart.write(0xff, 1, 1);
    expect(uart.counters.badAccesses).toBe(5);
    uart.write(UART_LSR, 1, 0);
    uart.write(UART_MSR, 1, 0xff);
    expect(r(UART_LSR) & (LSR_THRE | LSR_TEMT)).toBe(LSR_THRE | LSR_TEMT);
    expect(() => new Uart16550({ inputLimit: 0 })).toThrow(PlatformError);
  });

  it("round-trips its state with FIFO contents and queued input", () => {
    const { uart, w } = board();
    w(UART_FCR, FCR_ENABLE | 0x40);
    w(UART_IER, IER_RDI | IER_THRI);
    w(UART_LCR, 0x03);
    w(UART_SCR, 7);
    uart.pushInput(text("0123456789abcdefXYZ"));
    uart.read(UART_RBR, 1);
    const st = JSON.parse(JSON.stringify(uart.state()));
    const irq = new RecordingLine();
    const copy = Uart16550.fromState(st, { irq });
    expect(copy.state()).toEqual(st);
    expect(irq.level).toBe(true);
    let got = "";
    while (copy.read(UART_LSR, 1) & LSR_DR) got += String.fromCharCode(copy.read(UART_RBR, 1));
    expect(got).toBe("123456789abcdefXYZ");
    expect(() => Uart16550.fromState({ ...st, rx: [256] })).toThrow(PlatformError);
  });
});
