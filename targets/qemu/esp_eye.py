"""The ESP-EYE's Xtensa twin: the benchmark harness and micro runtime built with gcc-xtensa-lx106 for an ESP32-shaped
memory map and run under `qemu-system-xtensa -M sim -cpu lx106 -semihosting -icount shift=0,sleep=off`; the EF1
report comes over QEMU's semihosting console, read by the same SerialLink and parser as a board's UART.

What it is and is not: lx106 is the ESP8266's Xtensa core (call0 ABI; no windowed registers, no MAC16, no
zero-overhead loops, no SEXT or MIN/MAX, no FPU, no 32x32->64 multiply, no divide). The ESP-EYE's ESP32 is a dual-core
Xtensa LX6 with all of those. So the counts are Xtensa instruction counts of the same ISA family, compiled for a
smaller core; the latency for the board is an estimate (instructions x CPI / 240 MHz) and labelled so.

Debian's gcc-xtensa-lx106 libgcc lacks the 64-bit multiply and the divide helpers the runtime needs (firmware/boards/
xtensa_sim/lx106_libgcc.c provides them) and most soft-float routines (float add/sub/mul, int->float, float<->double:
it has division, comparisons and float->int only), so models with float32 kernels cannot be linked here; that is a
one-line error naming the routines.

Low-level API: build_elf(sources, out_elf, include_dirs=, defines=) -> qemu.ElfBuild; run_elf(elf) -> qemu.QemuRun;
XtensaSession(elf) (a QemuSession: serial "tcp" or "stdio", fault injection); EspEyeQemuTarget ("esp-eye-qemu").
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from edgefold.targets.base import BenchResult, BuildResult, DeviceSpec, FlashResult, Opt
from edgefold.targets.esp_eye import APP_PARTITION, STATIC_DRAM
from edgefold.targets.fit import BoardBudget
from edgefold.targets.harness import BOARDS_DIR
from edgefold.targets.qemu import toolchain
from edgefold.targets.qemu.nano33ble import NanoQemuTarget
from edgefold.targets.qemu.session import QemuRun, QemuSession
from edgefold.targets.qemu.session import run_elf as run_qemu
from edgefold.targets.qemu.toolchain import ElfBuild, ElfSizes, LinkOverflow

from edgefold.core.errors import EdgefoldError, ToolchainMissing

BOARD_DIR = BOARDS_DIR / "xtensa_sim"
LINKER_SCRIPT = BOARD_DIR / "esp32_twin.ld"

GCC = "xtensa-lx106-elf-gcc"
SIZE = "xtensa-lx106-elf-size"
QEMU = "qemu-system-xtensa"
_HINTS = {
    GCC: "install the Xtensa lx106 toolchain: apt-get install gcc-xtensa-lx106 picolibc-xtensa-lx106-elf",
    SIZE: "install binutils for Xtensa lx106: apt-get install binutils-xtensa-lx106",
    QEMU: "install QEMU for Xtensa: apt-get install qemu-system-misc",
}

# -mtext-section-literals: literal pools go into .text next to the code (L32R only reaches backwards); -mlongcalls:
# calls through a register, so code anywhere in the 3 MB FLASH can call anything.
CPU_FLAGS = ["-mlongcalls", "-mtext-section-literals"]

# The ESP-EYE as its Arduino firmware is linked (targets/esp_eye.py; firmware/boards/xtensa_sim/esp32_twin.ld places
# the same sizes where QEMU's lx106 has memory: Flash at 0x50000000, static DRAM at the ESP32's own address).
FLASH_ORIGIN = 0x5000_0000
FLASH_BYTES = APP_PARTITION
DRAM_BYTES = STATIC_DRAM
LOOP_TASK_STACK = 8192  # the Arduino-ESP32 loop task's default stack (getArduinoLoopTaskStackSize())
INSNS_PER_TICK = 25  # CCOUNT at the lx106's 40 MHz, -icount shift=0 (1 instruction = 1 ns): the resolution
CLOCK_HZ = 240_000_000

# Soft-float routines GCC calls for float/double arithmetic (e.g. __addsf3, __muldf3, __floatsisf, __extendsfdf2).
_SOFT_FLOAT = re.compile(r"undefined reference to `(__\w+[sd]f\d?)'")


def require(tool: str) -> str:
    try:
        return toolchain.require(tool)
    except ToolchainMissing:
        raise ToolchainMissing(f"{tool} not found: {_HINTS[tool]}") from None


def picolibc_include() -> Path:
    """picolibc's headers for the lx106 (picolibc-xtensa-lx106-elf), found next to its libc.a on GCC's path."""
    r = subprocess.run([require(GCC), "-print-file-name=libc.a"], capture_output=True, text=True)
    libc = Path(r.stdout.strip())
    inc = libc.parent.parent / "include"
    if not libc.is_absolute() or not (inc / "string.h").is_file():
        raise ToolchainMissing("picolibc for xtensa-lx106 not found: apt-get install picolibc-xtensa-lx106-elf")
    return inc


def board_sources() -> list[Path]:
    return [BOARD_DIR / "startup.S", BOARD_DIR / "board.c", BOARD_DIR / "lx106_libgcc.c"]


def build_elf(
    sources: Iterable[str | os.PathLike],
    out_elf: str | os.PathLike,
    include_dirs: Iterable[str | os.PathLike] = (),
    defines: dict[str, str | int | None] | None = None,
    opt: str = "-O2",
    with_board: bool = True,
    jobs: int = 2,
) -> ElfBuild:
    """Compile C/assembly sources (plus the board layer) for the lx106 and link them for the ESP-EYE's memory map.

    Raises LinkOverflow when the image does not fit the 3 MB partition or the 124,580 B of static DRAM, EdgefoldError
    with the compiler's message on a compile error or a float routine the toolchain lacks, ToolchainMissing when
    gcc-xtensa-lx106 or picolibc is absent.
    """
    gcc = require(GCC)
    out_elf = Path(out_elf)
    srcs = [Path(s) for s in sources] + (board_sources() if with_board else [])
    flags = [*CPU_FLAGS, "-isystem", str(picolibc_include()),
             *toolchain.compile_flags([BOARDS_DIR, *include_dirs], defines, opt)]
    objs = toolchain.compile_objects(gcc, flags, srcs, out_elf.parent / (out_elf.stem + ".obj"), jobs)

    tmp_elf = out_elf.with_name(out_elf.name + ".tmp")
    link = [gcc, *CPU_FLAGS, "-nostdlib", "-nostartfiles", f"-T{LINKER_SCRIPT}", "-Wl,--gc-sections",
            f"-Wl,-Map={out_elf.with_suffix('.map')}", *map(str, objs), "-o", str(tmp_elf),
            "-Wl,--start-group", "-lc", "-lm", "-lgcc", "-Wl,--end-group"]
    r = subprocess.run(link, capture_output=True, text=True)
    if r.returncode != 0:
        tmp_elf.unlink(missing_ok=True)
        _raise_link_error(r.stderr)
    os.replace(tmp_elf, out_elf)
    return ElfBuild(out_elf, elf_sizes(out_elf), log=r.stderr)


def _raise_link_error(stderr: str) -> None:
    flash = re.search(r"region `FLASH' overflowed by (\d+) bytes", stderr)
    dram = re.search(r"region `DRAM' overflowed by (\d+) bytes", stderr)
    if flash or dram:
        f_over = int(flash.group(1)) if flash else 0
        d_over = int(dram.group(1)) if dram else 0
        parts = []
        if f_over:
            parts.append(f"Flash overflowed by {f_over:,} bytes (application partition {FLASH_BYTES:,})")
        if d_over:
            parts.append(f"DRAM overflowed by {d_over:,} bytes (static DRAM {DRAM_BYTES:,})")
        raise LinkOverflow("image does not fit the ESP32: " + "; ".join(parts), f_over, d_over)
    soft = sorted(set(_SOFT_FLOAT.findall(stderr)))
    if soft:
        raise EdgefoldError(f"the model needs floating-point arithmetic ({', '.join(soft[:3])}), which the "
                            "gcc-xtensa-lx106 libgcc lacks: the Xtensa twin runs models whose kernels are all "
                            "integer (int8); a float32 op stays on the board (--target esp-eye)")
    raise EdgefoldError(f"{GCC} link failed: {toolchain.first_error(stderr)}")


def elf_sizes(elf: str | os.PathLike) -> ElfSizes:
    """Static sizes from `xtensa-lx106-elf-size -A`: Flash = code + constants + .data's initial values."""
    r = subprocess.run([require(SIZE), "-A", str(elf)], capture_output=True, text=True)
    if r.returncode != 0:
        raise EdgefoldError(f"{SIZE} failed: {r.stderr.strip()}")
    text = data = bss = 0
    for name, size, addr in re.findall(r"^(\S+)\s+(\d+)\s+(\d+)\s*$", r.stdout, re.M):
        size, addr = int(size), int(addr)
        if name == ".data":
            data += size
        elif name == ".bss":
            bss += size
        elif size and FLASH_ORIGIN <= addr < FLASH_ORIGIN + FLASH_BYTES:
            text += size
    return ElfSizes(text=text, data=data, bss=bss, boot=0)


