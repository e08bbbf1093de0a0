// Node's network back ends for the parent partition: @ringzero/net-stack's
// user-mode NAT (with pcap to a file, a switch others join over a socket) or a
// link to another process's switch (ParentHost.openNet).
import type { NetBackend } from "@ringzero/net-stack";
import * as ns from "@ringzero/net-stack/node";
import type { VmConfig } from "@ringzero/platform";
import type { Opening } from "./host.js";

export async function openNodeNet(
  net: VmConfig["net"],
  opening: Opening,
  closers: (() => void | Promise<void>)[],
): Promise<NetBackend> {
  let backend: NetBackend;
  if (net.mode === "user") {
    const user = await opening("net user", undefined, () =>
      ns.UserNet.create({
        network: net.network,
        gateway: net.gateway,
        dns: net.dns,
        dhcpStart: net.dhcpStart,
        restrict: net.restrict,
        dnsUpstream: net.dnsUpstream,
        hostForwards: net.hostfwd.map((f) => ({
          protocol: f.protocol,
          hostPort: f.hostPort,
          guestPort: f.guestPort,
        })),
      }),
    );
    closers.push(() => user.close());
    backend = user;
    if (net.pcap) {
      const file = net.pcap;
      const pcap = await opening("net pcap", file, () => new ns.PcapWriter(file));
      closers.push(() => pcap.close());
      backend = ns.capture(user, pcap);
    }
    if (net.listen) {
      // The NIC and the NAT on a switch in the parent; other processes' NICs join through the endpoint.
      const sw = new ns.VirtualSwitch();
      sw.connect(backend);
      backend = sw.createPort();
      const endpoint = net.listen;
      const server = await opening("net listen", endpoint, () => ns.listenSwitch(endpoint, sw));
      closers.push(() => new Promise<void>((r) => server.close(() => r())));
    }
  } else {
    const endpoint = net.connect as string;
    const link = await opening("net connect", endpoint, () => ns.connectSwitch(endpoint));
    closers.push(() => link.close());
    backend = link;
  }
  return backend;
}
