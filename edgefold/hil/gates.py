"""Gates: the thresholds a cell's measurements must meet (the matrix's [gates] tables) and their evaluation.

Gates are evaluated from the stored measurements every time, so a resumed run (or a re-run with another baseline)
gives verdicts consistent with the baseline it was given, without deploying again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from edgefold.core.errors import EdgefoldError

if TYPE_CHECKING:
    from edgefold.hil.matrix import Cell


def parse_bytes(v: Any, where: str) -> int:
    """256K, 1M, 983040, "983,040" -> bytes (K = 1024)."""
    if isinstance(v, bool):
        raise EdgefoldError(f"{where}: expected a size like 256K or 983040, got {v!r}")
    if isinstance(v, int):
        return v
    m = re.fullmatch(r"\s*([\d.,_]+)\s*([kKmM]i?[bB]?|[bB])?\s*", str(v))
    if not m:
        raise EdgefoldError(f"{where}: expected a size like 256K or 983040, got {v!r}")
    try:
        num = float(m.group(1).replace(",", "").replace("_", ""))
    except ValueError:
        raise EdgefoldError(f"{where}: expected a size like 256K or 983040, got {v!r}") from None
    unit = (m.group(2) or "").lower()[:1]
    return int(num * {"k": 1024, "m": 1024 * 1024}.get(unit, 1))


def parse_fraction(v: Any, where: str) -> float:
    """'10%' or 0.10 -> 0.10."""
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            return float(v.strip()[:-1]) / 100.0
        except ValueError:
            pass
    elif isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    raise EdgefoldError(f"{where}: expected a fraction like 0.10 or '10%', got {v!r}")



@dataclass(frozen=True)
class Gates:
    """Thresholds a cell's measurements must meet. None = gate not applied."""

    agreement_min: float | None = None  # int8-vs-float top-1 agreement, percent
    accuracy_min: float | None = None  # int8 accuracy, percent
    accuracy_drop_max: float | None = None  # float - int8 accuracy, percentage points
    # int8 accuracy of the deployed (compressed) model / accuracy of the uncompressed float model, fraction: unlike
    # accuracy_drop_max (compressed float vs its own int8) it fails a compressed model that fell to chance level
    accuracy_kept_min: float | None = None
    latency_regression: float | None = 0.10  # allowed slowdown vs baseline, fraction (0.10 = +10%)
    ram_max: int | None = None  # bytes (ram.total)
    flash_max: int | None = None  # bytes
    output_crc: bool = True  # the device must compute what the host computed

    @classmethod
    def parse(cls, raw: dict[str, Any], where: str, base: Gates | None = None) -> Gates:
        g = base or cls()
        known = {f for f in cls.__dataclass_fields__}
        vals: dict[str, Any] = {}
        for k, v in raw.items():
            if k not in known:
                raise EdgefoldError(f"{where}: unknown gate {k!r} (known: {', '.join(sorted(known))})")
            if k in ("ram_max", "flash_max"):
                vals[k] = None if v is False else parse_bytes(v, f"{where}: {k}")
            elif k in ("latency_regression", "accuracy_kept_min"):
                vals[k] = None if v is False else parse_fraction(v, f"{where}: {k}")
                if k == "accuracy_kept_min" and vals[k] is not None and not 0 < vals[k] <= 1:
                    raise EdgefoldError(f"{where}: accuracy_kept_min is a share of the float model's accuracy, "
                                        f"like 0.9 or '90%', got {v!r}")
            elif k == "output_crc":
                if not isinstance(v, bool):
                    raise EdgefoldError(f"{where}: output_crc must be true or false")
                vals[k] = v
            else:
                if v is not False and not isinstance(v, int | float):
                    raise EdgefoldError(f"{where}: {k} must be a number (percent), got {v!r}")
                vals[k] = None if v is False else float(v)
        return replace(g, **vals)



NO_BASELINE = "off: no baseline for this cell"


@dataclass
class GateResult:
    name: str  # agreement | accuracy | accuracy_drop | accuracy_kept | latency | ram | flash | output_crc
    ok: bool
    message: str
    applied: bool = True  # False: the gate is off for this cell (e.g. no baseline), noted only

    @property
    def verdict(self) -> str:
        """ok | FAIL | off: how the console, JUnit, Markdown and HTML outputs name it."""
        return "FAIL" if not self.ok else "ok" if self.applied else "off"


def fmt_latency(v: float, unit: str) -> str:
    return f"{v:,.0f} {unit}" if unit == "instructions" else f"{v:,.4g} {unit}"


def _to_ms(v: float, unit: str) -> float | None:
    return {"ms": v, "us": v / 1000.0, "s": v * 1000.0}.get(unit)


