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

A target with `per_step_profile` builds, on request (`build(..., profile=True)`), firmware that also reports the
time of every kernel call of the generated model (BenchResult.extra["profile"]).

Each verb returns a typed result; problems raise EdgefoldError / ToolchainMissing / DeviceError with a
one-line message.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from edgefold.core.errors import EdgefoldError
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


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Opt:
    """One target option (`--option KEY=VALUE` or a keyword of get_target): its type and allowed values.
    Values given as text (the command line, targets.toml) are converted; anything else is a one-line error."""

    kind: type = str  # str | int | float | bool | object (object: any value, library callers only)
    min: float | None = None  # inclusive lower bound
    above: float | None = None  # exclusive lower bound
    choices: tuple[str, ...] = ()

    def parse(self, where: str, key: str, value: Any) -> Any:
        if value is None or self.kind is object:
            return value
        bad = f"{where}: option {key} must be "
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE or text in _FALSE:
                return text in _TRUE
            raise EdgefoldError(f"{bad}true or false, got {value!r}")
        if self.kind in (int, float):
            word = "an integer" if self.kind is int else "a number"
            try:
                num = self._number(value)
            except (TypeError, ValueError, OverflowError):
                raise EdgefoldError(f"{bad}{word}, got {value!r}") from None
            if not math.isfinite(num):
                raise EdgefoldError(f"{bad}{word}, got {value!r}")
            if self.min is not None and num < self.min:
                raise EdgefoldError(f"{bad}>= {self.min:g}, got {value!r}")
            if self.above is not None and num <= self.above:
                raise EdgefoldError(f"{bad}> {self.above:g}, got {value!r}")
            return num
        text = str(value)
        if self.choices and text not in self.choices:
            raise EdgefoldError(f"{bad}one of {', '.join(self.choices)}, got {value!r}")
        return text

    def _number(self, value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError(value)
        if self.kind is float:
            return float(value)
        if isinstance(value, str):
            return int(value.strip())
        f = float(value)
        if not f.is_integer():
            raise ValueError(value)
        return int(f)


class Target(ABC):
    """One device (or its emulated twin). Subclasses are registered in edgefold.targets.registry."""

    spec: DeviceSpec
    options: ClassVar[dict[str, Opt]] = {}  # every option the target's constructor takes
    # build(..., profile=True) makes firmware that times every kernel call (EF1 PROF/STEP records, `--profile`)
    per_step_profile: ClassVar[bool] = False

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The options, typed; an unknown key or a bad value is a one-line error (before anything is built)."""
        unknown = sorted(set(options) - set(cls.options))
        if unknown:
            known = ", ".join(sorted(k for k, o in cls.options.items() if o.kind is not object)) or "none"
            raise EdgefoldError(f"{cls.spec.name}: unknown option(s) {', '.join(unknown)} (known: {known})")
        return {k: cls.options[k].parse(cls.spec.name, k, v) for k, v in options.items()}

    def preflight(self, backend: str, port: str | None = None) -> None:
        """Every cheap precondition of build, flash and run (backend, tools, device present or host reachable),
        checked before any work; raises the one-line error the later step would raise minutes later."""
        if backend not in self.spec.backends:
            raise EdgefoldError(f"{self.spec.name} runs backends {', '.join(self.spec.backends)}, not {backend!r}")

    @abstractmethod
    def fit_check(self, build_input: Path, backend: str) -> FitReport:
        """Decide before any build whether the model fits (Flash/RAM), from the exported artifacts."""

    @abstractmethod
    def build(self, build_input: Path, out_dir: Path, backend: str, runs: int, warmup: int,
              profile: bool = False) -> BuildResult:
        """Produce the firmware (or remote bundle) in out_dir; profile: stamp every kernel call (per_step_profile
        targets only)."""

    @abstractmethod
    def flash(self, build: BuildResult, port: str | None = None) -> FlashResult:
        """Put the firmware on the device (upload, copy over SSH, or start the emulator)."""

    @abstractmethod
    def run_benchmark(self, build: BuildResult, flashed: FlashResult, timeout_s: float) -> BenchResult:
        """Run warm-up + timed inferences on the device and parse what it reports."""
