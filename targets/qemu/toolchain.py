"""arm-none-eabi toolchain for the Cortex-M4 twin: tool lookup, building an ELF for the nRF52840 memory map (the
real linker limits decide whether it fits) and its static sizes.

    build_elf(sources, out_elf, include_dirs=..., defines=...) -> ElfBuild (sizes from arm-none-eabi-size)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edgefold.targets.harness import BOARDS_DIR

from edgefold.core.errors import EdgefoldError, ToolchainMissing

BOARD_DIR = BOARDS_DIR / "qemu_an386"
LINKER_SCRIPT = BOARD_DIR / "nrf52840_twin.ld"

CPU_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
CFLAGS = ["-O2", "-g", "-ffunction-sections", "-fdata-sections", "-Wall", "-Wno-unused-function"]

# nRF52840 as linked for the Nano 33 BLE (application region after the 64 KB bootloader).
FLASH_ORIGIN = 0x10000
FLASH_BYTES = 983_040
RAM_ORIGIN = 0x2000_0000
RAM_BYTES = 256 * 1024
MIN_STACK = 8 * 1024

GCC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"
QEMU = "qemu-system-arm"
_HINTS = {
    GCC: "install the Arm GNU toolchain: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi",
    SIZE: "install binutils for Arm: apt-get install binutils-arm-none-eabi",
    QEMU: "install QEMU for Arm: apt-get install qemu-system-arm",
}


class LinkOverflow(EdgefoldError):
    """The linker refused the image: it does not fit the twin's Flash or RAM (nRF52840, or the ESP32 map)."""

    def __init__(self, message: str, flash_over: int = 0, ram_over: int = 0) -> None:
        super().__init__(message)
        self.flash_over = flash_over
        self.ram_over = ram_over


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolchainMissing(f"{tool} not found: {_HINTS.get(tool, 'install it')}")
    return path


@dataclass(frozen=True)
class ElfSizes:
    text: int  # code + read-only data placed in Flash (.text, .rodata, exception tables)
    data: int  # initialised RAM (its initial values also occupy Flash)
    bss: int  # zero-initialised RAM
    boot: int  # the boot stub standing in for the bootloader (not counted in flash)

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def static_ram(self) -> int:
        return self.data + self.bss


@dataclass
class ElfBuild:
    elf: Path
    sizes: ElfSizes
    log: str = ""



def board_sources(newlib: bool = True) -> list[Path]:
    srcs = [BOARD_DIR / "startup.S", BOARD_DIR / "board.c"]
    srcs.append(BOARD_DIR / ("syscalls.c" if newlib else "minilibc.c"))
    return srcs


def build_elf(
    sources: Iterable[str | os.PathLike],
    out_elf: str | os.PathLike,
    include_dirs: Iterable[str | os.PathLike] = (),
    defines: dict[str, str | int | None] | None = None,
    opt: str = "-O2",
    extra_cflags: Sequence[str] = (),
    newlib: bool = True,
    with_board: bool = True,
    min_stack: int = MIN_STACK,
    jobs: int = 2,
) -> ElfBuild:
    """Compile C/C++/assembly sources (plus the board layer) and link them for the nRF52840 memory map.

    Raises LinkOverflow when the image does not fit (the real linker limits decide), EdgefoldError with the
    compiler's message on a compile error, ToolchainMissing when arm-none-eabi-gcc is absent.
    """
    gcc = require(GCC)
    out_elf = Path(out_elf)
    srcs = [Path(s) for s in sources] + (board_sources(newlib) if with_board else [])
    flags = CPU_FLAGS + compile_flags([BOARDS_DIR, *include_dirs], defines, opt)
    if not newlib:
        # Without newlib nothing provides memset/memcpy but minilibc.c; stop GCC from turning loops into calls.
        flags.append("-fno-tree-loop-distribute-patterns")
    flags += list(extra_cflags)
    objs = compile_objects(gcc, flags, srcs, out_elf.parent / (out_elf.stem + ".obj"), jobs)

    tmp_elf = out_elf.with_name(out_elf.name + ".tmp")
    link = [gcc, *CPU_FLAGS, "-nostartfiles", f"-T{LINKER_SCRIPT}", "-Wl,--gc-sections",
            f"-Wl,--defsym=EF_MIN_STACK={int(min_stack)}", f"-Wl,-Map={out_elf.with_suffix('.map')}",
            *map(str, objs), "-o", str(tmp_elf)]
    link += ["--specs=nano.specs", "-lc", "-lm", "-lgcc"] if newlib else ["-nostdlib", "-lgcc"]
    r = subprocess.run(link, capture_output=True, text=True)
    if r.returncode != 0:
        tmp_elf.unlink(missing_ok=True)
        _raise_link_error(r.stderr)
    os.replace(tmp_elf, out_elf)
    return ElfBuild(out_elf, elf_sizes(out_elf), log=r.stderr)


