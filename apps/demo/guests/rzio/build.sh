#!/usr/bin/env bash
# Rebuild rzio (4 KiB random I/O inside the Linux guest; see rzio.c) with
# Debian's gcc-riscv64-linux-gnu: static, no libc, no dynamic loader.
# Usage: build.sh [OUT] (default rzio.elf beside this script).
set -euo pipefail
out=$(realpath -m "${1:-$(dirname "$0")/rzio.elf}")
cd "$(dirname "$0")"
riscv64-linux-gnu-gcc -march=rv64gc -mabi=lp64d -O2 -ffreestanding -fno-builtin -fno-stack-protector -fno-pie \
  -nostdlib -nostartfiles -static -no-pie -Wl,--build-id=none,--no-warn-rwx-segments -o "$out" rzio.c
riscv64-linux-gnu-strip "$out"
