import { describe, expect, it } from "vitest";
import { parseNetdevUser, splitQemuOpts } from "./netdev.js";

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

describe("net= as QEMU reads it", () => {
  it("derives host .2, dns .3 and dhcpstart .15 from the network alone", () => {
    expect(parseNetdevUser("user,net=10.0.3.0/24").config).toMatchObject({
      network: "10.0.3.0/24",
      gateway: "10.0.3.2",
      dns: "10.0.3.3",
      dhcpStart: "10.0.3.15",
    });
    // QEMU masks the network and ORs 0.0.2.2 / 0.0.2.3 / 0.0.2.15 under the mask
    expect(parseNetdevUser("user,net=172.16.9.9/16").config).toMatchObject({
      network: "172.16.0.0/16",
      gateway: "172.16.2.2",
      dns: "172.16.2.3",
      dhcpStart: "172.16.2.15",
    });
    expect(parseNetdevUser("user,net=192.168.7.0").config).toMatchObject({
      network: "192.168.7.0/24",
      gateway: "192.168.7.2",
    });
    expect(parseNetdevUser("user,net=192.168.7.0/255.255.255.0").config.network).toBe("192.168.7.0/24");
    expect(parseNetdevUser("user,net=10.0.3.0/24,dns=10.0.3.53").config).toMatchObject({
      gateway: "10.0.3.2",
      dns: "10.0.3.53",
    });
    for (const bad of ["user,net=10.0.3.0/40", "user,net=10.0.3.0/255.0.255.0", "user,net=ten"]) {
      expect(() => parseNetdevUser(bad), bad).toThrow(expect.objectContaining({ code: "CONFIG_INVALID" }));
    }
  });
  it("reads ',,' as a comma inside a value", () => {
    expect(parseNetdevUser("user,pcap=a,,b.pcap,restrict=on")).toMatchObject({ pcap: "a,b.pcap" });
    expect(splitQemuOpts("a,,b,c=d,,e,")).toEqual(["a,b", "c=d,e", ""]);
  });
});
