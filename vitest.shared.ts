// Shared vitest settings: resolve workspace packages to their TypeScript
// sources (the "@ringzero/source" export condition) so tests never need a build.
export const sourceConditions = {
  resolve: { conditions: ["@ringzero/source", "module", "node", "development|production"] },
  ssr: { resolve: { conditions: ["@ringzero/source", "module", "node", "development|production"] } },
};
