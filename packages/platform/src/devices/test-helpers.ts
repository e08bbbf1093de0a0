// Test doubles shared by the device tests (not exported from the package).
import type { IrqLine } from "./types.js";

/** An IrqLine that records its level and every edge. */
export class RecordingLine implements IrqLine {
  level = false;
  edges = 0;
  set(level: boolean): void {
    if (level !== this.level) this.edges++;
    this.level = level;
  }
}
