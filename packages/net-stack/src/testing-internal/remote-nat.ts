// A second process for the cross-process transport test: a VirtualSwitch with
// a UserNet on it, reachable through StreamTransport on 127.0.0.1. Prints its
// port, exits when stdin closes. Run with the ts-loader.mjs hooks.
import { createServer } from "node:net";
import { VirtualSwitch } from "../switch.js";
import { StreamTransport } from "../transport.js";
import { UserNet } from "../user-net.js";

const sw = new VirtualSwitch();
const net = await UserNet.create(JSON.parse(process.argv[2] ?? "{}"));
sw.connect(net);
const server = createServer((sock) => sw.connect(new StreamTransport(sock)));
server.listen(0, "127.0.0.1", () => {
  const a = server.address();
  process.stdout.write(`port ${typeof a === "object" && a ? a.port : 0}\n`);
});
process.stdin.resume();
process.stdin.on("end", () => {
  net.close();
  server.close();
  process.exit(0);
});
