// Node entry: the file-backed I/O layer.
export { NodeFileHost, NodeFileStore } from "./io/node-file.js";
