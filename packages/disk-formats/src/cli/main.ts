// ringzero-img: qemu-img's verbs over this library. Exit codes follow
// qemu-img: 0 success, 1 error; check: 2 corruptions, 3 leaks only,
// 63 format without checks; compare: 1 mismatch, 2 error.
import { readFileSync, statSync } from "node:fs";
import { parseArgs } from "node:util";
import { $ZodError } from "zod/v4/core";
import { allocationMap, type BlockBackend, type Extent, type ReadPart } from "../backend.js";
import { alignedBytes, nonZeroRuns } from "../bytes.js";
import { type CompressKind, type Compressor, inlineCompressor } from "../compress.js";
import { DiskError } from "../errors.js";
import { Qcow2Image } from "../formats/qcow2/image.js";
import { VdiImage } from "../formats/vdi.js";
import { VhdxImage } from "../formats/vhdx.js";
import { VmdkImage } from "../formats/vmdk.js";
import { VpcImage } from "../formats/vpc.js";
import { NodeFileHost } from "../io/node-file.js";
import type { ByteStore, StoreHost } from "../io/store.js";
import { WorkerCompressor } from "../io/worker-compressor.js";
import { type CreateOptions, createImage, type Image, openImage } from "../open.js";
import { parseSize, sizeToStr } from "../sizes.js";
import * as z from "../zod.js";
import { escapeName, qemuJson } from "./escape.js";

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** Progress (-p) is shown only on a terminal. */
  isTTY: boolean;
  host?: StoreHost;
  /** Compression for `convert -c` and VMDK streamOptimized targets (default: worker threads when available). */
  compressor?: Compressor;
}

/** A command-line mistake: exit 1; `tryHelp` adds qemu-img's "Try '… --help'" line. */
class UsageError extends Error {
  constructor(
    message: string,
    readonly tryHelp = false,
  ) {
    super(message);
  }
}

const Format = z.enum(["raw", "qcow2", "vdi", "vpc", "vhdx", "vmdk", "parallels"], {
  message: "unknown or unsupported format",
});
const SizeArg = z.pipe(
  z.string(),
  z.transform((s: string, ctx) => {
    const n = parseSize(s);
    if (n === null) {
      ctx.issues.push({ code: "custom", message: `Invalid image size specified: '${s}'`, input: s });
      return z.NEVER;
    }
    return n;
  }),
);
const Output = z._default(z.enum(["human", "json"]), "human");

const FORMATS_HELP = "formats: raw, qcow2, vdi, vpc (VHD), vhdx, vmdk, parallels";
const CREATE_OPTIONS_HELP = `create/convert -o options: qcow2: compat=0.10|1.1, cluster_size=N, refcount_bits=N, lazy_refcounts=on|off, extended_l2=on|off; vdi: static=on|off; vpc: subformat=dynamic|fixed, force_size=on|off; vmdk: subformat=monolithicSparse|monolithicFlat|streamOptimized|twoGbMaxExtentSparse|twoGbMaxExtentFlat; parallels: cluster_size=N; vhdx: subformat=dynamic|fixed, block_size=N`;

const USAGE = `usage: ringzero-img COMMAND [options]
       ringzero-img --help | --version | COMMAND --help
  create [-q] -f FMT [-b BACKING [-F BFMT]] [-o OPTS] FILE [SIZE]
  info [-f FMT] [--output human|json] FILE
  check [-q] [-f FMT] [--output human|json] [-r leaks|all] FILE
  convert [-p] [-q] [-f FMT] -O FMT [-c] [-o OPTS] [--salvage] IN OUT
  map [-f FMT] [--output human|json] FILE
  compare [-p] [-q] [-s] [-f FMT] [-F FMT] A B
  resize [-q] [-f FMT] [--shrink] FILE [+|-]SIZE
  commit [-q] [-d] [-f FMT] FILE
  rebase [-q] [-u] [-f FMT] -b BACKING [-F BFMT] FILE
  snapshot -l|-c NAME|-a NAME|-d NAME [-f FMT] FILE
${FORMATS_HELP}
${CREATE_OPTIONS_HELP}`;

const VERBS = ["create", "info", "check", "convert", "map", "compare", "resize", "commit", "rebase", "snapshot"];

/** `ringzero-img VERB --help`: that verb's line of USAGE, the formats and, for create/convert, the -o options. */
function verbUsage(verb: string): string {
  const line = USAGE.split("\n").find((l) => l.startsWith(`  ${verb} `)) ?? `  ${verb}`;
  const extra = verb === "create" || verb === "convert" ? `\n${CREATE_OPTIONS_HELP}` : "";
  return `usage: ringzero-img ${line.trim()}\n${FORMATS_HELP}${extra}\n`;
}

/** The package's version, read when asked (the CLI may run from a bundle in tests). */
export function packageVersion(): string {
  try {
    return JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version;
  } catch {
    return "unknown";
  }
}

/** node:util parseArgs errors as one getopt-style line. */
function argsErrorMessage(e: Error & { code?: string }, args: readonly string[]): string {
  const quoted = /'([^']+)'/.exec(e.message)?.[1] ?? "";
  switch (e.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unrecognized option '${quoted}'`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `Unexpected argument: ${quoted}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      // "-O, --O <value>": the spelling the user wrote
      const names = quoted.match(/--?[\w-]+/g) ?? [quoted];
      const name = names.find((n) => args.some((a) => a === n || a.startsWith(`${n}=`))) ?? names[0];
      return /argument missing/.test(e.message)
        ? `option '${name}' requires an argument`
        : `option '${name}' doesn't allow an argument`;
    }
    default:
      return e.message;
  }
}

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const host = io.host ?? new NodeFileHost();
  const [verb, ...rest] = argv;
  const tryHelp = `Try 'ringzero-img${verb !== undefined && VERBS.includes(verb) ? ` ${verb}` : ""} --help' for more information\n`;
  if (verb === "--version" || verb === "-V") {
    io.stdout(`ringzero-img version ${packageVersion()}\n`);
    return 0;
  }
  if (verb !== undefined && VERBS.includes(verb) && (rest.includes("--help") || rest.includes("-h"))) {
    io.stdout(verbUsage(verb));
    return 0;
  }
  try {
    switch (verb) {
      case "create":
        return await create(rest, io, host);
      case "info":
        return await info(rest, io, host);
      case "check":
        return await check(rest, io, host);
      case "convert":
        return await convert(rest, io, host);
      case "map":
        return await map(rest, io, host);
      case "compare":
        return await compare(rest, io, host);
      case "resize":
        return await resize(rest, io, host);
      case "commit":
        return await commit(rest, io, host);
      case "rebase":
        return await rebase(rest, io, host);
      case "snapshot":
        return await snapshot(rest, io, host);
      case "--help":
      case "-h":
      case "help":
        io.stdout(`${USAGE}\n`);
        return 0;
      default:
        io.stderr(
          `ringzero-img: ${verb === undefined ? "Not enough arguments" : `Command not found: ${verb}`}\n${tryHelp}`,
        );
        return 1;
    }
  } catch (e) {
    // Usage errors and bad values exit 1 for every verb, as qemu-img's error_exit; compare's I/O errors exit 2.
    if (e instanceof UsageError) {
      io.stderr(`ringzero-img: ${e.message}\n${e.tryHelp ? tryHelp : ""}`);
      return 1;
    }
    if (e instanceof $ZodError) {
      io.stderr(`ringzero-img: ${e.issues.map((i) => i.message).join("; ")}\n`);
      return 1;
    }
    if (e instanceof Error && (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      io.stderr(`ringzero-img: ${argsErrorMessage(e, rest)}\n${tryHelp}`);
      return 1;
    }
    if (e instanceof DiskError) {
      const where = e.offset !== undefined ? ` at offset ${e.offset}` : "";
      // The file may be a name read from an image (a backing file): escaped, so the error stays one line.
      const file = typeof e.context.file === "string" ? `${escapeName(e.context.file)}: ` : "";
      io.stderr(
        `ringzero-img: ${file}${escapeName(e.detail || e.code)} (${e.code}, ${escapeName(e.format)}${where})\n`,
      );
      return verb === "compare" ? 2 : 1;
    }
    // An I/O error from the file system (EIO on a read, ENOSPC on a write): one line, as qemu-img's
    // "error while reading/writing", not a stack trace.
    if (e instanceof Error && typeof (e as { errno?: unknown }).errno === "number") {
      io.stderr(`ringzero-img: ${escapeName(e.message)}\n`);
      return verb === "compare" ? 2 : 1;
    }
    throw e;
  }
}