class XtensaSession(QemuSession):
    """QemuSession for the lx106 sim machine: its semihosting console is the `-serial` chardev.

    The program leaves through semihosting exit(), which ends QEMU at once (there is no shutdown to pause at), so
    only "tcp" and "stdio" keep every byte; a pty could lose the tail.
    """

    program = QEMU

    def __init__(self, elf: str | os.PathLike, serial: str = "tcp", fault: str | None = None,
                 fault_after_lines: int = 3, start_timeout_s: float = 10.0) -> None:
        if serial not in ("tcp", "stdio"):
            raise EdgefoldError(f"the Xtensa twin's serial mode is tcp or stdio, not {serial!r}")
        super().__init__(elf, serial=serial, fault=fault, fault_after_lines=fault_after_lines,
                         start_timeout_s=start_timeout_s)

    def command(self, serial_arg: str, monitor: str = "none", paused: bool = False) -> list[str]:
        # sleep=off: virtual time advances only with instructions, never with host time while QEMU waits (without
        # it, CCOUNT's phase against the instruction stream varied by a tick between runs)
        return [require(QEMU), "-M", "sim", "-cpu", "lx106", "-semihosting", "-icount", "shift=0,sleep=off",
                "-nographic", "-monitor", monitor, "-serial", serial_arg, "-kernel", str(self.elf)]


