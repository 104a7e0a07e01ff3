#!/usr/bin/env bash
# Installs the Debian packages edgefold's emulated targets need, only if something is missing.
# arm-none-eabi-gcc + newlib: Cortex-M4 firmware; qemu-system-arm: the nano33ble twin; sshd: the Jetson twin;
# gcc-xtensa-lx106 + picolibc + qemu-system-misc (qemu-system-xtensa): the esp-eye-qemu twin.
set -euo pipefail
need=()
command -v arm-none-eabi-gcc >/dev/null || need+=(gcc-arm-none-eabi)
[ -e /usr/lib/arm-none-eabi/newlib ] || [ -e /usr/lib/arm-none-eabi/lib ] || need+=(libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
command -v xtensa-lx106-elf-gcc >/dev/null || need+=(gcc-xtensa-lx106)
[ -e /usr/lib/xtensa-lx106-elf/lib/libc.a ] || need+=(picolibc-xtensa-lx106-elf)
command -v qemu-system-xtensa >/dev/null || need+=(qemu-system-misc)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v gcc >/dev/null || need+=(gcc)
command -v g++ >/dev/null || need+=(g++)  # the Arduino example and model.h compiled as C++ on the host
command -v cmake >/dev/null || need+=(cmake)  # `edgefold export --format c-package` is checked with a CMake build
command -v chromium >/dev/null || need+=(chromium)  # headless check of the `edgefold report` HTML page
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${need[*]} (run: sudo apt-get install --no-install-recommends ${need[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
