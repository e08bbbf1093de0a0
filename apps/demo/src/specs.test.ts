import { describe, expect, it } from "vitest";
import { parseDrive, parseNet, parseShare, splitSpec } from "./specs.js";

describe("device specs (QEMU-style key=value lists)", () => {
  it("splits on commas, ',,' escapes one", () => {
    expect(splitSpec("a,,b,c=d,,e,ro")).toEqual(["a,b", "c=d,e", "ro"]);
    expect(splitSpec("")).toEqual([""]);
  });
  it("--drive", () => {
    expect(parseDrive("disk.img")).toEqual({ path: "disk.img", format: "auto", readOnly: false });
    expect(parseDrive("d,,1.qcow2,format=qcow2,readonly")).toEqual({
      path: "d,1.qcow2",
      format: "qcow2",
      readOnly: true,
    });
    expect(parseDrive("d.img,readonly=off,if=virtio")).toEqual({ path: "d.img", format: "auto", readOnly: false });
    expect(() => parseDrive("")).toThrow(/no file/);
    expect(() => parseDrive("d.img,format=iso")).toThrow(/format/);
    expect(() => parseDrive("d.img,cache=none")).toThrow(/unknown key "cache"/);
    expect(() => parseDrive("d.img,readonly=maybe")).toThrow(/not on or off/);
    expect(() => parseDrive("d.img,if=ide")).toThrow(/if=virtio/);
    expect(() => parseDrive("d.img,format=raw,format=qcow2")).toThrow(/twice/);
  });
  it("--drive in QEMU's spelling: file=FILE,format=…,if=virtio,media=disk", () => {
    expect(parseDrive("file=d.qcow2,format=qcow2,if=virtio")).toEqual({
      path: "d.qcow2",
      format: "qcow2",
      readOnly: false,
    });
    expect(parseDrive("format=raw,file=a,,b.img,readonly=on,media=disk")).toEqual({
      path: "a,b.img",
      format: "raw",
      readOnly: true,
    });
    expect(parseDrive("x=y.img")).toEqual({ path: "x=y.img", format: "auto", readOnly: false }); // not a key: a file
    expect(() => parseDrive("d.img,file=e.img")).toThrow(/given twice/);
    expect(() => parseDrive("format=raw")).toThrow(/no file/);
    expect(() => parseDrive("file=d.img,media=cdrom")).toThrow(/media=disk/);
  });
  it("--share in QEMU's -virtfs spelling: local,path=DIR,mount_tag=T", () => {
    expect(parseShare("local,path=/srv/x,mount_tag=host,readonly=on")).toEqual({
      path: "/srv/x",
      tag: "host",
      readOnly: true,
    });
    expect(parseShare("path=/srv/x,tag=t")).toEqual({ path: "/srv/x", tag: "t", readOnly: false });
    expect(parseShare("local")).toEqual({ path: "local", readOnly: false }); // a directory named local
    expect(() => parseShare("/srv/x,path=/srv/y")).toThrow(/given twice/);
    expect(() => parseShare("path=/x,tag=a,mount_tag=b")).toThrow(/same key/);
  });
  it("--net user takes QEMU's net=, host=, dns=, dhcpstart= and derives .2/.3/.15 as QEMU (net-stack's parser)", () => {
    expect(parseNet("user,net=10.0.3.0/24")).toMatchObject({
      mode: "user",
      network: "10.0.3.0/24",
      gateway: "10.0.3.2",
      dns: "10.0.3.3",
      dhcpStart: "10.0.3.15",
    });
    expect(parseNet("user,net=192.168.76.0/24,host=192.168.76.1,dhcpstart=192.168.76.100")).toMatchObject({
      gateway: "192.168.76.1",
      dns: "192.168.76.3",
      dhcpStart: "192.168.76.100",
    });
    expect(parseNet("user,net=10.0.3.0/24,hostfwd=tcp::2222-10.0.3.15:22").hostfwd).toEqual([
      { protocol: "tcp", hostPort: 2222, guestPort: 22 },
    ]);
    expect(parseNet("user")).not.toHaveProperty("network");
    expect(() => parseNet("user,net=10.0.3.0/24,hostfwd=tcp::2222-10.0.2.15:22")).toThrow(/10\.0\.3\.15/);
    expect(() => parseNet("user,net=10.0.3.0/24,host=10.0.2.2")).toThrow(/--net .*gateway is outside/);
    expect(() => parseNet("user,net=ten")).toThrow(/net=ten/);
    expect(() => parseNet("socket,connect=/s,net=10.0.3.0/24")).toThrow(/user mode/);
  });
  it("--share", () => {
    expect(parseShare("/srv/x,tag=host,readonly")).toEqual({ path: "/srv/x", tag: "host", readOnly: true });
    expect(parseShare("/srv/x")).toEqual({ path: "/srv/x", readOnly: false });
    expect(() => parseShare("/srv/x,tag=../etc")).toThrow(/tag/);
  });
  it("--net", () => {
    expect(parseNet("none")).toEqual({ mode: "none", hostfwd: [], restrict: false });
    expect(parseNet("user,hostfwd=tcp:2222-22,hostfwd=udp::5353-:53,restrict=on,pcap=out.pcap")).toEqual({
      mode: "user",
      hostfwd: [
        { protocol: "tcp", hostPort: 2222, guestPort: 22 },
        { protocol: "udp", hostPort: 5353, guestPort: 53 },
      ],
      restrict: true,
      pcap: "out.pcap",
    });
    expect(parseNet("user,hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80").hostfwd).toEqual([
      { protocol: "tcp", hostPort: 8080, guestPort: 80 },
    ]);
    expect(() => parseNet("tap")).toThrow(/"user", "socket" or "none"/);
    expect(parseNet("user,listen=/tmp/sw.sock,dns-upstream=127.0.0.1:5353")).toMatchObject({
      mode: "user",
      listen: "/tmp/sw.sock",
      dnsUpstream: { host: "127.0.0.1", port: 5353 },
    });
    expect(parseNet("user,dns-upstream=192.0.2.1").dnsUpstream).toEqual({ host: "192.0.2.1", port: 53 });
    expect(parseNet("socket,connect=:4444,mac=52:54:00:12:34:57")).toMatchObject({ mode: "socket", connect: ":4444" });
    expect(() => parseNet("socket")).toThrow(/needs connect/);
    expect(() => parseNet("socket,connect=/s,hostfwd=tcp:1-2")).toThrow(/user mode/);
    expect(() => parseNet("user,listen=0.0.0.0:80")).toThrow(/127\.0\.0\.1/);
    expect(() => parseNet("user,dns-upstream=dns.example")).toThrow(/IPV4/);
    expect(() => parseNet("user,hostfwd=tcp:0.0.0.0:80-:80")).toThrow(/hostfwd/);
    expect(() => parseNet("user,hostfwd=tcp:70000-22")).toThrow(/hostPort/);
    expect(() => parseNet("none,restrict=on")).toThrow(/no options/);
    expect(() => parseNet("user,mac=zz")).toThrow(/MAC/);
  });
});