def run_elf(elf: str | os.PathLike, timeout_s: float = 30.0, serial: str = "tcp") -> QemuRun:
    """Run an lx106 ELF to its exit() and return what it wrote (the QEMU twins' run_elf with the Xtensa session)."""
    return run_qemu(elf, timeout_s=timeout_s, serial=serial, session_class=XtensaSession)


# Cycles per instruction assumed for the latency *estimate* of the ESP-EYE (ESP32, Xtensa LX6 at 240 MHz). The LX6
# issues one instruction per cycle; loads take one more cycle when the next instruction uses the result, taken
# branches cost 2-3 cycles (no branch prediction), and code and weights are read from Flash through a 32 KB cache
# that misses on long weight streams. 1.4 is assumed for int8 kernels; it is labelled an estimate wherever it appears.
DEFAULT_CPI = 1.4

# The ESP32's core configuration (esp32_v3_49_prod, LX6.0.3) has all of these; the lx106 none.
DEVICE = ("ESP-EYE twin: Xtensa lx106 core under QEMU (call0 ABI; no MAC16, zero-overhead loops, SEXT, MIN/MAX, "
          "32x32->64 multiply, divide or FPU); the ESP-EYE's ESP32 is an Xtensa LX6 with windowed registers and all "
          "of those")

ESP_EYE_QEMU = DeviceSpec(
    name="esp-eye-qemu", title="ESP-EYE twin: QEMU Xtensa lx106 core (the ESP32's is an LX6), ESP32 memory map "
    "(instruction counts)", cpu="Xtensa lx106 (emulated)", clock_hz=CLOCK_HZ, ram_bytes=DRAM_BYTES,
    flash_bytes=FLASH_BYTES, kind="mcu", emulated=True, backends=("edgefold",))
# Flash: harness + protocol + board layer + the runtime kernels a CNN uses + picolibc's memcpy/memset (about 16 KB on
# the twin's resnet8 and dscnn builds, rounded up); static DRAM: harness statics and the fault stack (about 1.3 KB;
# the stack itself lives outside static DRAM, as the loop task's does on the ESP32).
TWIN_BUDGET = BoardBudget(flash_base=20 * 1024, ram_base=4 * 1024)


class EspEyeQemuTarget(NanoQemuTarget):
    """The ESP-EYE's twin: the same harness and runtime as the board, linked for its Flash partition and static
    DRAM, counted on an lx106 under QEMU."""

    spec = ESP_EYE_QEMU
    budget = TWIN_BUDGET
    session_class: type[QemuSession] = XtensaSession
    insns_per_tick = INSNS_PER_TICK
    estimate_basis = ("lx106 instructions x CPI / 240 MHz (ESP32 LX6); CPI assumed, not measured; the LX6's MAC16, "
                      "loops, SEXT and 32x32->64 multiply would need fewer instructions")
    default_cpi = DEFAULT_CPI
    board_target = "esp-eye"
    options: ClassVar[dict[str, Opt]] = {**NanoQemuTarget.options, "serial": Opt(str, choices=("tcp", "stdio"))}

    def preflight(self, backend: str, port: str | None = None) -> None:
        """The backend, the lx106 compiler, size tool, picolibc and the Xtensa emulator installed."""
        self._check_backend(backend)
        for tool in (GCC, SIZE, QEMU):
            require(tool)
        picolibc_include()

    def link(self, sources: list[Path], out_elf: Path, include_dirs: list[Path],
             defines: dict[str, str | int | None]) -> ElfBuild:
        return build_elf(sources, out_elf, include_dirs=include_dirs, defines=defines)

    def run_benchmark(self, build: BuildResult, flashed: FlashResult, timeout_s: float) -> BenchResult:
        res = super().run_benchmark(build, flashed, timeout_s)
        res.extra["device"] = DEVICE
        res.extra["core"] = "lx106"
        res.extra["loop_task_stack"] = LOOP_TASK_STACK
        if res.stack_bytes is not None and res.stack_bytes > LOOP_TASK_STACK:
            res.extra["stack_warning"] = (f"the benchmark used {res.stack_bytes:,} B of stack; the Arduino loop "
                                          f"task has {LOOP_TASK_STACK:,} B unless SET_LOOP_TASK_STACK_SIZE raises it")
        return res
