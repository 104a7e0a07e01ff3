"""Per-group ratios under a budget: greedy, NetAdapt-style.

Start from the uncompressed model. While a limit is exceeded, every group that may still shrink proposes its next
ratio step; each proposal is scored by its sensitivity cost divided by how much of the remaining excess it removes
(summed over the violated limits, each relative to its own limit), and the cheapest proposal is taken. So the cuts
go where they cost least per byte (or instruction) saved. Footprints come from the FootprintModel, so every step is
priced exactly as the build will be.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgefold.compiler.compress import keep_count

from .budget import Budget
from .footprint import Costs, Footprint, FootprintModel

MAX_RATIO = 0.95
STEP = 0.05
# default cap on one group's ratio: a group cut to a few channels is cheap by its one-group sensitivity but leaves
# recovery little to work with (resnet8 at 50 % instructions: 0.95 on one group -> 25.8 % after REPAIR, 94.7 % after
# 12 recovery epochs; capped at 0.75 -> 67.2 % and 96.1 %, benchmarks/RESULTS.md)
SPREAD_RATIO = 0.75


def ladder(n: int, max_ratio: float = MAX_RATIO, step: float = STEP) -> list[tuple[float, int]]:
    """(ratio, k) steps for a group of n channels: every distinct k reachable on a grid of `step`, k ascending r."""
    out: list[tuple[float, int]] = [(0.0, n)]
    r = step
    while r <= max_ratio + 1e-9:
        k = keep_count(n, r)
        if k < out[-1][1]:
            out.append(((n - k) / n, k))  # the exact ratio that gives k: replays to the same k
        r += step
    return out


@dataclass
class Allocation:
    ratios: list[float]
    keep: list[int]
    footprint: Footprint
    cost: float  # summed sensitivity cost
    steps: int
    fits: bool


def smallest(fm: FootprintModel, costs: Costs, frozen: Sequence[bool]) -> tuple[list[int], Footprint]:
    """Every compressible group at its last ladder step: the smallest footprint channel compression reaches."""
    keep = [n if frz else ladder(n)[-1][1] for n, frz in zip(fm.group_sizes, frozen, strict=True)]
    return keep, fm.predict(keep, costs)


def allocate(fm: FootprintModel, costs: Costs, budget: Budget, cost: Callable[[int, float], float],
             frozen: Sequence[bool], on_step: Callable[[int, Footprint], None] | None = None,
             max_ratio: float = MAX_RATIO) -> Allocation:
    """Greedy allocation; `cost(group index, ratio)` is the sensitivity cost of one group at a ratio.

    `max_ratio` caps any single group's ratio (below MAX_RATIO: spread the cut over more groups)."""
    ladders = [ladder(n, min(max_ratio, MAX_RATIO)) if not frz else [(0.0, n)]
               for n, frz in zip(fm.group_sizes, frozen, strict=True)]
    pos = [0] * len(ladders)
    keep = [lad[0][1] for lad in ladders]
    fp = fm.predict(keep, costs)
    steps = 0
    while True:
        exc = budget.excess(fp)
        if not exc:
            break
        best = None
        for gi, lad in enumerate(ladders):
            if pos[gi] + 1 >= len(lad):
                continue
            r_new, k_new = lad[pos[gi] + 1]
            trial = list(keep)
            trial[gi] = k_new
            fp_new = fm.predict(trial, costs)
            exc_new = budget.excess(fp_new)
            gain = sum(exc[n] - exc_new.get(n, 0.0) for n in exc)
            if gain <= 0:
                continue
            d_cost = max(0.0, cost(gi, r_new) - cost(gi, lad[pos[gi]][0]))
            score = (d_cost + 1e-12) / gain
            if best is None or score < best[0]:
                best = (score, gi, fp_new)
        if best is None:
            break  # nothing left that helps: the budget cannot be met
        _, gi, fp = best
        pos[gi] += 1
        keep[gi] = ladders[gi][pos[gi]][1]
        steps += 1
        if on_step is not None:
            on_step(steps, fp)
    ratios = [ladders[gi][p][0] for gi, p in enumerate(pos)]
    total = sum(cost(gi, r) for gi, r in enumerate(ratios))
    return Allocation(ratios, keep, fp, total, steps, budget.fits(fp))
