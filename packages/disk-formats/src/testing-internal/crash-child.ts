// Child process for the crash-consistency test: opens a qcow2 image and
// writes, zeroes and discards at random until it is killed.
import { NodeFileHost } from "../io/node-file.js";
import { openImage } from "../open.js";

const [file, seedArg] = process.argv.slice(2);
let x = Number(seedArg) >>> 0 || 1;
const rnd = (n: number) => {
  x ^= x << 13;
  x >>>= 0;
  x ^= x >>> 17;
  x ^= x << 5;
  x >>>= 0;
  return x % n;
};
const img = await openImage(new NodeFileHost(), file!);
const size = img.size();
// "go" once the first write is done: a kill before it (a loaded host) would leave a clean image
await img.write(rnd(size - 70000), new Uint8Array(4096).fill(1));
process.stdout.write("go\n");
for (;;) {
  const off = rnd(size - 70000);
  const op = rnd(10);
  if (op < 7) {
    const d = new Uint8Array(1 + rnd(70000)).fill(1 + rnd(255));
    await img.write(off, d);
  } else if (op < 9) await img.writeZeroes(off, 1 + rnd(70000));
  else await img.discard(off, 1 + rnd(70000));
}
