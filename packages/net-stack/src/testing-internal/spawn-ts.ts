// Spawns a Node child process running one of this package's TypeScript files.
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export function spawnTs(file: URL, args: string[]): ChildProcess {
  const loader = new URL("./ts-loader.mjs", import.meta.url).href;
  const register = `data:text/javascript,import{register}from"node:module";register(${JSON.stringify(loader)});`;
  return spawn(process.execPath, ["--import", register, fileURLToPath(file), ...args], {
    stdio: ["pipe", "pipe", "pipe"],
  });
}
