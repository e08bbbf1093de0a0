#!/usr/bin/env bash
# The README's demo command: install everything, build, and run the demo guest.
set -euo pipefail
cd "$(dirname "$0")/.."
RINGZERO_SKIP_APT=${RINGZERO_SKIP_APT:-1} bash scripts/setup.sh
pnpm --silent demo run "$@"
