"""nano33ble-qemu: the Nano 33 BLE's twin. Same harness and runtime as the board, built with arm-none-eabi-gcc for
the nRF52840 memory map and run under QEMU; it measures instruction counts, and a latency for the real board is an
estimate from them."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from edgefold.compiler.fit.footprint import Costs
from edgefold.targets.base import BenchResult, BuildResult, DeviceSpec, FitReport, FlashResult, Opt, Target
from edgefold.targets.fit import BoardBudget, DoesNotFit
from edgefold.targets.qemu.session import INSNS_PER_TICK, QemuSession
from edgefold.targets.qemu.toolchain import FLASH_BYTES, MIN_STACK, RAM_BYTES, ElfBuild, LinkOverflow, build_elf

from edgefold.core.errors import DeviceError, EdgefoldError
from edgefold.core.vocab import FAULTS, check_choice

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


def twin_costs() -> Costs:
    """The twin's footprint and instruction cost model for compiler/fit (benchmarks/footprint_calibration.py).

    Bytes from the linked ELFs (arm-none-eabi-gcc 12 -O2, map file per object): harness + board + libc 2,840 B
    besides the fixed input (in Flash) and the model; kernel code per kind as linked (conv includes the shared
    SMLAD matmul and the 8-channel 1x1 kernel); 121 B of parameter block and call per step; 288 B of statics besides
    the arena; the linker keeps EF_MIN_STACK free. Instructions: non-negative least squares on twin counts of
    resnet8, dscnn and mobilenetv1_025 at r = 0, 0.25, 0.5, 0.7 (`benchmarks/footprint_calibration.py --refit`,
    runtime of 2026-12-02 with per-channel requantisation records), within 15 %; the fitter rescales it by a
    measurement of the model at hand when a build misses its instruction budget.
    """
    return Costs(flash_base=2_840, kernel_code={"conv": 5_860, "fc": 564, "dwconv": 4_860, "add": 1_608, "mean": 356,
                                                "pool": 376, "other": 600},
                 step_bytes=121, ram_static=288, stack=MIN_STACK,
                 insn_per_mac={"conv": 1.077, "fc": 1.077, "dwconv": 0.0}, insn_per_output=33.35,
                 insn_per_patch=9.811, insn_per_element=0.0, insn_per_step=0.0, insn_base=548_900.0,
                 cpi=DEFAULT_CPI, clock_hz=TWIN_CLOCK_HZ)


class NanoQemuTarget(Target):
    """The Nano 33 BLE's twin: same harness and runtime, real linker limits, instruction counts under QEMU.

    Another QEMU twin (qemu/esp_eye.py) subclasses it: spec, budget, session, count resolution, the estimate's basis
    and `link` are what differs."""

    spec = NANO33BLE_QEMU
    budget = TWIN_BUDGET
    session_class: type[QemuSession] = QemuSession
    insns_per_tick = INSNS_PER_TICK
    estimate_basis = "instructions x CPI / 64 MHz (nRF52840); CPI assumed, not measured"
    default_cpi = DEFAULT_CPI
    board_target = "nano33ble"  # the real board, whose PlatformIO project can build the tflm backend
    per_step_profile: ClassVar[bool] = True  # -icount: every step's figure is an exact instruction count
    options: ClassVar[dict[str, Opt]] = {
        "fault": Opt(str, choices=FAULTS), "fault_after_lines": Opt(int, min=0),
        "serial": Opt(str, choices=("tcp", "pty", "stdio")), "retries": Opt(int, min=0), "cpi": Opt(float, above=0),
        "idle_timeout_s": Opt(float, above=0)}

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

    def preflight(self, backend: str, port: str | None = None) -> None:
        """The backend, and the cross compiler, size tool and emulator installed."""
        from edgefold.targets.qemu import toolchain

        self._check_backend(backend)
        for tool in (toolchain.GCC, toolchain.SIZE, toolchain.QEMU):
            toolchain.require(tool)

    def costs(self, backend: str = "edgefold") -> Costs:
        """Cost model for fitting a model to this target (compiler/fit)."""
        self._check_backend(backend)
        return twin_costs()

    def fit_check(self, build_input: Path, backend: str, ratio: float | None = None) -> FitReport:
        from edgefold.targets import fit

        self._check_backend(backend)
        build_input = Path(build_input)
        fp = fit.footprint(build_input, backend)
        r = fit.current_ratio(build_input) if ratio is None else ratio
        return fit.check(self.spec, self.budget, fp, r)

    def build(self, build_input: Path, out_dir: Path, backend: str, runs: int, warmup: int,
              profile: bool = False) -> BuildResult:
        from edgefold.targets import fit, mcu
        from edgefold.targets.harness import HARNESS_DIR, harness_sources

        from edgefold.core.fsutil import ensure_dir, write_json

        self._check_backend(backend)
        if runs < 1 or warmup < 0:
            raise EdgefoldError("runs must be >= 1 and warmup >= 0")
        out_dir = ensure_dir(out_dir)
        fw = mcu.prepare(Path(build_input), out_dir / "gen", backend, profile)
        srcs = harness_sources(backend) + fw.sources
        defines: dict[str, str | int | None] = {"EF_RUNS": runs, "EF_WARMUP": warmup}
        if profile:
            defines["EF_PROFILE"] = 1
        try:
            b = self.link(srcs, out_dir / "firmware.elf", [HARNESS_DIR, *fw.include_dirs], defines)
        except LinkOverflow as e:
            # The real linker limit decided: report it with the same numbers and ratio hint as the estimate.
            fp = fit.footprint(Path(build_input), backend)
            now = fit.current_ratio(Path(build_input))
            rep = fit.check(self.spec, self.budget, fp, now)
            sug = fit.suggest_ratio(fp, self.budget, self.spec, now)
            hint = f"; try --ratio {sug:.2f}" if sug is not None and sug > now else ""
            rep.fits = False
            rep.message = f"{e} (linker); {self.spec.name} has {self.spec.flash_bytes // 1024} KB Flash / " \
                          f"{self.spec.ram_bytes // 1024} KB RAM{hint}"
            raise DoesNotFit(rep) from None
        meta = {"model_id": fw.header.model_id, "input_crc": fw.input_crc, "backend": backend, "runs": runs,
                "warmup": warmup, "sizes": {"text": b.sizes.text, "data": b.sizes.data, "bss": b.sizes.bss,
                                            "flash": b.sizes.flash, "static_ram": b.sizes.static_ram},
                "arena_bytes": fw.header.arena_bytes, "macs": fw.header.macs, "profile": profile}
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
                                 expect_input_crc=build.extra.get("input_crc"),
                                 expect_profile=bool(build.extra.get("profile")))
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
