"""Does a model fit a device? Estimated before any build from the exported artifacts; the twin's linker has the
last word. When it does not fit, say by how much and which compression ratio would make it fit.

Flash needed = weights (+ the .tflite's flatbuffer overhead for TFLM) + runtime code + the board's base firmware
RAM needed   = tensor arena + the board's base static RAM (+ harness/runtime statics)

The base figures per board and backend are estimates (BoardBudget below; documented in docs/targets.md, "Fit check").
The ratio suggestion assumes weights scale with (1-r)^2 (both channel dimensions of a conv shrink) and the
arena with (1-r) (activations shrink in channels only) -- a first-order model, so it is a suggestion.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from edgefold.targets.base import DeviceSpec, FitReport

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


def tflite_path(build_input: Path) -> Path:
    for name in ("model_int8.tflite", "model.tflite"):
        if (build_input / name).is_file():
            return build_input / name
    cands = sorted(build_input.glob("*.tflite"))
    if not cands:
        raise EdgefoldError(f"{build_input}: no .tflite model (run `edgefold export` first)")
    return cands[0]


def constant_bytes(blob: bytes) -> int:
    """Bytes of constant tensor data in a .tflite (each buffer counted once)."""
    import tflite

    try:
        model = tflite.Model.GetRootAsModel(bytes(blob), 0)
        seen: set[int] = set()
        total = 0
        for s in range(model.SubgraphsLength()):
            sg = model.Subgraphs(s)
            for i in range(sg.TensorsLength()):
                b = sg.Tensors(i).Buffer()
                if b in seen or b >= model.BuffersLength():
                    continue
                seen.add(b)
                buf = model.Buffers(b)
                total += buf.DataLength() or buf.Size()
        return total
    except Exception as e:  # noqa: BLE001 - a corrupt file is a user error
        raise EdgefoldError(f"not a readable .tflite: {type(e).__name__}: {e}") from None


def _check_json_arena(build_input: Path) -> int | None:
    p = build_input / "check.json"
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    for path in (("tflm_arena_bytes",), ("tflm", "arena_bytes"), ("arena_bytes",), ("tflm", "arena")):
        v: object = d
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        if isinstance(v, int) and v > 0:
            return v
    return None


def tflm_arena(build_input: Path, blob: bytes | None = None, margin: float = 0.25,
               extra: int = 4 * KB) -> tuple[int, str]:
    """TFLM arena for the board: the host measurement (check.json or measured now) plus a margin.

    The host interpreter is 64-bit; on a 32-bit MCU pointers are smaller, so the host figure is an upper-ish
    estimate -- the margin covers allocator alignment and per-op scratch buffers that differ by platform.
    """
    host = _check_json_arena(build_input)
    source = "check.json (host TFLM)"
    if host is None:
        from edgefold.compiler.check.tflm import tflm_arena_bytes

        host = tflm_arena_bytes(blob if blob is not None else tflite_path(build_input).read_bytes())
        source = "host TFLM interpreter (measured now)"
    size = int(math.ceil(host * (1 + margin) / 16) * 16) + extra
    return size, f"{source}: {host:,} B + {int(margin * 100)}% + {extra // KB} KB"


def footprint(build_input: Path, backend: str) -> Footprint:
    from edgefold.targets.harness import parse_model_h

    blob = tflite_path(build_input).read_bytes()
    weights = constant_bytes(blob)
    if backend == "tflm":
        arena, src = tflm_arena(build_input, blob)
        return Footprint(weights, len(blob), arena, src)
    model_h = build_input / "codegen" / "model.h"
    if model_h.is_file():
        hdr = parse_model_h(model_h)
        return Footprint(weights, weights, hdr.arena_bytes, "codegen/model.h EF_ARENA_BYTES")
    # No codegen output yet: TFLM's arena is a fair stand-in for the planned one (same tensors, same lifetimes).
    arena, src = tflm_arena(build_input, blob, margin=0.0, extra=0)
    return Footprint(weights, weights, arena, src + " (no codegen/model.h yet)")


def current_ratio(build_input: Path) -> float:
    """The compression ratio the build input was made with (compress.json next to it), else 0."""
    for p in (build_input / "compress.json", build_input.parent / "compress" / "compress.json"):
        try:
            r = json.loads(p.read_text()).get("ratio")
            if isinstance(r, (int, float)):
                return float(r)
        except (OSError, ValueError, AttributeError):
            continue
    return 0.0


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
