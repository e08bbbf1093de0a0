#!/usr/bin/env bash
# Installs everything ringzero's build, tests and demo need on a fresh machine
# that has only Node.js and npm: pnpm (through npm), the Debian packages the
# tests use as reference peers, and the workspace's npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=9.15.9
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  echo "setup: installing pnpm $PNPM_VERSION through npm" >&2
  npm install -g "pnpm@$PNPM_VERSION" >/dev/null 2>&1 || npm install -g "pnpm@$PNPM_VERSION"
fi

if [ "${RINGZERO_SKIP_APT:-}" != "1" ]; then
  # tool -> Debian package that provides it
  need=()
  declare -A pkgs=(
    [qemu-system-riscv64]=qemu-system-misc
    [qemu-img]=qemu-utils
    [qemu-io]=qemu-utils
    [fsck.fat]=dosfstools
    [mcopy]=mtools
    [isoinfo]=genisoimage
    [xorriso]=xorriso
    [riscv64-unknown-elf-gcc]=gcc-riscv64-unknown-elf
    [riscv64-unknown-elf-objdump]=binutils-riscv64-unknown-elf
    [dtc]=device-tree-compiler
    [socat]=socat
    [busybox]=busybox
    [tshark]=tshark
    [curl]=curl
    [ip]=iproute2
    [qemu-riscv64]=qemu-user
    [riscv64-linux-gnu-gcc]=gcc-riscv64-linux-gnu
    [flex]=flex
    [bison]=bison
    [bc]=bc
    [cpio]=cpio
    [gpgv]=gpgv
    [chromium]=chromium
  )
  for tool in "${!pkgs[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || need+=("${pkgs[$tool]}")
  done
  if [ "${#need[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing Debian packages: ${need[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

if [ -n "${CI:-}" ]; then
  pnpm install --frozen-lockfile --reporter=silent
else
  pnpm install --reporter=silent
fi