def evaluate_gates(cell: Cell, res: dict[str, Any], baseline: dict[str, Any] | None,
                   skip_latency: bool = False) -> list[GateResult]:
    g = cell.gates
    out: list[GateResult] = []
    acc = res.get("accuracy") or {}

    def pct(name: str, key: str, limit: float | None) -> None:
        if limit is None:
            return
        v = acc.get(key)
        if not isinstance(v, int | float):
            out.append(GateResult(name, False, f"{name} gate: int8 {key} not reported (need >= {limit:g}%)"))
        elif v < limit:
            out.append(GateResult(name, False, f"{name} gate: {key} {v:.2f}% < {limit:g}%"))
        else:
            out.append(GateResult(name, True, f"{key} {v:.2f}% >= {limit:g}%"))

    pct("agreement", "agreement", g.agreement_min)
    pct("accuracy", "int8", g.accuracy_min)
    if g.accuracy_drop_max is not None:
        f, q = acc.get("float"), acc.get("int8")
        if not isinstance(f, int | float) or not isinstance(q, int | float):
            out.append(GateResult("accuracy_drop", False, "accuracy_drop gate: float/int8 accuracy not reported"))
        else:
            ok = f - q <= g.accuracy_drop_max
            out.append(GateResult("accuracy_drop", ok, f"{'' if ok else 'accuracy_drop gate: '}float {f:.2f}% -> "
                                  f"int8 {q:.2f}% drops {f - q:.2f} points ({'<=' if ok else '>'} "
                                  f"{g.accuracy_drop_max:g})"))
    if g.accuracy_kept_min is not None:
        out.append(_kept_gate(res, g.accuracy_kept_min))
    if g.output_crc:
        m = res.get("output_crc_match")
        if m is not True:
            why = "not reported" if m is None else "device output differs from the host's"
            out.append(GateResult("output_crc", False, f"output_crc gate: {why}"))
        else:
            out.append(GateResult("output_crc", True, "output CRC matches the host"))
    ram = (res.get("ram") or {}).get("total")
    for name, v, limit in (("ram", ram, g.ram_max), ("flash", res.get("flash"), g.flash_max)):
        if limit is None:
            continue
        if not isinstance(v, int | float):
            out.append(GateResult(name, False, f"{name} gate: {name} not reported (budget {limit:,} B)"))
        else:
            ok = v <= limit
            out.append(GateResult(name, ok, f"{'' if ok else f'{name} gate: '}{name} {int(v):,} B "
                                  f"{'<=' if ok else '>'} budget {limit:,} B"))
    if g.latency_regression is not None:
        if skip_latency:
            out.append(GateResult("latency", True, "off: the baseline is being updated by this run", applied=False))
        else:
            out.append(latency_gate(res, baseline, g.latency_regression))
    return out


def _kept_gate(res: dict[str, Any], limit: float) -> GateResult:
    q = (res.get("accuracy") or {}).get("int8")
    b = (res.get("compress") or {}).get("accuracy_before")
    if not isinstance(q, int | float) or not isinstance(b, int | float) or b <= 0:
        what = "int8 accuracy" if not isinstance(q, int | float) else "the uncompressed model's accuracy"
        return GateResult("accuracy_kept", False, f"accuracy_kept gate: {what} not reported "
                                                  f"(need >= {limit * 100:g}% of the float model's)")
    kept = q / b
    ok = kept >= limit
    msg = (f"int8 {q:.2f}% keeps {kept * 100:.1f}% of the uncompressed float model's {b:.2f}% "
           f"({'>=' if ok else '<'} {limit * 100:g}%)")
    return GateResult("accuracy_kept", ok, msg if ok else f"accuracy_kept gate: {msg}")


def latency_gate(res: dict[str, Any], base: dict[str, Any] | None, tol: float) -> GateResult:
    if not base:
        return GateResult("latency", True, NO_BASELINE, applied=False)
    # Instruction counts are deterministic on the twins: compare them when both sides have them.
    if isinstance(res.get("instructions"), int | float) and isinstance(base.get("instructions"), int | float):
        v, b, unit = float(res["instructions"]), float(base["instructions"]), "instructions"
    else:
        lat, blat = res["latency"], base.get("latency") or {}
        if not isinstance(blat.get("value"), int | float):
            return GateResult("latency", True, "off: the baseline has no latency for this cell", applied=False)
        v, unit = float(lat["value"]), lat["unit"]
        b = float(blat["value"])
        if blat.get("unit") != unit:
            vm, bm = _to_ms(v, unit), _to_ms(b, blat.get("unit", ""))
            if vm is None or bm is None:
                return GateResult("latency", False, f"latency gate: unit {unit} not comparable with baseline unit "
                                                    f"{blat.get('unit')}")
            v, b, unit = vm, bm, "ms"
    limit = b * (1.0 + tol)
    ok = v <= limit
    msg = (f"{fmt_latency(v, unit)} vs baseline {fmt_latency(b, unit)} ({(v / b - 1) * 100 if b else 0:+.1f}%, "
           f"limit +{tol * 100:g}% = {fmt_latency(limit, unit)})")
    return GateResult("latency", ok, msg if ok else f"latency gate: regression {msg}")

