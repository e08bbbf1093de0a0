#!/usr/bin/env bash
# Rebuild the embedded demo guest with Debian's gcc-riscv64-unknown-elf.
set -euo pipefail
cd "$(dirname "$0")"
cat > /tmp/rz-hello.ld <<'LD'
OUTPUT_ARCH(riscv)
ENTRY(_start)
SECTIONS { . = 0x80000000; .text : { *(.text.init) *(.text*) } .rodata : { *(.rodata*) } .data : { *(.data*) } .bss : { *(.bss*) } }
LD
riscv64-unknown-elf-gcc -march=rv64gc -mabi=lp64d -nostdlib -nostartfiles -static \
  -T /tmp/rz-hello.ld -Wl,--build-id=none,--no-warn-rwx-segments -o hello.elf hello.S
riscv64-unknown-elf-strip --strip-debug hello.elf
