#!/usr/bin/env bash
# The README's test command: install everything, then lint, typecheck, build,
# check that every package's main entry bundles for the browser, run every
# package's tests, and check that every package is publishable.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
pnpm lint
pnpm typecheck
pnpm build
node scripts/check-browser.mjs
node scripts/run-tests.mjs
node scripts/check-publish.mjs
