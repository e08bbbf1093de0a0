// Node entry: everything of the main entry, plus the file-backed I/O layer.
export * from "./index.js";
export { NodeFileHost, NodeFileStore } from "./io/node-file.js";
export { WorkerCompressor, type WorkerCompressorOptions } from "./io/worker-compressor.js";