def compile_flags(include_dirs: Iterable[str | os.PathLike], defines: dict[str, str | int | None] | None,
                  opt: str = "-O2") -> list[str]:
    """The twins' common C flags (CFLAGS at optimisation `opt`), include folders and -D defines."""
    flags = [f for f in CFLAGS if f != "-O2"] + [opt] + [f"-I{Path(i)}" for i in include_dirs]
    return flags + [f"-D{k}" if v is None else f"-D{k}={v}" for k, v in (defines or {}).items()]


def compile_objects(gcc: str, flags: Sequence[str], sources: Sequence[Path], obj_dir: Path, jobs: int = 2
                    ) -> list[Path]:
    """Compile each source (C, C++ or assembly, by suffix) to obj_dir with `jobs` compilers at a time; the first
    compile error is an EdgefoldError naming the file and the compiler's message."""
    obj_dir.mkdir(parents=True, exist_ok=True)

    def compile_one(i_src: tuple[int, Path]) -> Path:
        i, src = i_src
        obj = obj_dir / f"{i:03d}_{src.stem}.o"
        cmd = [gcc, *flags]
        if src.suffix in (".cc", ".cpp", ".cxx"):
            cmd += ["-std=gnu++17", "-fno-exceptions", "-fno-rtti"]
        elif src.suffix in (".c",):
            cmd += ["-std=gnu11"]
        cmd += ["-c", str(src), "-o", str(obj)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise EdgefoldError(f"{Path(gcc).name} failed on {src.name}: {first_error(r.stderr)}")
        return obj

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(compile_one, enumerate(sources)))


def first_error(stderr: str) -> str:
    """The compiler's or linker's first error line (else its last line)."""
    for line in stderr.splitlines():
        if "error" in line:
            return line.strip()
    return stderr.strip().splitlines()[-1] if stderr.strip() else "unknown error"


def _raise_link_error(stderr: str) -> None:
    flash = re.search(r"region `FLASH' overflowed by (\d+) bytes", stderr)
    ram = re.search(r"region `RAM' overflowed by (\d+) bytes", stderr)
    stack = "less than EF_MIN_STACK" in stderr
    if flash or ram or stack:
        f_over = int(flash.group(1)) if flash else 0
        r_over = int(ram.group(1)) if ram else 0
        parts = []
        if f_over:
            parts.append(f"Flash overflowed by {f_over:,} bytes (limit {FLASH_BYTES:,})")
        if r_over:
            parts.append(f"RAM overflowed by {r_over:,} bytes (limit {RAM_BYTES:,})")
        if stack and not r_over:
            parts.append(f"RAM: less than {MIN_STACK // 1024} KB left for the stack (limit {RAM_BYTES:,})")
        raise LinkOverflow("image does not fit the nRF52840: " + "; ".join(parts), f_over, r_over)
    raise EdgefoldError(f"arm-none-eabi-gcc link failed: {first_error(stderr)}")


def elf_sizes(elf: str | os.PathLike) -> ElfSizes:
    """Static sizes from `arm-none-eabi-size -A` (per-section, so the boot stub can be told apart)."""
    r = subprocess.run([require(SIZE), "-A", str(elf)], capture_output=True, text=True)
    if r.returncode != 0:
        raise EdgefoldError(f"arm-none-eabi-size failed: {r.stderr.strip()}")
    text = data = bss = boot = 0
    for line in r.stdout.splitlines():
        m = re.match(r"^(\S+)\s+(\d+)\s+(\d+)\s*$", line)
        if not m:
            continue
        name, size, addr = m.group(1), int(m.group(2)), int(m.group(3))
        if size == 0 or addr == 0 and name != ".boot":
            continue  # debug sections have address 0
        if name == ".boot":
            boot += size
        elif name == ".data":
            data += size
        elif name == ".bss":
            bss += size
        elif FLASH_ORIGIN <= addr < FLASH_ORIGIN + FLASH_BYTES:
            text += size
        elif RAM_ORIGIN <= addr < RAM_ORIGIN + RAM_BYTES:
            bss += size  # any other NOLOAD RAM section
    return ElfSizes(text=text, data=data, bss=bss, boot=boot)