type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;
type Values = Record<string, string | boolean | string[] | undefined>;

function parse(
  args: string[],
  options: OptionSpec,
  positionals: [number, number],
): { values: Values; positionals: string[] } {
  const r = parseArgs({ args, options, allowPositionals: true, strict: true }) as {
    values: Values;
    positionals: string[];
  };
  if (r.positionals.length < positionals[0]) throw new UsageError("Expecting more arguments", true);
  if (r.positionals.length > positionals[1])
    throw new UsageError(`Unexpected argument: ${r.positionals[positionals[1]]}`, true);
  return r;
}

const fmtOpt = { f: { type: "string", short: "f" } } as const;
const quiet = { q: { type: "boolean", short: "q" } } as const;
const outputOpt = { output: { type: "string" } } as const;

/** -o key=value[,key=value] for qcow2 creation. */
const CreateOpts = z.strictObject({
  compat: z.optional(z.enum(["0.10", "1.1", "v2", "v3"])),
  cluster_size: z.optional(SizeArg),
  refcount_bits: z.optional(z.coerce.number().check(z.int())),
  lazy_refcounts: z.optional(z.enum(["on", "off"])),
  extended_l2: z.optional(z.enum(["on", "off"])),
});

function parseKv(list: string[] | undefined): Record<string, string> {
  const kv: Record<string, string> = {};
  for (const item of list ?? [])
    for (const part of item.split(",")) {
      if (part === "") continue;
      const [k, v] = part.split("=", 2);
      if (v === undefined) throw new UsageError(`Invalid option '${part}'`);
      kv[k!] = v;
    }
  return kv;
}

