"""A device budget: the limits a compressed model must meet (any subset), checked against a predicted Footprint."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from edgefold.core.errors import EdgefoldError

from .footprint import Footprint

KB = 1024

# budget field -> (Footprint attribute, how it prints)
LIMITS = {
    "flash": ("flash", lambda v: f"Flash {v / KB:,.1f} KB"),
    "ram": ("ram", lambda v: f"RAM {v / KB:,.1f} KB"),
    "latency_ms": ("latency_ms", lambda v: f"latency {v:,.1f} ms (estimated)"),
    "instructions": ("instructions", lambda v: f"{v / 1e6:,.2f} M instructions"),
    "macs": ("macs", lambda v: f"{v / 1e6:,.2f} M MACs"),
    "params": ("params", lambda v: f"{v / 1e6:,.3f} M parameters"),
}


@dataclass(frozen=True)
class Budget:
    flash: int | None = None  # bytes of Flash for the whole firmware
    ram: int | None = None  # bytes of RAM: arena + statics + stack reserve
    latency_ms: float | None = None  # estimated from the target's instruction model
    instructions: float | None = None  # per inference (the twins count them)
    macs: int | None = None
    params: int | None = None

    def validate(self) -> None:
        for name in LIMITS:
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                                  or v <= 0):
                raise EdgefoldError(f"budget {name.replace('_', ' ')} must be a positive number, got {v!r}")
        if self.empty:
            raise EdgefoldError("no budget: give a target to fit, or a limit (--max-flash, --max-ram, "
                                "--max-latency, --max-instructions, --max-macs, --max-params)")

    @property
    def empty(self) -> bool:
        return all(getattr(self, n) is None for n in LIMITS)

    def active(self) -> list[str]:
        return [n for n in LIMITS if getattr(self, n) is not None]

    def excess(self, fp: Footprint) -> dict[str, float]:
        """Relative excess per violated limit (used/limit − 1 > 0); empty when the footprint fits."""
        out = {}
        for n in self.active():
            used = float(getattr(fp, LIMITS[n][0]))
            lim = float(getattr(self, n))
            if used > lim:
                out[n] = used / lim - 1.0
        return out

    def fits(self, fp: Footprint) -> bool:
        return not self.excess(fp)

    def describe(self, fp: Footprint | None = None) -> str:
        """'Flash 950.0 KB, RAM 256.0 KB' for the active limits (of this budget, or of a footprint)."""
        src = fp if fp is not None else self
        return ", ".join(LIMITS[n][1](float(getattr(src, LIMITS[n][0] if fp is not None else n)))
                         for n in self.active())

    def tighter(self, other: Budget) -> Budget:
        """The smaller of both limits, field by field."""
        vals = {}
        for n in LIMITS:
            a, b = getattr(self, n), getattr(other, n)
            vals[n] = a if b is None else b if a is None else min(a, b)
        return Budget(**vals)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
