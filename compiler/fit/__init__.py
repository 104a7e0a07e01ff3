"""Fit a model to a device budget: per-group compression ratios chosen by measured sensitivity.

    plan = plan_fit(model, example, budget, costs)           # trace + feasibility, no compression yet (fast)
    result = fit(plan, inputs, method="fold")                # sensitivity per group, then greedy allocation
    compressed, report = compress(model, example, "fold", 0.0, "repair", ratios=result.ratios, ...)

`plan_fit` fails at once, with one line naming the smallest footprint reachable, when no ratios can meet the budget
(budget.py: Flash, RAM, latency, instructions, MACs, parameters). `keep` protects layers: every group that touches
one of them keeps all its channels. `instruction_scale` rescales the target's instruction model by a measurement
(measured / predicted instructions of the uncompressed model), so the device has the last word.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from edgefold.core.errors import EdgefoldError

from .allocate import MAX_RATIO, SPREAD_RATIO, Allocation, allocate, smallest
from .budget import Budget
from .footprint import Costs, Footprint, FootprintModel
from .sensitivity import LEVELS, Sensitivity, measure

__all__ = ["Budget", "Costs", "Footprint", "FootprintModel", "FitPlan", "FitResult", "plan_fit", "fit",
           "load_ratios", "Sensitivity"]


@dataclass
class FitPlan:
    model: nn.Module
    example: torch.Tensor
    budget: Budget
    costs: Costs
    footprint_model: FootprintModel
    frozen: list[bool]  # groups protected by --keep
    before: Footprint
    smallest: Footprint


@dataclass
class FitResult:
    ratios: dict[str, float]  # group -> ratio (exactly replayable: gives the chosen k)
    keep: dict[str, int]
    groups: dict[str, int]  # group -> n
    predicted: Footprint
    before: Footprint
    budget: Budget
    sensitivity: Sensitivity
    seconds: float
    kept_layers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ratios": self.ratios, "keep": self.keep, "groups": self.groups,
                "predicted": self.predicted.to_dict(), "before": self.before.to_dict(),
                "budget": self.budget.to_dict(), "sensitivity": self.sensitivity.to_dict(),
                "seconds": round(self.seconds, 3), "kept_layers": self.kept_layers}


def _scaled(costs: Costs, scale: float) -> Costs:
    if scale == 1.0:
        return costs
    return replace(costs, insn_per_mac={k: v * scale for k, v in costs.insn_per_mac.items()},
                   insn_per_output=costs.insn_per_output * scale, insn_per_patch=costs.insn_per_patch * scale,
                   insn_per_element=costs.insn_per_element * scale, insn_per_step=costs.insn_per_step * scale,
                   insn_base=costs.insn_base * scale)


def plan_fit(model: nn.Module, example: torch.Tensor, budget: Budget, costs: Costs, keep: Sequence[str] = (),
             instruction_scale: float = 1.0) -> FitPlan:
    """Trace the model, protect `keep` layers, and check that the budget can be met at all."""
    from edgefold.compiler.compress import graph

    budget.validate()
    if not (instruction_scale > 0):
        raise EdgefoldError(f"instruction scale must be positive, got {instruction_scale}")
    costs = _scaled(costs, instruction_scale)
    example = example[:1].contiguous()
    gset = graph.find_groups(copy.deepcopy(model).eval(), example)
    modules = {n for n, _ in model.named_modules()}
    for layer in keep:
        if layer not in modules:
            raise EdgefoldError(f"--keep {layer}: the model has no layer of that name")

    def protected(g) -> bool:
        return any(s.module_name == lay or s.module_name.startswith(lay + ".") for s in g.slices for lay in keep) \
            or g.name in keep

    frozen = [protected(g) for g in gset.groups]
    fm = FootprintModel.trace(model, example, gset.groups)
    before = fm.predict(fm.full_keep(), costs)
    _, low = smallest(fm, costs, frozen)
    if not budget.fits(low):
        raise EdgefoldError(f"budget cannot be met ({budget.describe()}): the smallest footprint reachable is "
                            f"{budget.describe(low)} (every compressible group at ratio {MAX_RATIO:g}"
                            f"{', protected layers kept' if any(frozen) else ''})")
    return FitPlan(model, example, budget, costs, fm, frozen, before, low)


def fit(plan: FitPlan, inputs: torch.Tensor, method: str = "fold", repair: str = "repair",
        levels: Sequence[float] = LEVELS, samples: int = 64, seed: int = 0,
        on_progress: Callable[[str, int, int], None] | None = None, max_ratio: float = SPREAD_RATIO) -> FitResult:
    """Measure the sensitivity of every compressible group on `inputs`, then allocate ratios under the budget.

    No group is cut beyond `max_ratio` unless the budget cannot be met otherwise (then the cap is raised in steps
    of 0.1 up to MAX_RATIO).
    """
    t0 = time.perf_counter()
    fm = plan.footprint_model
    names = fm.group_names
    if plan.budget.fits(plan.before):
        sens = Sensitivity(list(levels), {})  # already fits: nothing to measure, nothing to cut
    else:
        todo = [n for n, frz in zip(names, plan.frozen, strict=True) if not frz]
        sens = measure(plan.model, plan.example, inputs, todo, method, repair, levels, samples, seed,
                       on_step=(lambda d, t, g: on_progress("sensitivity", d, t)) if on_progress else None)
    cap = min(max_ratio, MAX_RATIO)
    while True:
        alloc: Allocation = allocate(fm, plan.costs, plan.budget, lambda gi, r: sens.cost(names[gi], r),
                                     plan.frozen, max_ratio=cap,
                                     on_step=(lambda s, fp: on_progress("allocate", s, 0)) if on_progress else None)
        if alloc.fits or cap >= MAX_RATIO:
            break
        cap = min(MAX_RATIO, cap + 0.1)
    if not alloc.fits:  # plan_fit checked the smallest footprint, so this is a greedy dead end: say what was reached
        raise EdgefoldError(f"budget cannot be met ({plan.budget.describe()}): reached "
                            f"{plan.budget.describe(alloc.footprint)}")
    ratios = {n: round(r, 6) for n, r in zip(names, alloc.ratios, strict=True) if r > 0}
    return FitResult(ratios, dict(zip(names, alloc.keep, strict=True)), dict(zip(names, fm.group_sizes, strict=True)),
                     alloc.footprint, plan.before, plan.budget, sens, time.perf_counter() - t0,
                     [n for n, frz in zip(names, plan.frozen, strict=True) if frz])


def load_ratios(path: str) -> dict[str, float]:
    """Per-group ratios from a JSON file: {"ratios": {group: ratio}} (what compress.json records) or {group: ratio}."""
    import json
    import math
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise EdgefoldError(f"--ratios {p}: file not found")
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise EdgefoldError(f"--ratios {p}: not valid JSON ({str(e).splitlines()[0][:120]})") from None
    if isinstance(d, dict) and isinstance(d.get("ratios"), dict):
        d = d["ratios"]
    if not isinstance(d, dict) or not d:
        raise EdgefoldError(f"--ratios {p}: expected {{\"ratios\": {{group: ratio, ...}}}}")
    out = {}
    for k, v in d.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v < 1:
            raise EdgefoldError(f"--ratios {p}: ratio of group '{k}' must be a number in [0, 1), got {v!r}")
        out[str(k)] = float(v)
    return out
