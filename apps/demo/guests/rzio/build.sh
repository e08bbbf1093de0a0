#!/usr/bin/env bash
# Rebuild rzio (4 KiB random I/O inside the Linux guest; see rzio.c) with
# Debian's gcc-riscv64-linux-gnu: static, no libc, no dynamic loader.
set -euo pipefail
cd "$(dirname "$0")"
riscv64-linux-gnu-gcc -march=rv64gc -mabi=lp64d -O2 -ffreestanding -fno-builtin -fno-stack-protector -fno-pie \
  -nostdlib -nostartfiles -static -no-pie -Wl,--build-id=none,--no-warn-rwx-segments -o rzio.elf rzio.c
riscv64-linux-gnu-strip rzio.elf
