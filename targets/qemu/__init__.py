"""The QEMU twins. The Cortex-M4 twin of the Nano 33 BLE: build with arm-none-eabi-gcc for the nRF52840 memory map
and run under `qemu-system-arm -M mps2-an386 -icount shift=0`, reading its UART through the same SerialLink as a
real board. The Xtensa twin of the ESP-EYE (esp_eye.py) reuses its session and target classes.

    toolchain.py   tool lookup, build_elf(sources, out_elf, ...) -> ElfBuild, elf_sizes, LinkOverflow
    session.py     QemuSession(elf, serial="tcp"|"pty"|"stdio", fault=...) -> SerialLink; run_elf -> QemuRun
    faults.py      kill / garble / stall injected on the serial path (HIL tests)
    nano33ble.py   NanoQemuTarget, the `nano33ble-qemu` target
    esp_eye.py     EspEyeQemuTarget, the `esp-eye-qemu` target: lx106 toolchain, ESP32 memory map, XtensaSession

The low-level API (build_elf, run_elf, QemuSession) is used by the runtime's tests as well as by the target.
"""

from __future__ import annotations

from edgefold.targets.qemu.nano33ble import (
    DEFAULT_CPI,
    NANO33BLE_QEMU,
    TWIN_BUDGET,
    TWIN_CLOCK_HZ,
    NanoQemuTarget,
    twin_costs,
)
from edgefold.targets.qemu.session import INSNS_PER_TICK, QemuRun, QemuSession, qemu_command, run_elf
from edgefold.targets.qemu.toolchain import (
    FLASH_BYTES,
    FLASH_ORIGIN,
    GCC,
    MIN_STACK,
    QEMU,
    RAM_BYTES,
    RAM_ORIGIN,
    SIZE,
    ElfBuild,
    ElfSizes,
    LinkOverflow,
    board_sources,
    build_elf,
    elf_sizes,
    require,
)

__all__ = [
    "DEFAULT_CPI", "FLASH_BYTES", "FLASH_ORIGIN", "GCC", "INSNS_PER_TICK", "MIN_STACK", "NANO33BLE_QEMU", "QEMU",
    "RAM_BYTES", "RAM_ORIGIN", "SIZE", "TWIN_BUDGET", "TWIN_CLOCK_HZ", "ElfBuild", "ElfSizes", "LinkOverflow",
    "NanoQemuTarget", "QemuRun", "QemuSession", "board_sources", "build_elf", "elf_sizes", "qemu_command", "require",
    "run_elf", "twin_costs",
]
