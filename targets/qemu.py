"""The Cortex-M4 twin of the Nano 33 BLE: build with arm-none-eabi-gcc for the nRF52840 memory map and run
under `qemu-system-arm -M mps2-an386 -icount shift=0`, reading its UART through the same SerialLink as a
real board.

Low-level API (used by the runtime's tests as well as the nano33ble-qemu target):

    build_elf(sources, out_elf, include_dirs=..., defines=...) -> ElfBuild (sizes from arm-none-eabi-size)
    run_elf(elf, timeout_s=...) -> QemuRun (UART text, lines)
    QemuSession(elf, serial="tcp"|"pty"|"stdio", fault=...)  -> context manager yielding a SerialLink
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from edgefold.targets.base import BenchResult, BuildResult, DeviceSpec, FitReport, FlashResult, Target
from edgefold.targets.fit import BoardBudget, DoesNotFit
from edgefold.targets.serial_link import LinkClosed, SerialLink

from edgefold.core.errors import DeviceError, EdgefoldError, ToolchainMissing
from edgefold.core.resources import firmware_dir
from edgefold.core.vocab import FAULTS, check_choice

FIRMWARE = firmware_dir()
BOARD_DIR = FIRMWARE / "boards" / "qemu_an386"
LINKER_SCRIPT = BOARD_DIR / "nrf52840_twin.ld"

CPU_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
CFLAGS = ["-O2", "-g", "-ffunction-sections", "-fdata-sections", "-Wall", "-Wno-unused-function"]

# nRF52840 as linked for the Nano 33 BLE (application region after the 64 KB bootloader).
FLASH_ORIGIN = 0x10000
FLASH_BYTES = 983_040
RAM_ORIGIN = 0x2000_0000
RAM_BYTES = 256 * 1024
MIN_STACK = 8 * 1024
INSNS_PER_TICK = 40  # SysTick at 25 MHz with -icount shift=0 (1 instruction = 1 ns): the count's resolution

GCC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"
QEMU = "qemu-system-arm"
_HINTS = {
    GCC: "install the Arm GNU toolchain: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi",
    SIZE: "install binutils for Arm: apt-get install binutils-arm-none-eabi",
    QEMU: "install QEMU for Arm: apt-get install qemu-system-arm",
}


class LinkOverflow(EdgefoldError):
    """The linker refused the image: it does not fit the nRF52840's Flash or RAM."""

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


@dataclass
class QemuRun:
    text: str  # everything the UART sent
    lines: list[str]
    wall_s: float
    timed_out: bool = False
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------- build

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
    flags = CPU_FLAGS + compile_flags([FIRMWARE / "boards", *include_dirs], defines, opt)
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
            raise EdgefoldError(f"{Path(gcc).name} failed on {src.name}: {_first_error(r.stderr)}")
        return obj

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(compile_one, enumerate(sources)))


def _first_error(stderr: str) -> str:
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
    raise EdgefoldError(f"arm-none-eabi-gcc link failed: {_first_error(stderr)}")


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


# ---------------------------------------------------------------- run

def qemu_command(elf: Path, serial_arg: str, monitor: str = "none", paused: bool = False) -> list[str]:
    cmd = [require(QEMU), "-M", "mps2-an386", "-cpu", "cortex-m4", "-icount", "shift=0", "-nographic",
           "-monitor", monitor, "-serial", serial_arg, "-no-reboot", "-kernel", str(elf)]
    if paused:
        # pty mode: start paused (we open the pty first) and pause instead of quitting at the end, because
        # closing the pty's master would discard what the reader has not read yet.
        cmd[1:1] = ["-S", "-action", "shutdown=pause"]
    return cmd


