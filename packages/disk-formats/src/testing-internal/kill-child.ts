// Child process for the kill-by-write-index tests: runs one ringzero-img
// command through a host whose stores count every write and truncate (all
// files together), and SIGKILLs itself just before write number KILL_AT
// (1-based) reaches the kernel; 0 never kills. On a normal exit it prints
// "writes=N code=C" on stdout; the command's own output goes to stderr.
import { runCli } from "../cli/main.js";
import { NodeFileHost } from "../io/node-file.js";
import type { ByteStore, StoreHost } from "../io/store.js";

const [killArg, ...argv] = process.argv.slice(2);
const killAt = Number(killArg);
let writes = 0;
function tick(): void {
  writes++;
  if (writes === killAt) process.kill(process.pid, "SIGKILL");
}

class CountingStore implements ByteStore {
  constructor(private readonly inner: ByteStore) {}
  get name() {
    return this.inner.name;
  }
  get readOnly() {
    return this.inner.readOnly;
  }
  size() {
    return this.inner.size();
  }
  read(o: number, b: Uint8Array) {
    return this.inner.read(o, b);
  }
  write(o: number, d: Uint8Array) {
    tick();
    return this.inner.write(o, d);
  }
  truncate(n: number) {
    tick();
    return this.inner.truncate(n);
  }
  flush() {
    return this.inner.flush();
  }
  close() {
    return this.inner.close();
  }
}

// Not fsynced: a killed process loses nothing it wrote (the page cache keeps it), so every
// write before the kill is on "disk" and none after it.
const inner = new NodeFileHost({ sync: false });
const host: StoreHost = {
  open: async (name, options) => new CountingStore(await inner.open(name, options)),
  create: async (name) => new CountingStore(await inner.create(name)),
  resolve: (base, name) => inner.resolve(base, name),
  canonical: (name) => inner.canonical(name),
  exists: (name) => inner.exists(name),
  remove: (name) => inner.remove(name),
};
const err = (s: string) => process.stderr.write(s);
const code = await runCli(argv, { stdout: err, stderr: err, isTTY: false, host });
process.stdout.write(`writes=${writes} code=${code}\n`);
