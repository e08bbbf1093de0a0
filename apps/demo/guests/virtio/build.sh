#!/usr/bin/env bash
# Rebuild the virtio probe guest with Debian's gcc-riscv64-unknown-elf. Linked
# at 0x80200000 so QEMU's -bios default (OpenSBI) and ringzero load it alike.
set -euo pipefail
cd "$(dirname "$0")"
ld=$(mktemp)
trap 'rm -f "$ld"' EXIT
cat > "$ld" <<'LD'
OUTPUT_ARCH(riscv)
ENTRY(_start)
SECTIONS { . = 0x80200000; .text : { *(.text.init) *(.text*) } .rodata : { *(.rodata*) *(.srodata*) }
           .data : { *(.data*) *(.sdata*) } .bss : { *(.bss*) *(.sbss*) *(COMMON) } }
LD
riscv64-unknown-elf-gcc -march=rv64gc -mabi=lp64d -mcmodel=medany -O2 -ffreestanding -fno-builtin -nostdlib \
  -nostartfiles -static -T "$ld" -Wl,--build-id=none,--no-warn-rwx-segments -o virtio.elf start.S virtio.c
riscv64-unknown-elf-strip --strip-debug virtio.elf