const VdiOpts = z.strictObject({ static: z.optional(z.enum(["on", "off"])) });
const VmdkOpts = z.strictObject({
  subformat: z.optional(
    z.enum(["monolithicSparse", "monolithicFlat", "streamOptimized", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"]),
  ),
});
const VpcOpts = z.strictObject({
  subformat: z.optional(z.enum(["dynamic", "fixed"])),
  force_size: z.optional(z.enum(["on", "off"])),
});

/** -o options of the target format, validated per format. */
function formatOptions(
  format: string,
  list: string[] | undefined,
): Pick<CreateOptions, "qcow2" | "vdi" | "vpc" | "vmdk" | "parallels" | "vhdx"> {
  const kv = parseKv(list);
  if (format === "qcow2") return { qcow2: qcow2Options(kv) };
  if (format === "vdi") return { vdi: { fixed: VdiOpts.parse(kv).static === "on" } };
  if (format === "vhdx") {
    const o = z
      .strictObject({ subformat: z.optional(z.enum(["dynamic", "fixed"])), block_size: z.optional(SizeArg) })
      .parse(kv);
    return {
      vhdx: { fixed: o.subformat === "fixed", ...(o.block_size ? { blockSize: o.block_size } : {}) },
    };
  }
  if (format === "parallels") {
    const o = z.strictObject({ cluster_size: z.optional(SizeArg) }).parse(kv);
    return { parallels: o.cluster_size !== undefined ? { clusterSize: o.cluster_size } : {} };
  }
  if (format === "vmdk") {
    const o = VmdkOpts.parse(kv);
    return { vmdk: o.subformat ? { subformat: o.subformat } : {} };
  }
  if (format === "vpc") {
    const o = VpcOpts.parse(kv);
    return { vpc: { fixed: o.subformat === "fixed", forceSize: o.force_size === "on" } };
  }
  if (Object.keys(kv).length > 0) throw new UsageError(`${format} takes no -o options`);
  return {};
}

function qcow2Options(kv: Record<string, string>) {
  const o = CreateOpts.parse(kv);
  const out: {
    version?: 2 | 3;
    clusterBits?: number;
    refcountOrder?: number;
    lazyRefcounts?: boolean;
    extendedL2?: boolean;
  } = {};
  if (o.compat) out.version = o.compat === "0.10" || o.compat === "v2" ? 2 : 3;
  if (o.cluster_size !== undefined) {
    const b = Math.log2(o.cluster_size);
    if (!Number.isInteger(b)) throw new UsageError("Cluster size must be a power of two between 512 and 2048k");
    out.clusterBits = b;
  }
  if (o.refcount_bits !== undefined) {
    const b = Math.log2(o.refcount_bits);
    if (!Number.isInteger(b)) throw new UsageError("Refcount width must be a power of two and may not exceed 64 bits");
    out.refcountOrder = b;
  }
  if (o.lazy_refcounts) out.lazyRefcounts = o.lazy_refcounts === "on";
  if (o.extended_l2) out.extendedL2 = o.extended_l2 === "on";
  return out;
}

async function create(args: string[], io: CliIo, host: StoreHost): Promise<number> {
  const { values: v, positionals: p } = parse(
    args,
    {
      ...fmtOpt,
      ...quiet,
      b: { type: "string", short: "b" },
      F: { type: "string", short: "F" },
      o: { type: "string", short: "o", multiple: true },
    },
    [1, 2],
  );
  const format = Format.parse(v.f ?? "raw");
  const size = p[1] !== undefined ? SizeArg.parse(p[1]) : undefined;
  if (v.b === undefined && size === undefined) throw new UsageError("Image creation needs a size parameter");
  const fo = formatOptions(format, v.o as string[] | undefined);
  const q = fo.qcow2 ?? {};
  const img = await createImage(host, p[0]!, {
    format,
    ...(size !== undefined ? { size } : {}),
    ...(v.b !== undefined ? { backingFile: v.b as string } : {}),
    ...(v.F !== undefined ? { backingFormat: Format.parse(v.F) } : {}),
    ...fo,
  });
  const finalSize = img.size();
  await img.close();
  if (!v.q) {
    let line = `Formatting '${p[0]}', fmt=${format}`;
    if (format === "qcow2")
      line += ` cluster_size=${2 ** (q.clusterBits ?? 16)} extended_l2=${q.extendedL2 ? "on" : "off"} compression_type=zlib`;
    line += ` size=${size ?? finalSize}`;
    if (v.b !== undefined) line += ` backing_file=${v.b}${v.F ? ` backing_fmt=${v.F}` : ""}`;
    if (format === "qcow2") {
      if (q.version === 2) line += " compat=0.10";
      line += ` lazy_refcounts=${q.lazyRefcounts ? "on" : "off"} refcount_bits=${2 ** (q.refcountOrder ?? 4)}`;
    }
    if (format === "vdi") line += ` static=${fo.vdi?.fixed ? "on" : "off"}`;
    if (format === "parallels") line += ` cluster_size=${fo.parallels?.clusterSize ?? 1048576}`;
    if (format === "vpc" && fo.vpc?.fixed) line += " subformat=fixed";
    if (format === "vpc" && fo.vpc?.forceSize) line += " force_size=on";
    if (format === "vmdk")
      line += ` compat6=off hwversion=undefined${fo.vmdk?.subformat ? ` subformat=${fo.vmdk.subformat}` : ""}`;
    io.stdout(`${line}\n`);
  }
  return 0;
}

function actualSize(file: string): number | undefined {
  try {
    return statSync(file).blocks * 512;
  } catch {
    return undefined;
  }
}

function openFmt(v: Values) {
  return v.f !== undefined ? { format: Format.parse(v.f) } : {};
}

async function info(args: string[], io: CliIo, host: StoreHost): Promise<number> {
  const { values: v, positionals: p } = parse(args, { ...fmtOpt, ...outputOpt }, [1, 1]);
  const output = Output.parse(v.output);
  const file = p[0]!;
  const img = await openImage(host, file, { readOnly: true, noBacking: true, ...openFmt(v) });
  warn(io, img);
  try {
    const disk = actualSize(file);
    const j: Record<string, unknown> = { "virtual-size": img.size(), filename: file, format: img.format };
    if (disk !== undefined) j["actual-size"] = disk;
    if (img instanceof Qcow2Image) {
      const h = img.header;
      j["cluster-size"] = img.clusterSize;
      if (img.snapshots.length > 0)
        j.snapshots = img.snapshots.map((s) => ({
          icount: s.icount < 0 ? undefined : s.icount,
          "vm-clock-nsec": s.vmClockNsec % 1e9,
          name: s.name,
          "date-sec": s.dateSec,
          "date-nsec": s.dateNsec,
          "vm-clock-sec": Math.floor(s.vmClockNsec / 1e9),
          id: s.id,
          "vm-state-size": s.vmStateSize,
        }));
      if (img.backingFile !== null) {
        j["backing-filename"] = img.backingFile;
        j["full-backing-filename"] = host.resolve(file, img.backingFile);
        if (img.backingFormat !== null) j["backing-filename-format"] = img.backingFormat;
      }
      const data: Record<string, unknown> = { compat: h.version === 3 ? "1.1" : "0.10" };
      if (h.version === 3) {
        data["compression-type"] = "zlib";
        data["lazy-refcounts"] = img.lazyRefcounts;
      }
      data["refcount-bits"] = 2 ** h.refcountOrder;
      data.corrupt = img.corrupt;
      data["extended-l2"] = ((h.incompatibleFeatures >> 4n) & 1n) === 1n;
      j["format-specific"] = { type: "qcow2", data };
    }
    if (img instanceof VdiImage) j["cluster-size"] = img.blockSize;
    if (img instanceof VpcImage && img.blockSize !== null) j["cluster-size"] = img.blockSize;
    if (img instanceof VhdxImage) j["cluster-size"] = img.clusterSize;
    if (img instanceof VmdkImage) {
      if (img.grainSize !== null) j["cluster-size"] = img.grainSize;
      j["format-specific"] = {
        type: "vmdk",
        data: {
          cid: img.cid,
          "parent-cid": img.parentCid,
          "create-type": img.createType,
          extents: img.extentInfo.map((x) => ({
            "virtual-size": x.bytes,
            filename: host.resolve(file, x.file),
            ...(x.grain !== null ? { "cluster-size": x.grain } : {}),
            format: x.kind === "flat" ? "FLAT" : x.kind === "zero" ? "ZERO" : "",
            ...(x.compressed ? { compressed: true } : {}),
          })),
        },
      };
    }
    j["dirty-flag"] = img instanceof Qcow2Image ? img.dirty : false;
    if (output === "json") {
      io.stdout(`${qemuJson(j)}\n`);
      return 0;
    }
    const lines = [
      `image: ${file}`,
      `file format: ${img.format}`,
      `virtual size: ${sizeToStr(img.size())} (${img.size()} bytes)`,
      `disk size: ${disk !== undefined ? sizeToStr(disk) : "unavailable"}`,
    ];
    if (img instanceof VdiImage) lines.push(`cluster_size: ${img.blockSize}`);
    if (img instanceof VpcImage && img.blockSize !== null) lines.push(`cluster_size: ${img.blockSize}`);
    if (img instanceof Qcow2Image) {
      lines.push(`cluster_size: ${img.clusterSize}`);
      if (img.backingFile !== null) {
        const full = host.resolve(file, img.backingFile);
        lines.push(
          `backing file: ${escapeName(img.backingFile)}${full !== img.backingFile ? ` (actual path: ${escapeName(full)})` : ""}`,
        );
        if (img.backingFormat !== null) lines.push(`backing file format: ${escapeName(img.backingFormat)}`);
      }
      if (img.snapshots.length > 0) lines.push("Snapshot list:", ...snapshotTable(img));
      const fs = (j["format-specific"] as { data: Record<string, unknown> }).data;
      lines.push("Format specific information:");
      for (const [k, val] of Object.entries(fs)) lines.push(`    ${k.replace(/-/g, " ")}: ${val}`);
    }
    io.stdout(`${lines.join("\n")}\n`);
    return 0;
  } finally {
    await img.close();
  }
}

function snapshotTable(img: Qcow2Image): string[] {
  const pad2 = (n: number) => String(n).padStart(2, "0");
  const rows = ["ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT"];
  for (const s of img.snapshots) {
    const d = new Date(s.dateSec * 1000);
    const date = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
    const secs = Math.floor(s.vmClockNsec / 1e9);
    const clock = `${pad2(Math.floor(secs / 3600))}:${pad2(Math.floor(secs / 60) % 60)}:${pad2(secs % 60)}.${String(Math.floor((s.vmClockNsec % 1e9) / 1e6)).padStart(3, "0")}`;
    rows.push(
      `${escapeName(s.id).padEnd(9)} ${escapeName(s.name).padEnd(17)} ${sizeToStr(s.vmStateSize).padStart(7)}${date.padStart(20)}${clock.padStart(13)}${(s.icount < 0 ? "" : String(s.icount)).padStart(11)}`,
    );
  }
  return rows;
}

async function snapshot(args: string[], io: CliIo, host: StoreHost): Promise<number> {
  const { values: v, positionals: p } = parse(
    args,
    {
      ...fmtOpt,
      l: { type: "boolean", short: "l" },
      c: { type: "string", short: "c" },
      a: { type: "string", short: "a" },
      d: { type: "string", short: "d" },
    },
    [1, 1],
  );
  const actions = [v.l ? "l" : null, v.c, v.a, v.d].filter((x) => x !== undefined && x !== null && x !== false);
  if (actions.length !== 1) throw new UsageError("Cannot mix '-l', '-a', '-c', '-d'");
  const name = (x: unknown) => z.string().check(z.minLength(1)).parse(x);
  const img = await openImage(host, p[0]!, { readOnly: !!v.l, noBacking: true, ...openFmt(v) });
  try {
    if (!(img instanceof Qcow2Image)) throw new UsageError("This image format does not support snapshots");
    if (v.c !== undefined) {
      await img.createSnapshot(name(v.c));
      return 0;
    }
    if (v.a !== undefined) {
      await img.applySnapshot(name(v.a));
      return 0;
    }
    if (v.d !== undefined) {
      await img.deleteSnapshot(name(v.d));
      return 0;
    }
    if (img.snapshots.length > 0) io.stdout(`Snapshot list:\n${snapshotTable(img).join("\n")}\n`);
    return 0;
  } finally {
    await img.close();
  }
}

async function check(args: string[], io: CliIo, host: StoreHost): Promise<number> {
  const { values: v, positionals: p } = parse(
    args,
    { ...fmtOpt, ...outputOpt, ...quiet, r: { type: "string", short: "r" } },
    [1, 1],
  );
  const output = Output.parse(v.output);
  const repair = z.optional(z.enum(["leaks", "all"])).parse(v.r);
  const file = p[0]!;
  const img = await openImage(host, file, {
    readOnly: repair === undefined,
    noBacking: true,
    forCheck: true,
    ...openFmt(v),
  });
  try {
    if (img instanceof VdiImage) {
      const r = await img.check();
      if (output === "json")
        io.stdout(
          `${qemuJson({ "check-errors": 0, filename: file, format: "vdi", ...(r.corruptions ? { corruptions: r.corruptions } : {}) })}\n`,
        );
      else if (!v.q) {
        for (const m of r.messages) io.stderr(`${m}\n`);
        io.stdout(
          r.corruptions === 0
            ? "No errors were found on the image.\n"
            : `\n${r.corruptions} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n`,
        );
      }
      return r.corruptions > 0 ? 2 : 0;
    }
    if (img instanceof VhdxImage) {
      // qemu-img: a log replayed by the read-write open is one corruption fixed; without -r, the open refuses it.
      // BAT entries past the end of the file are corruptions (QEMU's vhdx_co_check), and so is a corrupt
      // first region table here (QEMU refuses to open such an image).
      const fixed = img.logReplayed ? 1 : 0;
      const r = img.check();
      if (output === "json")
        io.stdout(
          `${qemuJson({ ...(fixed ? { "corruptions-fixed": fixed } : {}), "check-errors": 0, filename: file, format: "vhdx", ...(r.corruptions ? { corruptions: r.corruptions } : {}) })}\n`,
        );
      else if (!v.q) {
        if (fixed)
          io.stdout(
            "The following inconsistencies were found and repaired:\n\n    0 leaked clusters\n    1 corruptions\n\nDouble checking the fixed image now...\n",
          );
        for (const m of r.messages) io.stderr(`${m}\n`);
        io.stdout(
          r.corruptions === 0
            ? "No errors were found on the image.\n"
            : `\n${r.corruptions} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n`,
        );
      }
      return r.corruptions > 0 ? 2 : 0;
    }
    if (!(img instanceof Qcow2Image)) {
      io.stderr("ringzero-img: This image format does not support checks\n");
      return 63;
    }
    let r = await img.check();
    const lines: string[] = [];
    if (repair && (r.leaks > 0 || r.corruptions > 0)) {
      const before = r;
      await img.repairRefcounts();
      if (repair === "all") await img.repairCopiedFlags();
      r = await img.check();
      lines.push(
        "The following inconsistencies were found and repaired:",
        "",
        `    ${before.leaks - r.leaks} leaked clusters`,
        `    ${before.corruptions - r.corruptions} corruptions`,
        "",
        "Double checking the fixed image now...",
      );
    }
    if (output === "json") {
      const j: Record<string, unknown> = {
        "image-end-offset": r.imageEndOffset,
        "total-clusters": r.totalClusters,
        "check-errors": 0,
        "allocated-clusters": r.allocatedClusters,
        filename: file,
        format: "qcow2",
      };
      if (r.leaks) j.leaks = r.leaks;
      if (r.corruptions) j.corruptions = r.corruptions;
      if (r.fragmentedClusters) j["fragmented-clusters"] = r.fragmentedClusters;
      if (r.compressedClusters) j["compressed-clusters"] = r.compressedClusters;
      io.stdout(`${qemuJson(j)}\n`);
    } else if (!v.q) {
      for (const m of r.messages) io.stderr(`${m}\n`);
      if (r.corruptions === 0 && r.leaks === 0) lines.push("No errors were found on the image.");
      if (r.corruptions > 0)
        lines.push(
          `\n${r.corruptions} errors were found on the image.`,
          "Data may be corrupted, or further writes to the image may corrupt it.",
        );
      if (r.leaks > 0)
        lines.push(
          `\n${r.leaks} leaked clusters were found on the image.`,
          "This means waste of disk space, but no harm to data.",
        );
      const pct = (n: number) => (r.totalClusters ? ((100 * n) / r.totalClusters).toFixed(2) : "0.00");
      const pctA = (n: number) => (r.allocatedClusters ? ((100 * n) / r.allocatedClusters).toFixed(2) : "0.00");
      lines.push(
        `${r.allocatedClusters}/${r.totalClusters} = ${pct(r.allocatedClusters)}% allocated, ${pctA(r.fragmentedClusters)}% fragmented, ${pctA(r.compressedClusters)}% compressed clusters`,
        `Image end offset: ${r.imageEndOffset}`,
      );
      io.stdout(`${lines.join("\n")}\n`);
    }
    return r.corruptions > 0 ? 2 : r.leaks > 0 ? 3 : 0;
  } finally {
    await img.close();
  }
}

class Progress {
  private last = -1;
  constructor(
    private readonly io: CliIo,
    private readonly enabled: boolean,
  ) {}
  update(done: number, total: number): void {
    if (!this.enabled) return;
    const pct = total === 0 ? 100 : Math.floor((10000 * done) / total) / 100;
    if (pct === this.last) return;
    this.last = pct;
    this.io.stdout(`    (${pct.toFixed(2)}/100%)\r`);
  }
  end(): void {
    if (this.enabled) this.io.stdout("    (100.00/100%)\n");
  }
}

const CHUNK = 1024 * 1024;
/** convert's read size: page-cache reads of 4 MiB. */
const COPY_CHUNK = 4 * CHUNK;
/**
 * convert's largest write: runs of data are written in pieces that end at
 * 1 MiB boundaries of the disk (a VDI or VHDX block is one or more of them).
 * Measured (perf, 2-core VM, 636 MB written): the kernel's copy into the page
 * cache took 290-390 ms with writes of up to 4 MiB and 48-67 ms with 1 MiB
 * pieces (512 KiB: the same), qcow2→vhdx and raw→qcow2 alike, in 4 of 4
 * alternating runs each; qemu-img's took 61-89 ms. Why (the new page-cache
 * folios' size and where they come from, it seems) is not settled; the
 * effect repeats with a plain read/write loop (4 MiB writes: 1.0-1.5 s of
 * copy, 1 MiB writes from the same 4 MiB buffer: 31-39 ms).
 */
const WRITE_MAX = CHUNK;

/** A read error `--salvage` goes past: a DiskError, or an I/O error from the file (EIO and the like). */
function unreadable(e: unknown): e is DiskError | Error {
  return e instanceof DiskError || (e instanceof Error && typeof (e as { errno?: unknown }).errno === "number");
}

/**
 * `convert --salvage`, as qemu-img's: a read that fails with a DiskError (a
 * compressed cluster that does not inflate, a VMDK grain inside the header, a
 * VDI block past the end of the file) or an I/O error is retried sector by sector, and the
 * sectors that still fail are written as zeros; a block status that fails
 * counts the range as data, so its reads are tried. Unreadable ranges are
 * counted and reported (qemu-img warns once per 512-byte sector; here once
 * per contiguous range, then a total).
 */
class Salvage {
  /** Unreadable ranges, merged when contiguous: [start, end, first error]. */
  readonly ranges: [number, number, DiskError | Error][] = [];

  async blockStatus(src: BlockBackend, offset: number, length: number): Promise<Extent> {
    try {
      return await src.blockStatus(offset, length);
    } catch (e) {
      if (!unreadable(e) || (e instanceof DiskError && e.code === "CLOSED")) throw e;
      const n = Math.min(length, CHUNK - (offset % CHUNK));
      return { start: offset, length: n, kind: "data", depth: 0 };
    }
  }

  async readInto(src: BlockBackend, offset: number, buf: Uint8Array): Promise<void> {
    try {
      return await src.readInto(offset, buf);
    } catch (e) {
      if (!unreadable(e) || (e instanceof DiskError && (e.code === "CLOSED" || e.code === "INVALID_REQUEST"))) throw e;
    }
    const SECTOR = 512;
    for (let o = 0; o < buf.length; o += SECTOR) {
      const part = buf.subarray(o, Math.min(o + SECTOR, buf.length));
      try {
        await src.readInto(offset + o, part);
      } catch (e) {
        if (!unreadable(e)) throw e;
        part.fill(0);
        this.add(offset + o, part.length, e);
      }
    }
  }

  private add(start: number, length: number, e: DiskError | Error): void {
    const last = this.ranges[this.ranges.length - 1];
    if (last && last[1] === start) last[1] = start + length;
    else this.ranges.push([start, start + length, e]);
  }

  get bytes(): number {
    return this.ranges.reduce((n, [a, b]) => n + b - a, 0);
  }

  /** Warning lines for stderr: one per range (the first 16), then the total. */
  report(): string[] {
    if (this.ranges.length === 0) return [];
    const lines = this.ranges
      .slice(0, 16)
      .map(
        ([a, b, e]) =>
          `warning: unreadable bytes ${a}..${b - 1} written as zeros: ${
            e instanceof DiskError
              ? `${escapeName(e.detail || e.code)} (${e.code}, ${escapeName(e.format)}${e.offset !== undefined ? ` at offset ${e.offset}` : ""})`
              : escapeName(e.message)
          }`,
      );
    if (this.ranges.length > 16) lines.push(`warning: ... and ${this.ranges.length - 16} more unreadable ranges`);
    lines.push(
      `warning: salvaged: ${this.bytes} unreadable bytes (${this.bytes / 512} sectors, ${this.ranges.length} ranges) written as zeros`,
    );
    return lines;
  }
}

/** Units the target compresses (qcow2 clusters with -c, streamOptimized grains), each written with its compressed bytes. */
interface CompressedUnits {
  size: number;
  kind: CompressKind;
  write(offset: number, data: Uint8Array, deflated: Uint8Array): Promise<void>;
}

function compressedUnits(dst: Image, compress: boolean): CompressedUnits | null {
  if (compress && dst instanceof Qcow2Image)
    return { size: dst.clusterSize, kind: "qcow2", write: (o, d, z) => dst.writeCompressed(o, d, z) };
  const grain = dst instanceof VmdkImage ? dst.compressedGrainSize : null;
  if (dst instanceof VmdkImage && grain !== null)
    return { size: grain, kind: "zlib", write: (o, d, z) => dst.writeGrainDeflated(o, d, z) };
  return null;
}

/**
 * Copies the visible content of `src` (the whole chain) into `dst`, skipping
 * zeros. Where the target compresses (`compress`: qcow2 clusters; VMDK
 * streamOptimized grains), each chunk's units are handed to the compressor
 * at once (worker threads compress them in parallel) and written in guest
 * order as their results come, so the output is the same whatever the
 * number of threads.
 */
async function copyContent(
  src: BlockBackend,
  dst: Image,
  opts: { compress: boolean; zeroGranularity: number; salvage?: Salvage; compressor: () => Compressor },
  progress: Progress,
): Promise<void> {
  const size = src.size();
  const salvage = opts.salvage;
  const units = compressedUnits(dst, opts.compress);
  const gran = units ? units.size : opts.zeroGranularity;
  const jobs: Array<{ at: number; data: Uint8Array; deflated: Promise<Uint8Array> }> = [];
  const win = Math.ceil(COPY_CHUNK / gran) * gran;
  // Two buffers used in turn: one is read into while the other is written from (fresh buffers per
  // read cost page faults, a third of the read time in the bench). Page-aligned: the kernel copies
  // to and from a malloc'ed buffer (16 bytes past a page) at half speed (alignedBytes).
  const both = alignedBytes(2 * win);
  const buffers = [both.subarray(0, win), both.subarray(win)];
  const runs: number[] = [];
  const pieceRuns: number[] = [];
  const status = (at: number, len: number): Promise<Extent> =>
    salvage ? salvage.blockStatus(src, at, len) : src.blockStatus(at, len);

  /**
   * The window to copy at or after `from`, its reads started into `into`:
   * it starts at a data extent (aligned down to the granularity, so
   * compressed units are whole) and reaches, within `win` bytes, to the end
   * of the last data extent inside it (aligned up), so short extents with
   * holes between (a qcow2 source) go out in one step. Only the data extents
   * of a window (aligned to the granularity) are read and scanned for zeros:
   * `pieces` holds their [from, to) offsets in `buf`, the bytes between are
   * neither filled nor looked at. Zero extents between windows are not read
   * either. null past the last data extent.
   */
  async function windowAt(
    from: number,
    into: Uint8Array,
  ): Promise<{ start: number; buf: Uint8Array; pieces: number[]; read: Promise<unknown> } | null> {
    let pos = from;
    while (pos < size) {
      const st = await status(pos, Math.min(size - pos, 64 * CHUNK));
      if (st.kind !== "data") {
        pos = st.start + st.length;
        continue;
      }
      const start = Math.floor(st.start / gran) * gran;
      const limit = Math.min(size, start + win);
      const pieces: number[] = [];
      const addPiece = (from: number, to: number) => {
        const a = Math.floor((from - start) / gran) * gran;
        const b = Math.min(size, Math.ceil(to / gran) * gran) - start;
        if (pieces.length > 0 && a <= pieces[pieces.length - 1]!) pieces[pieces.length - 1] = b;
        else pieces.push(a, b);
      };
      let dataEnd = Math.min(st.start + st.length, limit);
      addPiece(st.start, dataEnd);
      for (let p = dataEnd; p < limit; ) {
        const e = await status(p, limit - p);
        if (e.kind === "data") {
          dataEnd = Math.min(e.start + e.length, limit);
          addPiece(e.start, dataEnd);
        }
        p = e.start + e.length;
      }
      const end = Math.min(size, Math.ceil(dataEnd / gran) * gran);
      const buf = into.subarray(0, end - start);
      // The window's data extents are read at once (each readInto on its own thread-pool thread): a
      // qcow2 source's windows hold several (383 reads in the bench's qcow2→vhdx), read one after another
      // they cost a thread-pool round trip each on the way to the write. Sources are opened
      // read-only, and their table caches tolerate concurrent misses (both read, one is kept).
      // --salvage reads them in turn: its unreadable ranges are recorded in order.
      let read: Promise<unknown>;
      if (salvage)
        read = (async () => {
          for (let k = 0; k < pieces.length; k += 2)
            await salvage.readInto(src, start + pieces[k]!, buf.subarray(pieces[k]!, pieces[k + 1]!));
        })();
      else if (src.readIntoMany) {
        // One call for the window: a format with it reads the extents that follow each other in
        // its file with one vectored read (qcow2: about 256 fewer reads in the bench's qcow2→vhdx).
        const parts: ReadPart[] = [];
        for (let k = 0; k < pieces.length; k += 2)
          parts.push({ offset: start + pieces[k]!, buf: buf.subarray(pieces[k]!, pieces[k + 1]!) });
        read = src.readIntoMany(parts);
      } else {
        const reads: Promise<void>[] = [];
        for (let k = 0; k < pieces.length; k += 2)
          reads.push(src.readInto(start + pieces[k]!, buf.subarray(pieces[k]!, pieces[k + 1]!)));
        read = Promise.all(reads);
      }
      read.catch(() => {}); // awaited by the copy loop; a failure while a write is pending must not go unhandled
      return { start, buf, pieces, read };
    }
    return null;
  }

  // One window read ahead: the next one's extents are looked up and its reads started before this
  // one is written, while nothing else runs. (Started from a generator resumed as this window's
  // writes began, its lookups' promise hops took turns with the synchronous writes, and its reads
  // started 0.2 ms into them on average: 40-57 ms of the bench's qcow2→vhdx, README, eighth round.)
  let turn = 0;
  let next = await windowAt(0, buffers[0]!);
  while (next) {
    const { start, buf, pieces, read } = next;
    await read;
    turn ^= 1;
    next = await windowAt(start + buf.length, buffers[turn]!);
    // Runs of non-zero granules of each piece read, each written in one request (compressed: one unit each).
    runs.length = 0;
    for (let k = 0; k < pieces.length; k += 2) {
      const from = pieces[k]!;
      const count = nonZeroRuns(buf.subarray(from, pieces[k + 1]!), pieces[k + 1]! - from, gran, pieceRuns);
      for (let i = 0; i < 2 * count; i++) runs.push(from + pieceRuns[i]!);
    }
    for (let k = 0; k < runs.length / 2; k++) {
      const a = runs[2 * k]!;
      const b = runs[2 * k + 1]!;
      if (units) {
        const compressor = opts.compressor();
        for (let o = a; o < b; o += gran) {
          const data = buf.subarray(o, Math.min(o + gran, b));
          let full = data;
          if (data.length < gran) {
            full = new Uint8Array(gran); // the disk's short last unit, compressed zero-padded
            full.set(data);
          }
          const deflated = compressor.compress(units.kind, full);
          deflated.catch(() => {}); // awaited below; a failed write before it must not leave it unhandled
          jobs.push({ at: start + o, data, deflated });
        }
      } else
        for (let o = a; o < b; ) {
          const e = Math.min(b, (Math.floor((start + o) / WRITE_MAX) + 1) * WRITE_MAX - start);
          await dst.write(start + o, buf.subarray(o, e));
          o = e;
        }
    }
    // Written before `buf` is read into again (the jobs point into it).
    for (const j of jobs) await units!.write(j.at, j.data, await j.deflated);
    jobs.length = 0;
    progress.update(next ? next.start : size, size);
  }
}

async function convert(args: string[], io: CliIo, host: StoreHost): Promise<number> {
  const { values: v, positionals: p } = parse(
    args,
    {
      ...fmtOpt,
      ...quiet,
      O: { type: "string", short: "O" },
      c: { type: "boolean", short: "c" },
      p: { type: "boolean", short: "p" },
      o: { type: "string", short: "o", multiple: true },
      salvage: { type: "boolean" },
    },
    [2, 2],
  );
  const outFormat = Format.parse(v.O ?? "raw");
  if (v.c && outFormat !== "qcow2") throw new UsageError("Compression not supported for this file format");
  const salvage = v.salvage ? new Salvage() : undefined;
  const src = await openImage(host, p[0]!, { readOnly: true, salvage: !!salvage, ...openFmt(v) });
  warn(io, src);
  try {
    const fo = formatOptions(outFormat, v.o as string[] | undefined);
    // Like qemu-img convert (cache=unsafe on the target), the output is not fsynced. The target's
    // writes are synchronous on this thread (`blocking`), the source's reads stay on the thread pool,
    // so the next window is read while this thread writes: the writes of one file are serialized
    // by the kernel anyway (inode lock), and a thread-pool write cost a hand-off each way (about
    // 65 us of latency, 968 writes for the bench's qcow2→vhdx) in which nothing was written.
    // Measured (README, Bench, seventh round): qcow2→vhdx 0.37 → 0.31 s, raw→qcow2 0.42 → 0.34 s.
    const outHost = new RecordingHost(io.host ?? new NodeFileHost({ sync: false, blocking: true }));
    const progress = new Progress(io, !!v.p && !v.q && io.isTTY);
    let dst: Image | null = null;
    // Compression across cores when the worker script is there (the built package); else on this thread.
    let ownCompressor: Compressor | null = null;
    const compressor = () => {
      if (io.compressor) return io.compressor;
      ownCompressor ??= WorkerCompressor.available() ? new WorkerCompressor() : inlineCompressor;
      return ownCompressor;
    };
    try {
      dst = await createImage(outHost, p[1]!, { format: outFormat, size: src.size(), ...fo });
      // Table updates written once at the end, in an order a kill cannot corrupt (each format's deferMetadata).
      if (dst instanceof Qcow2Image || dst instanceof VdiImage || dst instanceof VmdkImage || dst instanceof VhdxImage)
        dst.deferMetadata();
      await copyContent(src, dst, { compress: !!v.c, zeroGranularity: 4096, salvage, compressor }, progress);
      await dst.flush();
      const done = dst;
      dst = null;
      await done.close();
    } catch (e) {
      // A failed conversion removes the files it created (the output, a VMDK's extent files)
      // instead of leaving a full-size image of partial content; the error is reported as is.
      await dst?.close().catch(() => {});
      await outHost.removeCreated();
      throw e;
    } finally {
      progress.end();
      await (ownCompressor as Compressor | null)?.close();
    }
    if (salvage) for (const line of salvage.report()) io.stderr(`ringzero-img: ${line}\n`);
    return 0;
  } finally {
    await src.close();
  }
}

/** Prints what an open found but did not refuse (a VHDX whose first region table is corrupt). */
function warn(io: CliIo, img: Image): void {
  if (img instanceof VhdxImage) for (const w of img.warnings) io.stderr(`ringzero-img: warning: ${escapeName(w)}\n`);
}

/** A host that remembers the files it created, to remove them when the operation fails. */
class RecordingHost implements StoreHost {
  private readonly created: string[] = [];
  constructor(private readonly inner: StoreHost) {}
  open(name: string, options: { readOnly: boolean }): Promise<ByteStore> {
    return this.inner.open(name, options);
  }
  async create(name: string): Promise<ByteStore> {
    const s = await this.inner.create(name);
    this.created.push(name);
    return s;
  }
  resolve(base: string, name: string): string {
    return this.inner.resolve(base, name);
  }
  canonical(name: string): Promise<string> {
    return this.inner.canonical(name);
  }
  exists(name: string): Promise<boolean> {
    return this.inner.exists(name);
  }
  /** Best effort: a file that cannot be removed stays (the original error matters more). */
  async removeCreated(): Promise<void> {
    for (const name of this.created.splice(0)) await this.inner.remove?.(name).catch(() => {});
  }
}

/** File names of the layers of a chain, top first (as the host resolves them). */
function chainNames(img: Image, file: string, host: StoreHost): string[] {
  const names = [file];
  let cur: BlockBackend | null = img;
  let name = file;
  while (cur instanceof Qcow2Image && cur.backingFile !== null) {
    name = host.resolve(name, cur.backingFile);
    names.push(name);
    cur = cur.backingImage;
  }
  return names;
}

async function map(args: string[], io: CliIo, host: StoreHost): Promise<number> {
  const { values: v, positionals: p } = parse(args, { ...fmtOpt, ...outputOpt }, [1, 1]);
  const output = Output.parse(v.output);
  const img = await openImage(host, p[0]!, { readOnly: true, ...openFmt(v) });
  warn(io, img);
  try {
    const extents = await allocationMap(img);
    if (output === "json") {
      const rows = extents.map((e) => {
        const o: Record<string, unknown> = {
          start: e.start,
          length: e.length,
          depth: e.depth,
          present: e.kind !== "unallocated",
          zero: e.kind !== "data",
          data: e.kind === "data",
        };
        if (e.hostOffset !== undefined) o.offset = e.hostOffset;
        return JSON.stringify(o).replace(/^\{/, "{ ").replace(/,"/g, ', "').replace(/":/g, '": ');
      });
      io.stdout(`[${rows.join(",\n")}]\n`);
      return 0;
    }
    const names = chainNames(img, p[0]!, host);
    const hexa = (n: number) => (n === 0 ? "0" : `0x${n.toString(16)}`);
    const lines = [`${"Offset".padEnd(16)}${"Length".padEnd(16)}${"Mapped to".padEnd(16)}File`];
    for (const e of extents) {
      if (e.kind !== "data" || e.hostOffset === undefined) continue;
      lines.push(
        `${hexa(e.start).padEnd(16)}${hexa(e.length).padEnd(16)}${hexa(e.hostOffset).padEnd(16)}${e.depth === 0 ? names[0] : escapeName(names[e.depth] ?? "?")}`,
      );
    }
    io.stdout(`${lines.join("\n")}\n`);
    return 0;
  } finally {
    await img.close();
  }
}

async function compare(args: string[], io: CliIo, host: StoreHost): Promise<number> {
  const { values: v, positionals: p } = parse(
    args,
    {
      ...fmtOpt,
      ...quiet,
      F: { type: "string", short: "F" },
      s: { type: "boolean", short: "s" },
      p: { type: "boolean", short: "p" },
    },
    [2, 2],
  );
  const a = await openImage(host, p[0]!, { readOnly: true, ...openFmt(v) });
  warn(io, a);
  try {
    const b = await openImage(host, p[1]!, {
      readOnly: true,
      ...(v.F !== undefined ? { format: Format.parse(v.F) } : {}),
    });
    try {
      const say = (s: string) => {
        if (!v.q) io.stdout(`${s}\n`);
      };
      if (v.s && a.size() !== b.size()) {
        say("Strict mode: Image size mismatch!");
        return 1;
      }
      const progress = new Progress(io, !!v.p && !v.q && io.isTTY);
      const common = Math.min(a.size(), b.size());
      const total = Math.max(a.size(), b.size());
      const mismatch = await firstMismatch(a, b, 0, common, progress, total);
      if (mismatch !== null) {
        say(`Content mismatch at offset ${mismatch}!`);
        return 1;
      }
      // The longer image must read as zeros past the end of the shorter one.
      const longer = a.size() > b.size() ? a : b;
      const nz = await firstMismatch(longer, null, common, total - common, progress, total);
      if (nz !== null) {
        say(`Content mismatch at offset ${nz}!`);
        return 1;
      }
      progress.end();
      say("Images are identical.");
      return 0;
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
}

/** First offset in [start, start+length) where `a` differs from `b` (or from zeros when b is null). */
async function firstMismatch(
  a: BlockBackend,
  b: BlockBackend | null,
  start: number,
  length: number,
  progress: Progress,
  total: number,
): Promise<number | null> {
  let pos = start;
  const end = start + length;
  while (pos < end) {
    const sa = await a.blockStatus(pos, Math.min(end - pos, 64 * CHUNK));
    const sb = b ? await b.blockStatus(pos, Math.min(end - pos, 64 * CHUNK)) : null;
    let n = Math.min(sa.length, sb ? sb.length : sa.length);
    if (sa.kind !== "data" && (!sb || sb.kind !== "data")) {
      pos += n;
      progress.update(pos, total);
      continue;
    }
    n = Math.min(n, CHUNK);
    const ba = await a.read(pos, n);
    const bb = b ? await b.read(pos, n) : new Uint8Array(n);
    for (let i = 0; i < n; i++) if (ba[i] !== bb[i]) return pos + Math.floor(i / 512) * 512;
    pos += n;
    progress.update(pos, total);
  }
  return null;
}

async function resize(args: string[], io: CliIo, host: StoreHost): Promise<number> {
  const { values: v, positionals: p } = parse(args, { ...fmtOpt, ...quiet, shrink: { type: "boolean" } }, [2, 2]);
  const spec = p[1]!;
  const rel = spec[0] === "+" || spec[0] === "-" ? spec[0] : null;
  const amount = SizeArg.parse(rel ? spec.slice(1) : spec);
  const img = await openImage(host, p[0]!, { readOnly: false, noBacking: true, ...openFmt(v) });
  try {
    const newSize = rel === "+" ? img.size() + amount : rel === "-" ? img.size() - amount : amount;
    if (newSize < 0) throw new UsageError("New image size must be positive");
    if (newSize < img.size() && !v.shrink)
      throw new UsageError("Use the --shrink option to perform a shrink operation.");
    // --shrink is the consent qcow2 needs to drop allocated clusters past the new end.
    if (img instanceof Qcow2Image) await img.resize(newSize, { shrink: !!v.shrink });
    else await img.resize(newSize);
    if (!v.q) io.stdout("Image resized.\n");
    return 0;
  } finally {
    await img.close();
  }
}

async function commit(args: string[], io: CliIo, host: StoreHost): Promise<number> {
  const { values: v, positionals: p } = parse(
    args,
    { ...fmtOpt, ...quiet, d: { type: "boolean", short: "d" } },
    [1, 1],
  );
  const file = p[0]!;
  const top = await openImage(host, file, { readOnly: !!v.d, noBacking: true, ...openFmt(v) });
  try {
    if (!(top instanceof Qcow2Image) || top.backingFile === null)
      throw new UsageError("Image does not have a backing file");
    const bname = host.resolve(file, top.backingFile);
    const base = await openImage(host, bname, {
      readOnly: false,
      ...(top.backingFormat !== null ? { format: Format.parse(top.backingFormat) } : {}),
    });
    try {
      if (base.size() < top.size()) await base.resize(top.size());
      for (const e of await allocationMap(top)) {
        if (e.depth !== 0 || e.kind === "unallocated") continue;
        if (e.kind === "zero") {
          await base.writeZeroes(e.start, e.length);
          continue;
        }
        for (let pos = e.start; pos < e.start + e.length; pos += CHUNK) {
          const n = Math.min(CHUNK, e.start + e.length - pos);
          await base.write(pos, await top.read(pos, n));
        }
      }
      await base.flush();
    } finally {
      await base.close();
    }
    // Empty the top image (qemu-img commit without -d): its clusters become unallocated.
    if (!v.d) await top.discard(0, top.size());
    if (!v.q) io.stdout("Image committed.\n");
    return 0;
  } finally {
    await top.close();
  }
}

async function rebase(args: string[], _io: CliIo, host: StoreHost): Promise<number> {
  const { values: v, positionals: p } = parse(
    args,
    {
      ...fmtOpt,
      ...quiet,
      b: { type: "string", short: "b" },
      F: { type: "string", short: "F" },
      u: { type: "boolean", short: "u" },
    },
    [1, 1],
  );
  if (v.b === undefined) throw new UsageError("Must specify backing file (-b) or use unsafe mode (-u)");
  const file = p[0]!;
  const newName = v.b as string;
  const newFormat = v.F !== undefined ? Format.parse(v.F) : undefined;
  const top = await openImage(host, file, { readOnly: false, noBacking: !!v.u, ...openFmt(v) });
  try {
    if (!(top instanceof Qcow2Image)) throw new UsageError("rebase needs a qcow2 image");
    let fmt: string | null = newFormat ?? null;
    if (!v.u) {
      // Safe mode: wherever the top image shows its old backing file, keep those bytes if the new one differs.
      const nb =
        newName === ""
          ? null
          : await openImage(host, host.resolve(file, newName), {
              readOnly: true,
              ...(newFormat ? { format: newFormat } : {}),
            });
      try {
        fmt ??= nb?.format ?? null;
        for (const e of await allocationMap(top)) {
          if (e.depth === 0) continue;
          for (let pos = e.start; pos < e.start + e.length; pos += CHUNK) {
            const n = Math.min(CHUNK, e.start + e.length - pos);
            const old = await top.read(pos, n);
            const neu = new Uint8Array(n);
            if (nb && pos < nb.size()) await nb.readInto(pos, neu.subarray(0, Math.min(n, nb.size() - pos)));
            for (let o = 0; o < n; o += top.clusterSize) {
              const a = old.subarray(o, o + top.clusterSize);
              const b = neu.subarray(o, o + top.clusterSize);
              if (Buffer.compare(a, b) !== 0) await top.write(pos + o, a);
            }
          }
        }
      } finally {
        await nb?.close();
      }
    }
    await top.setBackingFile(newName === "" ? null : newName, fmt);
    return 0;
  } finally {
    await top.close();
  }
}
