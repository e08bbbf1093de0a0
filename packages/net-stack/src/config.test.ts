import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseResolvConf, parseUserNetConfig } from "./config.js";
import { hostResolver } from "./host-resolver.js";
import { EgressPolicy } from "./policy.js";
import { parseIpv4 } from "./wire/addr.js";

describe("configuration", () => {
  it("defaults to QEMU's user-network layout", () => {
    const c = parseUserNetConfig({});
    expect(c).toMatchObject({
      network: "10.0.2.0/24",
      gateway: "10.0.2.2",
      dns: "10.0.2.3",
      dhcpStart: "10.0.2.15",
      leaseTimeSeconds: 86400,
      mtu: 1500,
      restrict: false,
      gatewayToLoopback: true,
    });
    expect(c.limits.maxFlowsPerGuest).toBe(1024);
    expect(c.timeouts.udpIdleMs).toBe(60_000);
  });

  it("rejects addresses outside the network, bad CIDRs, ports and unknown protocols", () => {
    for (const bad of [
      { dns: "10.0.3.3" },
      { network: "10.0.2.0/31" },
      { network: "10.0.2.0" },
      { allow: [{ cidr: "1.2.3.4/33" }] },
      { deny: [{ cidr: "1.2.3.0/24", ports: [0, 10] }] },
      { hostForwards: [{ protocol: "sctp", hostPort: 1, guestPort: 1 }] },
      { leaseTimeSeconds: 5 },
    ]) {
      expect(() => parseUserNetConfig(bad), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ code: "CONFIG_INVALID" }),
      );
    }
  });

  it("reads the first IPv4 nameserver of resolv.conf", () => {
    expect(parseResolvConf("# x\nsearch lan\nnameserver fe80::1\nnameserver 192.168.1.1\nnameserver 8.8.8.8\n")).toBe(
      "192.168.1.1",
    );
    expect(parseResolvConf("options edns0\n")).toBeNull();
    const dir = mkdtempSync(join(tmpdir(), "rz-resolv-"));
    try {
      writeFileSync(join(dir, "r"), "nameserver 127.0.0.53\n");
      expect(hostResolver(join(dir, "r"))).toEqual({ host: "127.0.0.53", port: 53 });
      expect(hostResolver(join(dir, "missing"))).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("EgressPolicy", () => {
  const ip = (s: string) => parseIpv4(s)!;
  it("applies deny before allow, ports and protocols, and restrict over everything", () => {
    const p = new EgressPolicy(
      false,
      [{ cidr: "192.168.0.0/16" }, { cidr: "127.0.0.1/32", ports: [8000, 8080], protocol: "tcp" }],
      [{ cidr: "192.168.66.0/24" }],
    );
    expect(p.permits("udp", ip("192.168.1.1"), 53)).toBe(true);
    expect(p.permits("udp", ip("192.168.66.1"), 53)).toBe(false);
    expect(p.permits("tcp", ip("127.0.0.1"), 8080)).toBe(true);
    expect(p.permits("tcp", ip("127.0.0.1"), 8081)).toBe(false);
    expect(p.permits("udp", ip("127.0.0.1"), 8000)).toBe(false);
    expect(p.permits("tcp", ip("8.8.8.8"), 53)).toBe(false);
    expect(new EgressPolicy(false, [], []).permits("tcp", ip("8.8.8.8"), 53)).toBe(true);
    expect(new EgressPolicy(true, [{ cidr: "0.0.0.0/0" }], []).permits("tcp", ip("8.8.8.8"), 53)).toBe(false);
  });
});

describe("a network given alone (QEMU's derivation)", () => {
  it("UserNet configs get .2/.3/.15 of the network", () => {
    expect(parseUserNetConfig({ network: "10.0.3.0/24" })).toMatchObject({
      gateway: "10.0.3.2",
      dns: "10.0.3.3",
      dhcpStart: "10.0.3.15",
    });
    expect(parseUserNetConfig({})).toMatchObject({
      network: "10.0.2.0/24",
      gateway: "10.0.2.2",
      dhcpStart: "10.0.2.15",
    });
    expect(() => parseUserNetConfig({ network: "10.0.3.0/24", gateway: "10.0.2.2" })).toThrow();
  });
});
