import { describe, expect, it } from "vitest";
import { parseNetdevUser } from "./netdev.js";

describe("parseNetdevUser", () => {
  it("accepts the short and the QEMU hostfwd forms, restrict and pcap", () => {
    const r = parseNetdevUser(
      "user,hostfwd=tcp:2222-22,hostfwd=udp:127.0.0.1:5353-10.0.2.15:53,restrict=on,pcap=out.pcap",
    );
    expect(r.pcap).toBe("out.pcap");
    expect(r.config.restrict).toBe(true);
    expect(r.config.hostForwards).toEqual([
      { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 2222, guestPort: 22 },
      { protocol: "udp", hostAddress: "127.0.0.1", hostPort: 5353, guestAddress: "10.0.2.15", guestPort: 53 },
    ]);
    const q = parseNetdevUser(
      "user,hostfwd=tcp::8080-:80,net=192.168.76.0/24,host=192.168.76.2,dns=192.168.76.3,dhcpstart=192.168.76.9",
    );
    expect(q.config).toMatchObject({ network: "192.168.76.0/24", gateway: "192.168.76.2", dhcpStart: "192.168.76.9" });
    expect(q.config.hostForwards[0]).toMatchObject({ hostPort: 8080, guestPort: 80 });
    expect(parseNetdevUser("user").config.gateway).toBe("10.0.2.2");
  });

  it("rejects malformed options with CONFIG_INVALID", () => {
    for (const bad of [
      "tap,ifname=x",
      "user,hostfwd=tcp:22",
      "user,hostfwd=sctp:1-2",
      "user,hostfwd=tcp:99999-22",
      "user,restrict=maybe",
      "user,smb=/tmp",
      "user,net",
      "user,net=10.0.2.0/24,host=192.168.0.2",
    ]) {
      expect(() => parseNetdevUser(bad), bad).toThrow(expect.objectContaining({ code: "CONFIG_INVALID" }));
    }
  });
});
