// The boundary between a transport and a device model. A device model knows
// its device type (queues, config space, requests) and nothing about the
// transport or the hypervisor; the transport hands it a context at DRIVER_OK.
import type { GuestErrorCounter } from "./counters.js";
import { VirtioError, VirtioErrorCode } from "./errors.js";
import type { GuestMemory } from "./memory.js";
import type { SplitQueue } from "./virtqueue.js";

/** What an activated device may use. Valid until the next reset (`live` turns false). */
export interface VirtioDeviceContext {
  readonly memory: GuestMemory;
  /** Negotiated feature bits. */
  readonly features: bigint;
  readonly queues: readonly SplitQueue[];
  /** False once the device was reset: drop late completions. */
  readonly live: boolean;
  hasFeature(bit: number): boolean;
  /** Call after pushing used elements: raises the used-buffer interrupt unless the driver suppressed it. */
  signalUsed(queue: SplitQueue): void;
  /** Records a guest error that the device handled itself (request failed with a status). */
  count(counter: GuestErrorCounter): void;
  /** Records a guest error that breaks the device: DEVICE_NEEDS_RESET (§2.1.2). */
  fail(counter: GuestErrorCounter): void;
}

/** What the transport offers a device at bind time. */
export interface VirtioDeviceHost {
  /** The device changed its config space: bump ConfigGeneration, notify the driver (§2.5). */
  configChanged(): void;
}

/** Base class of every device model. */
export abstract class VirtioDevice {
  /** Device ID (§5). */
  abstract readonly deviceId: number;
  /** Device-type feature bits offered; the transport adds VERSION_1, INDIRECT_DESC and EVENT_IDX. */
  abstract readonly deviceFeatures: bigint;
  /** QueueNumMax of each virtqueue, by queue index. */
  abstract readonly queueMaxSizes: readonly number[];
  /** Device configuration space, little-endian, kept current by the device. */
  abstract readonly config: Uint8Array;
  protected active: VirtioDeviceContext | undefined;
  private host: VirtioDeviceHost | undefined;

  /** Called once by the transport that exposes this device. */
  bind(host: VirtioDeviceHost): void {
    if (this.host)
      throw new VirtioError(
        VirtioErrorCode.INVALID_STATE,
        { deviceId: this.deviceId },
        "device already bound to a transport",
      );
    this.host = host;
  }

  /** DRIVER_OK was set: start serving the queues. */
  activate(ctx: VirtioDeviceContext): void {
    this.active = ctx;
    this.onActivate(ctx);
  }

  /** The driver reset the device (§2.4): forget in-flight work and negotiated state. */
  reset(): void {
    this.active = undefined;
    this.onReset();
  }

  /** The driver notified queue `queueIndex` (only called while active). */
  abstract notify(queueIndex: number): void;

  /**
   * A driver write to the config space (offset relative to the config start).
   * Returns false when the field is read-only (the transport counts it).
   */
  writeConfig(_offset: number, _size: number, _value: number): boolean {
    return false;
  }

  protected onActivate(_ctx: VirtioDeviceContext): void {}
  protected onReset(): void {}

  /** Tells the driver the config space changed. */
  protected configChanged(): void {
    this.host?.configChanged();
  }
}
