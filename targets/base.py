"""The target interface: the same verbs for every device, real or emulated.

    spec -> fit_check -> build -> flash -> run_benchmark -> (measurements in a BenchResult)

A target works on a *build input*: the folder the pipeline (edgefold/pipeline.py) prepares:

    model_int8.tflite, model_int8_tflite.c/.h, model.onnx, check.json    (export stage)
    codegen/model.c, codegen/model.h, codegen/model.json                  (edgefold backend)
    input.bin            int8 input tensor bytes, NHWC: the fixed input the device runs
    input.npy            the same input as float32 NCHW (for ONNX targets)
    expected_output.bin  the host's output for it (TFLM host interpreter, int8) to check the device's CRC
    build_input.json     what the folder holds, and the model and compression ratio it came from

Targets read it through edgefold.core.artifacts.BuildInput.open (check.json as ExportSummary, codegen/model.json
as CodegenManifest), which also accepts folders made by hand without build_input.json.

Each verb returns a typed result; problems raise EdgefoldError / ToolchainMissing / DeviceError with a
one-line message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgefold.core.vocab import MCU_BACKENDS


@dataclass(frozen=True)
class DeviceSpec:
    name: str  # target id, e.g. "nano33ble"
    title: str  # "Arduino Nano 33 BLE Sense"
    cpu: str
    clock_hz: int
    ram_bytes: int  # usable RAM for the application
    flash_bytes: int  # usable Flash for the application
    kind: str  # "mcu" | "linux"
    emulated: bool = False
    # (VID:PID in lower-case hex, mode) for every USB identity the board shows, e.g. ("2341:005a", "bootloader")
    usb_modes: tuple[tuple[str, str], ...] = ()
    backends: tuple[str, ...] = MCU_BACKENDS

    @property
    def usb_ids(self) -> tuple[str, ...]:
        return tuple(uid for uid, _ in self.usb_modes)

    @property
    def reach(self) -> str:
        """How the device is reached: "twin" (emulated here), "serial" (USB serial board) or "ssh" (Linux board)."""
        if self.emulated:
            return "twin"
        return "ssh" if self.kind == "linux" else "serial"


@dataclass
class FitReport:
    fits: bool
    flash_needed: int
    ram_needed: int
    flash_available: int
    ram_available: int
    message: str = ""


@dataclass
class BuildResult:
    artifact: Path  # ELF / firmware.bin / remote bundle folder
    static_ram: int | None = None  # bytes, from the linker/size (.data + .bss)
    flash: int | None = None  # bytes (.text + .rodata + .data)
    log: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FlashResult:
    port: str | None = None  # serial port after (re-)enumeration, or ssh host
    log: str = ""


@dataclass
class BenchResult:
    """What the device reported (parsed from its serial protocol or the SSH runner's JSON)."""

    model_id: str
    backend: str
    warmup: int
    runs: int
    per_run: list[float]  # one figure per timed run, in `unit`
    unit: str  # "us" | "ms" | "instructions"
    kind: str  # "measured" | "estimated"
    arena_bytes: int | None = None
    stack_bytes: int | None = None  # high-water mark
    heap_free: int | None = None
    output_crc: int | None = None
    output: bytes | None = None  # raw output tensor, when the device sends it
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        s = sorted(self.per_run)
        return s[len(s) // 2] if s else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["output"] = self.output.hex() if self.output is not None else None
        return d


class Target(ABC):
    """One device (or its emulated twin). Subclasses are registered in edgefold.targets.registry."""

    spec: DeviceSpec

    @abstractmethod
    def fit_check(self, build_input: Path, backend: str) -> FitReport:
        """Decide before any build whether the model fits (Flash/RAM), from the exported artifacts."""

    @abstractmethod
    def build(self, build_input: Path, out_dir: Path, backend: str, runs: int, warmup: int) -> BuildResult:
        """Produce the firmware (or remote bundle) in out_dir."""

    @abstractmethod
    def flash(self, build: BuildResult, port: str | None = None) -> FlashResult:
        """Put the firmware on the device (upload, copy over SSH, or start the emulator)."""

    @abstractmethod
    def run_benchmark(self, build: BuildResult, flashed: FlashResult, timeout_s: float) -> BenchResult:
        """Run warm-up + timed inferences on the device and parse what it reports."""