class QemuSession:
    """Run an ELF under QEMU and hand its UART over as a SerialLink. Always kills QEMU on exit.

    serial: "tcp" (default; QEMU connects to a socket we listen on, so no output is lost and no port can
    race), "pty" (QEMU starts paused, we open the pty and then let it run), "stdio" (QEMU's stdout pipe).
    fault: None | "kill" | "garble" | "stall" -- injected on the serial path for the HIL tests.
    Another twin subclasses it and overrides `program` and `command` (targets/esp_eye_qemu.py).
    """

    program = QEMU

    def __init__(self, elf: str | os.PathLike, serial: str = "tcp", fault: str | None = None,
                 fault_after_lines: int = 3, start_timeout_s: float = 10.0) -> None:
        if serial not in ("tcp", "pty", "stdio"):
            raise EdgefoldError(f"unknown serial mode {serial!r} (tcp, pty, stdio)")
        if fault is not None:
            check_choice("fault", fault, FAULTS)
        self.elf = Path(elf)
        if not self.elf.is_file():
            raise EdgefoldError(f"no such ELF: {self.elf}")
        with open(self.elf, "rb") as f:
            if f.read(4) != b"\x7fELF":  # QEMU would load it as a raw image and lock up
                raise EdgefoldError(f"{self.elf} is not an ELF file")
        self._killed = False
        self.serial = serial
        self.fault = fault
        self.fault_after_lines = fault_after_lines
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.link: SerialLink | None = None
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._socks: list[socket.socket] = []
        self._monitor: SerialLink | None = None

    def command(self, serial_arg: str, monitor: str = "none", paused: bool = False) -> list[str]:
        """The emulator's command line with the guest's serial port on `serial_arg` (a QEMU chardev)."""
        return qemu_command(self.elf, serial_arg, monitor, paused)

    # -- start
    def __enter__(self) -> SerialLink:
        try:
            raw = self._start()
            self.link = self._inject(raw) if self.fault else raw
            return self.link
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _popen(self, cmd: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(cmd, start_new_session=True, **kw)

    def _start(self) -> SerialLink:
        if self.serial == "tcp":
            lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._socks.append(lsock)
            lsock.bind(("127.0.0.1", 0))
            lsock.listen(1)
            port = lsock.getsockname()[1]
            self.proc = self._popen(self.command(f"tcp:127.0.0.1:{port}"),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            lsock.settimeout(0.2)
            deadline = time.monotonic() + self.start_timeout_s
            while True:
                try:
                    conn, _ = lsock.accept()
                    break
                except TimeoutError:
                    self._check_started(deadline)
            self._socks.append(conn)
            return SerialLink.from_socket(conn, f"qemu:{self.elf.name}")
        if self.serial == "pty":
            self.proc = self._popen(self.command("pty", monitor="stdio", paused=True),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self._monitor = SerialLink.from_fd(self.proc.stdout.fileno(), "qemu-monitor")
            path = self._wait_pty_path()
            link = SerialLink.open_pty(path)
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"cont\n")  # only now may the guest run: nothing it prints is lost
            self.proc.stdin.flush()
            return link
        self.proc = self._popen(self.command("stdio"), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        return SerialLink.from_fd(self.proc.stdout.fileno(), f"qemu:{self.elf.name}")

    def _check_started(self, deadline: float) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode(errors="replace").strip() if self.proc.stderr else ""
            last = err.splitlines()[-1] if err else f"exit code {self.proc.returncode}"
            raise DeviceError(f"{self.program} exited at start: {last}")
        if time.monotonic() > deadline:
            raise DeviceError(f"{self.program} did not start within {self.start_timeout_s:g} s")

    def _wait_pty_path(self) -> str:
        assert self._monitor is not None
        reader = self._monitor
        deadline = time.monotonic() + self.start_timeout_s
        seen = []
        while time.monotonic() < deadline:
            try:
                line = reader.readline(0.2)
            except LinkClosed:
                break
            if line is None:
                self._check_started(deadline)
                continue
            seen.append(line)
            m = re.search(r"char device redirected to (\S+)", line)
            if m:
                return m.group(1)
        raise DeviceError(f"{self.program} did not report its pty: {' | '.join(seen[-3:])}")

    # -- fault injection: a forwarding thread between QEMU's link and the reader
    def _inject(self, raw: SerialLink) -> SerialLink:
        ours, theirs = socket.socketpair()
        self._socks += [ours, theirs]
        t = threading.Thread(target=self._forward, args=(raw, theirs), daemon=True, name="qemu-fault")
        self._threads.append(t)
        t.start()
        return SerialLink.from_socket(ours, f"qemu:{self.elf.name}+fault:{self.fault}")

    def _forward(self, raw: SerialLink, out: socket.socket) -> None:
        n = 0
        try:
            while not self._closing.is_set():
                line = raw.readline(0.2)
                if line is None:
                    continue
                if line.startswith("EF"):
                    n += 1
                data = (line + "\n").encode("ascii", errors="replace")
                if n > self.fault_after_lines:
                    if self.fault == "kill":
                        self._kill()
                        break
                    if self.fault == "stall":
                        continue  # swallow everything from here on, keep the link open
                    if self.fault == "garble":
                        data = bytes(b ^ 0x20 if (i * 7 + n) % 5 == 0 else b for i, b in enumerate(data))
                out.sendall(data)
        except (LinkClosed, OSError):
            pass
        finally:
            if self.fault != "stall":
                with contextlib.suppress(OSError):
                    out.shutdown(socket.SHUT_WR)
            raw.close()

    # -- stop
    def exit_problem(self) -> str | None:
        """Why QEMU stopped, if it stopped abnormally by itself (e.g. 'Lockup: can't escalate ...')."""
        p = self.proc
        if p is None or p.poll() is None or p.returncode == 0 or self._killed:
            return None
        err = ""
        if self.serial == "tcp" and p.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                err = p.stderr.read().decode(errors="replace")
        first = next((ln.strip() for ln in err.splitlines() if ln.strip()), "")
        return f"{self.program} stopped with exit code {p.returncode}" + (f": {first}" if first else "")

    def _kill(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            self._killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)  # our own process group (start_new_session)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)

    def guest_done(self) -> bool:
        """Has the program left (SYSRESETREQ)? QEMU exits, or in pty mode pauses with status 'shutdown'."""
        if self.proc is None or self.proc.poll() is not None:
            return True
        if self._monitor is None or self.proc.stdin is None:
            return False
        try:
            self.proc.stdin.write(b"info status\n")
            self.proc.stdin.flush()
        except OSError:
            return True
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                line = self._monitor.readline(0.2)
            except LinkClosed:
                return True
            if line and "VM status:" in line:
                return "shutdown" in line
        return False

    def wait_exit(self, timeout_s: float) -> int | None:
        """Wait for QEMU to leave by itself (SYSRESETREQ + -no-reboot); None if it did not."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        self._closing.set()
        self._kill()
        for t in self._threads:
            t.join(2)
        if self.link is not None:
            self.link.close()
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.close()
        if self.proc is not None:
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()


def run_elf(elf: str | os.PathLike, timeout_s: float = 30.0, serial: str = "tcp",
            session_class: type[QemuSession] = QemuSession) -> QemuRun:
    """Run an ELF to completion (the program leaves through SYSRESETREQ) and return what its UART sent.

    Raises DeviceError if the program has not finished within timeout_s (QEMU is killed: never hangs).
    """
    t0 = time.monotonic()
    lines: list[str] = []
    session = session_class(elf, serial=serial)
    with session as link:
        deadline = t0 + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                text = "\n".join(lines[-5:])
                raise DeviceError(f"{Path(elf).name} did not finish within {timeout_s:g} s under QEMU; last output: "
                                  f"{text!r}")
            try:
                line = link.readline(min(left, 0.5))
            except LinkClosed:
                session.wait_exit(2.0)
                problem = session.exit_problem()
                if problem:
                    raise DeviceError(f"{Path(elf).name}: {problem}") from None
                break
            if line is not None:
                lines.append(line)
            elif session.guest_done():
                with contextlib.suppress(LinkClosed):  # drain what is still in flight
                    while (line := link.readline(0.2)) is not None:
                        lines.append(line)
                break
    return QemuRun(text="\n".join(lines) + ("\n" if lines else ""), lines=lines, wall_s=time.monotonic() - t0)


# ---------------------------------------------------------------- the nano33ble-qemu target

# Cycles per instruction assumed for the latency *estimate* of the real Nano 33 BLE (nRF52840, Cortex-M4F at
# 64 MHz). int8 kernels are dominated by loads, multiply-accumulates and branches: on the M4 single-cycle ALU/MAC
# ops, 2-cycle loads (1 when pipelined), 1+2..3 cycles for taken branches; Flash wait states on the nRF52840 are
# hidden by its cache for loop code but not for weight streams from Flash. 1.25 sits in the 1.0-1.5 band usually
# measured for such code; the figure is labelled an estimate everywhere it appears.
DEFAULT_CPI = 1.25
TWIN_CLOCK_HZ = 64_000_000



NANO33BLE_QEMU = DeviceSpec(
    name="nano33ble-qemu", title="Nano 33 BLE twin: QEMU mps2-an386, nRF52840 memory map (instruction counts)",
    cpu="Cortex-M4F (emulated)", clock_hz=TWIN_CLOCK_HZ, ram_bytes=RAM_BYTES, flash_bytes=FLASH_BYTES, kind="mcu",
    emulated=True, backends=("edgefold",))
# harness + protocol + board layer + newlib bits, and the runtime kernels a CNN uses (measured on the twin's
# builds, rounded up); RAM: harness statics + the minimum stack the linker script reserves.
TWIN_BUDGET = BoardBudget(flash_base=24 * 1024, ram_base=MIN_STACK + 2 * 1024)


class NanoQemuTarget(Target):
    """The Nano 33 BLE's twin: same harness and runtime, real linker limits, instruction counts under QEMU.

    Another QEMU twin (targets/esp_eye_qemu.py) subclasses it: spec, budget, session, count resolution, the
    estimate's basis and `link` are what differs."""

    spec = NANO33BLE_QEMU
    budget = TWIN_BUDGET
    session_class = QemuSession
    insns_per_tick = INSNS_PER_TICK
    estimate_basis = "instructions x CPI / 64 MHz (nRF52840); CPI assumed, not measured"
    default_cpi = DEFAULT_CPI
    board_target = "nano33ble"  # the real board, whose PlatformIO project can build the tflm backend

    def __init__(self, fault: str | None = None, fault_after_lines: int = 3, serial: str = "tcp", retries: int = 1,
                 cpi: float | None = None, idle_timeout_s: float = 60.0, **_: object) -> None:
        if fault is not None:
            check_choice("fault", fault, FAULTS)
        self.fault = fault
        self.fault_after_lines = int(fault_after_lines)
        self.serial = serial
        self.retries = max(0, int(retries))
        self.cpi = float(self.default_cpi if cpi is None else cpi)
        self.idle_timeout_s = float(idle_timeout_s)

    def _check_backend(self, backend: str) -> None:
        if backend != "edgefold":
            raise EdgefoldError(f"{self.spec.name} runs backend edgefold only: the tflm backend needs the TFLM "
                                f"library, which builds only in the PlatformIO project (--target {self.board_target})")

    def fit_check(self, build_input: Path, backend: str, ratio: float | None = None) -> FitReport:
        from edgefold.targets import fit

        self._check_backend(backend)
        build_input = Path(build_input)
        fp = fit.footprint(build_input, backend)
        r = fit.current_ratio(build_input) if ratio is None else ratio
        return fit.check(self.spec, self.budget, fp, r)

    def build(self, build_input: Path, out_dir: Path, backend: str, runs: int, warmup: int) -> BuildResult:
        from edgefold.targets import fit, mcu
        from edgefold.targets.harness import HARNESS_DIR, harness_sources

        from edgefold.core.fsutil import ensure_dir, write_json

        self._check_backend(backend)
        if runs < 1 or warmup < 0:
            raise EdgefoldError("runs must be >= 1 and warmup >= 0")
        out_dir = ensure_dir(out_dir)
        fw = mcu.prepare(Path(build_input), out_dir / "gen", backend)
        srcs = harness_sources(backend) + fw.sources
        try:
            b = self.link(srcs, out_dir / "firmware.elf", [HARNESS_DIR, *fw.include_dirs],
                          {"EF_RUNS": runs, "EF_WARMUP": warmup})
        except LinkOverflow as e:
            # The real linker limit decided: report it with the same numbers and ratio hint as the estimate.
            fp = fit.footprint(Path(build_input), backend)
            rep = fit.check(self.spec, self.budget, fp, fit.current_ratio(Path(build_input)))
            sug = fit.suggest_ratio(fp, self.budget, self.spec, fit.current_ratio(Path(build_input)))
            now = fit.current_ratio(Path(build_input))
            hint = f"; try --ratio {sug:.2f}" if sug is not None and sug > now else ""
            rep.fits = False
            rep.message = f"{e} (linker); {self.spec.name} has {self.spec.flash_bytes // 1024} KB Flash / " \
                          f"{self.spec.ram_bytes // 1024} KB RAM{hint}"
            raise DoesNotFit(rep) from None
        meta = {"model_id": fw.header.model_id, "input_crc": fw.input_crc, "backend": backend, "runs": runs,
                "warmup": warmup, "sizes": {"text": b.sizes.text, "data": b.sizes.data, "bss": b.sizes.bss,
                                            "flash": b.sizes.flash, "static_ram": b.sizes.static_ram},
                "arena_bytes": fw.header.arena_bytes, "macs": fw.header.macs}
        write_json(out_dir / "build.json", meta)
        return BuildResult(artifact=b.elf, static_ram=b.sizes.static_ram, flash=b.sizes.flash, log=None, extra=meta)

    def flash(self, build: BuildResult, port: str | None = None) -> FlashResult:
        if not Path(build.artifact).is_file():
            raise EdgefoldError(f"no firmware at {build.artifact}: build first")
        return FlashResult(port=None, log="emulated: QEMU loads the ELF when the benchmark starts")

    def run_benchmark(self, build: BuildResult, flashed: FlashResult, timeout_s: float) -> BenchResult:
        from edgefold.targets.protocol import BenchParser, read_bench

        attempts, last, attempt = self.retries + 1, None, 0
        while attempt < attempts:
            attempt += 1
            parser = BenchParser(expect_model=build.extra.get("model_id"), expect_backend=build.extra.get("backend"),
                                 expect_input_crc=build.extra.get("input_crc"))
            session = self.session_class(build.artifact, serial=self.serial, fault=self.fault,
                                  fault_after_lines=self.fault_after_lines)
            try:
                with session as link:
                    try:
                        res = read_bench(link, min(self.idle_timeout_s, timeout_s), timeout_s, parser)
                    except DeviceError as e:
                        session.wait_exit(1.0)
                        problem = session.exit_problem()  # e.g. a CPU lockup QEMU aborted on
                        raise DeviceError(f"{e}; {problem}" if problem else str(e)) from None
                break
            except DeviceError as e:
                last = e
        else:
            raise DeviceError(f"{self.spec.name}: {last} ({attempts} attempt{'s' if attempts > 1 else ''})")
        insns = res.median
        res.extra.update({
            "attempts": attempt,
            "instructions_per_inference": insns,
            "instruction_resolution": self.insns_per_tick,
            "latency_estimate": {"value": insns * self.cpi / self.spec.clock_hz * 1e3, "unit": "ms",
                                 "kind": "estimated", "cpi": self.cpi, "clock_hz": self.spec.clock_hz,
                                 "basis": self.estimate_basis},
        })
        return res

    def link(self, sources: list[Path], out_elf: Path, include_dirs: list[Path],
             defines: dict[str, str | int | None]) -> ElfBuild:
        """Compile and link the firmware for this twin; LinkOverflow when it does not fit."""
        return build_elf(sources, out_elf, include_dirs=include_dirs, defines=defines)
