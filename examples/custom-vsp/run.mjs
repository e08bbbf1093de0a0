#!/usr/bin/env node
// A micro VM whose child partition has a device of your own, served by a VSP
// of your own: the counter service (counter-vsp.mjs) runs in a worker of the
// parent partition, the paired VSC (counter-vsc.mjs) in the child's
// paravisor presents it to the unmodified Linux guest as a virtio entropy
// device. What `ringzero run --hypervisor micro` does, plus one `vsps` entry.
//
//   node run.mjs --kernel Image [--initrd initramfs] [--memory 256M] [--start N] [--step N]
//                [--kill-on TEXT]   (kill the counter VSP each time the guest prints TEXT)
//
// The console is the 16550 on stdio; input is held until the guest's driver listens.
import { parseArgs } from "node:util";
import { paravisorModuleUrl } from "@ringzero/partition-child";
import { createMicroVm, MicroVmError } from "@ringzero/partition-parent/node";
import { COUNTER_INTERFACE } from "./protocol.mjs";

let o;
try {
  o = parseArgs({
    options: {
      kernel: { type: "string" },
      initrd: { type: "string" },
      memory: { type: "string", default: "256M" },
      start: { type: "string", default: "0" },
      step: { type: "string", default: "1" },
      "kill-on": { type: "string" },
    },
  }).values;
} catch (e) {
  process.stderr.write(`run: ${e.message}\n`);
  process.exit(2);
}
const start = Number(o.start);
const step = Number(o.step);
if (!o.kernel || !Number.isInteger(start) || !Number.isInteger(step)) {
  process.stderr.write(
    "usage: run.mjs --kernel Image [--initrd F] [--memory 256M] [--start N] [--step N] [--kill-on TEXT]\n",
  );
  process.exit(2);
}

// Watching the console for --kill-on (the text may arrive split across writes).
let tail = "";
let vm;
const killOn = o["kill-on"];
const watch = (bytes) => {
  if (!killOn || !vm) return;
  tail = (tail + Buffer.from(bytes).toString("latin1")).slice(-4 * killOn.length);
  if (!tail.includes(killOn)) return;
  tail = "";
  void vm.vsp("kill", "counter").then((r) => process.stderr.write(`run: ${r.message}\n`));
};

try {
  // partition-parent: the microkernel, the parent partition, its VSPs; partition-child: the paravisor.
  vm = await createMicroVm(
    { kernel: o.kernel, initrd: o.initrd, memory: o.memory },
    {
      paravisor: paravisorModuleUrl(),
      consoleOut: (b) => {
        process.stdout.write(b);
        watch(b);
      },
      vsps: [
        {
          name: "counter",
          interfaceId: COUNTER_INTERFACE,
          vsp: { module: new URL("./counter-vsp.mjs", import.meta.url), data: { start, step } },
          vsc: { module: new URL("./counter-vsc.mjs", import.meta.url) },
        },
      ],
    },
  );
} catch (e) {
  process.stderr.write(`run: ${e instanceof MicroVmError ? `${e.code}: ` : ""}${e.message}\n`);
  process.exit(2);
}
process.stdin.on("data", (d) => vm.sendInput(d));
process.stdin.on("end", () => {}); // input may end before the guest reads it: the parent holds it
const r = await vm.start();
const s = await vm.stats();
const counter = s.parent.devices?.counter;
process.stderr.write(`run: powered off (${r.reason}); counter VSP: ${JSON.stringify(counter)}\n`);
process.exit(r.status);
