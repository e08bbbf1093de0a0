// Where this package's built entry is, for a parent to name it at CreateVp
// (a VP's worker thread imports it; workers run the built JavaScript, also
// when the caller runs from TypeScript sources under vitest).
export function paravisorModuleUrl(): string {
  const here = new URL(import.meta.url);
  return (here.pathname.endsWith(".ts") ? new URL("../dist/index.js", here) : new URL("./index.js", here)).href;
}
