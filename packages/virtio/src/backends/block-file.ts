// A raw image file on the host as a virtio-blk back end (node:fs; the
// package's "./node" entry).
import { type FileHandle, open } from "node:fs/promises";
import { VirtioError, VirtioErrorCode } from "../errors.js";
import { type BlockBackend, checkRange } from "./block.js";

const ZERO_CHUNK = 1 << 20;

/** A raw image file on the host (node:fs). */
export class FileBlockBackend implements BlockBackend {
  private constructor(
    private readonly fh: FileHandle,
    private readonly bytes: number,
    readonly readOnly: boolean,
  ) {}

  /** Opens `path` as a raw disk; its size must be a multiple of 512. */
  static async open(path: string, options: { readOnly?: boolean } = {}): Promise<FileBlockBackend> {
    const readOnly = options.readOnly ?? false;
    let fh: FileHandle;
    try {
      fh = await open(path, readOnly ? "r" : "r+");
    } catch (e) {
      throw new VirtioError(VirtioErrorCode.BACKEND_OPEN_FAILED, { path }, (e as Error).message);
    }
    const st = await fh.stat();
    if (!st.isFile() || st.size % 512 !== 0) {
      await fh.close();
      throw new VirtioError(
        VirtioErrorCode.BACKEND_OPEN_FAILED,
        { path, size: st.size },
        "not a regular file of whole 512-byte sectors",
      );
    }
    return new FileBlockBackend(fh, st.size, readOnly);
  }

  size(): number {
    return this.bytes;
  }

  async readInto(offset: number, buf: Uint8Array): Promise<void> {
    checkRange(this.bytes, offset, buf.length);
    let done = 0;
    while (done < buf.length) {
      const { bytesRead } = await this.fh.read(buf, done, buf.length - done, offset + done);
      if (bytesRead === 0) {
        buf.fill(0, done);
        return;
      }
      done += bytesRead;
    }
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.assertWritable();
    checkRange(this.bytes, offset, data.length);
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.fh.write(data, done, data.length - done, offset + done);
      done += bytesWritten;
    }
  }

  async flush(): Promise<void> {
    if (!this.readOnly) await this.fh.datasync();
  }

  async discard(offset: number, length: number): Promise<void> {
    // node:fs cannot punch holes; zeros are the honest "reads as zeros" result.
    await this.writeZeroes(offset, length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.assertWritable();
    checkRange(this.bytes, offset, length);
    const zeros = new Uint8Array(Math.min(length, ZERO_CHUNK));
    for (let pos = offset; pos < offset + length; pos += zeros.length) {
      await this.write(pos, zeros.subarray(0, Math.min(zeros.length, offset + length - pos)));
    }
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  private assertWritable(): void {
    if (this.readOnly) throw new VirtioError(VirtioErrorCode.INVALID_STATE, {}, "read-only disk");
  }
}
