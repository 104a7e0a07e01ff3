"""Does a model fit a device? Estimated before any build from the exported artifacts; the twin's linker has the
last word. When it does not fit, say by how much and which compression ratio would make it fit.

Flash needed = weights (+ the .tflite's flatbuffer overhead for TFLM) + runtime code + the board's base firmware
RAM needed   = tensor arena + the board's base static RAM (+ harness/runtime statics)

The base figures per board and backend are estimates (BoardBudget below; documented in docs/targets.md, "Fit check").
The ratio suggestion assumes weights scale with (1-r)^2 (both channel dimensions of a conv shrink) and the
arena with (1-r) (activations shrink in channels only) -- a first-order model, so it is a suggestion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from edgefold.compiler.tflite_model import read_tflite_file
from edgefold.targets.base import DeviceSpec, FitReport

from edgefold.core.artifacts import BuildInput, CompressSummary
from edgefold.core.errors import EdgefoldError

KB = 1024


@dataclass(frozen=True)
class BoardBudget:
    """Estimated firmware overhead on one board for one backend (bytes)."""

    flash_base: int  # framework + harness + runtime/interpreter code
    ram_base: int  # framework statics + harness + stack reserve
    ram_limit: int | None = None  # where this backend's arena can live, when less than the device's RAM


@dataclass(frozen=True)
class Footprint:
    weights: int  # bytes of constant tensors (int8 weights, int32 biases)
    model_bytes: int  # bytes stored in Flash for the model (the .tflite blob for TFLM, the weights for edgefold)
    arena: int  # tensor arena bytes
    arena_source: str  # where the arena figure comes from


class DoesNotFit(EdgefoldError):
    def __init__(self, report: FitReport) -> None:
        super().__init__(report.message)
        self.report = report


def tflite_path(build_input: Path | BuildInput) -> Path:
    bi = build_input if isinstance(build_input, BuildInput) else BuildInput.open(build_input)
    return bi.need("tflite", "run `edgefold export` first")


def tflm_arena(build_input: Path | BuildInput, margin: float = 0.25, extra: int = 4 * KB) -> tuple[int, str]:
    """TFLM arena for the board: the host measurement (check.json or measured now) plus a margin.

    The host interpreter is 64-bit; on a 32-bit MCU pointers are smaller, so the host figure is an upper-ish
    estimate -- the margin covers allocator alignment and per-op scratch buffers that differ by platform.
    """
    bi = build_input if isinstance(build_input, BuildInput) else BuildInput.open(build_input)
    host = bi.export.tflm_arena_bytes if bi.export is not None else None
    source = "check.json (host TFLM)"
    if not host:
        from edgefold.compiler.check.tflm import tflm_arena_bytes

        host = tflm_arena_bytes(tflite_path(bi).read_bytes())
        source = "host TFLM interpreter (measured now)"
    size = int(math.ceil(host * (1 + margin) / 16) * 16) + extra
    return size, f"{source}: {host:,} B + {int(margin * 100)}% + {extra // KB} KB"


def footprint(build_input: Path | BuildInput, backend: str) -> Footprint:
    bi = build_input if isinstance(build_input, BuildInput) else BuildInput.open(build_input)
    model = read_tflite_file(tflite_path(bi))
    weights = model.constant_bytes
    if backend == "tflm":
        arena, src = tflm_arena(bi)
        return Footprint(weights, model.size_bytes, arena, src)
    if bi.codegen is not None:
        return Footprint(weights, weights, bi.codegen.arena_bytes, f"{bi.files['codegen']} arena_bytes")
    # No codegen output yet: TFLM's arena is a fair stand-in for the planned one (same tensors, same lifetimes).
    arena, src = tflm_arena(bi, margin=0.0, extra=0)
    return Footprint(weights, weights, arena, src + " (no codegen/model.json yet)")


def current_ratio(build_input: Path | BuildInput) -> float:
    """The compression ratio the build input was made with (build_input.json, or the deploy folder's
    compress/compress.json for folders written before build_input.json existed), else 0."""
    bi = build_input if isinstance(build_input, BuildInput) else BuildInput.open(build_input)
    if bi.path is not None and not (bi.path / BuildInput.FILE).is_file():
        summary = bi.path.parent / "compress" / CompressSummary.FILE
        return float(CompressSummary.read(summary).ratio) if summary.is_file() else 0.0
    return float(bi.ratio)


def suggest_ratio(fp: Footprint, budget: BoardBudget, spec: DeviceSpec, ratio: float) -> float | None:
    """Smallest ratio (step 0.05) that fits under the first-order scaling model; None if none would."""
    flash_room = spec.flash_bytes - budget.flash_base - max(0, fp.model_bytes - fp.weights)
    ram_room = _ram_available(spec, budget) - budget.ram_base
    if flash_room <= 0 or ram_room <= 0:
        return None
    keep = 1.0 - ratio
    need = 0.0
    if fp.weights > flash_room:
        need = max(need, 1.0 - keep * math.sqrt(flash_room / fp.weights))
    if fp.arena > ram_room:
        need = max(need, 1.0 - keep * ram_room / fp.arena)
    r = math.ceil(need * 20 - 1e-9) / 20
    return r if r < 0.96 else None


def _ram_available(spec: DeviceSpec, budget: BoardBudget) -> int:
    return min(spec.ram_bytes, budget.ram_limit) if budget.ram_limit else spec.ram_bytes


def check(spec: DeviceSpec, budget: BoardBudget, fp: Footprint, ratio: float = 0.0) -> FitReport:
    flash = fp.model_bytes + budget.flash_base
    ram = fp.arena + budget.ram_base
    ram_avail = _ram_available(spec, budget)
    fits = flash <= spec.flash_bytes and ram <= ram_avail
    have = f"{spec.name} has {spec.flash_bytes / KB:,.0f} KB Flash / {ram_avail / KB:,.0f} KB RAM"
    if ram_avail < spec.ram_bytes:
        have += " for this backend"
    need = (f"needs {flash / KB:,.0f} KB Flash / {ram / KB:,.0f} KB RAM (estimate: model {fp.model_bytes / KB:,.0f} KB"
            f" + code {budget.flash_base / KB:,.0f} KB; arena {fp.arena / KB:,.0f} KB"
            f" + static {budget.ram_base / KB:,.0f} KB)")
    if fits:
        msg = f"fits: {need}; {have}"
    else:
        sug = suggest_ratio(fp, budget, spec, ratio)
        hint = (f"; try --ratio {sug:.2f} (now {ratio:g})" if sug is not None and sug > ratio
                else "; no compression ratio would make it fit: choose a smaller model or a bigger target")
        msg = f"model does not fit: {need}, {have}{hint}"
    return FitReport(fits=fits, flash_needed=flash, ram_needed=ram, flash_available=spec.flash_bytes,
                     ram_available=ram_avail, message=msg)
