import { defineConfig } from "vitest/config";

// One vitest project per package (each package has its own vitest.config.ts),
// plus the repository-level checks in tests/.
export default defineConfig({
  test: {
    projects: ["packages/*", "apps/*", "tests"],
  },
});
