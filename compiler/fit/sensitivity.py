"""Per-group sensitivity: how much the output changes when only one coupled group is compressed.

For each group and each ratio level, the group alone is folded or pruned (the rest of the network untouched), its
BatchNorm statistics repaired as the final model will be, and the output compared with the uncompressed model's on
held-out inputs: KL divergence of the softmax outputs (smooth even on few samples) and top-1 agreement. Between
measured levels the cost is interpolated linearly (0 at ratio 0), beyond the last one extrapolated with its slope.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from edgefold.compiler.compress import compress
from edgefold.compiler.recover import evaluate
from torch import nn

LEVELS = (0.3, 0.6, 0.85)


@dataclass
class Sensitivity:
    levels: list[float]
    kl: dict[str, list[float]]  # group -> KL at each level
    agreement: dict[str, list[float]] = field(default_factory=dict)  # group -> top-1 agreement % at each level
    seconds: float = 0.0

    def cost(self, group: str, ratio: float) -> float:
        """Interpolated KL cost of compressing `group` alone at `ratio`."""
        if ratio <= 0 or group not in self.kl:
            return 0.0
        xs = [0.0, *self.levels]
        ys = [0.0, *self.kl[group]]
        for i in range(1, len(xs)):
            if ratio <= xs[i]:
                t = (ratio - xs[i - 1]) / (xs[i] - xs[i - 1])
                return ys[i - 1] + t * (ys[i] - ys[i - 1])
        slope = max(0.0, (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]))
        return ys[-1] + slope * (ratio - xs[-1])

    def to_dict(self) -> dict[str, Any]:
        return {"levels": self.levels, "kl": self.kl, "agreement": self.agreement, "seconds": round(self.seconds, 3)}


def measure(model: nn.Module, example: torch.Tensor, inputs: torch.Tensor, groups: Sequence[str],
            method: str = "fold", repair: str = "repair", levels: Sequence[float] = LEVELS, samples: int = 64,
            seed: int = 0, on_step: Callable[[int, int, str], None] | None = None) -> Sensitivity:
    """Sensitivity of every named group at every level, scored on `samples` held-out inputs (one thread)."""
    from edgefold.compiler.compress import single_thread

    with single_thread():
        return _measure(model, example, inputs, groups, method, repair, levels, samples, seed, on_step)


def _measure(model, example, inputs, groups, method, repair, levels, samples, seed, on_step) -> Sensitivity:
    import time

    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(inputs), generator=g)
    n_eval = min(samples, max(1, len(inputs) // 2))
    x_eval = inputs[perm[:n_eval]].contiguous()
    x_cal = inputs[perm[n_eval:]].contiguous() if len(inputs) > n_eval else x_eval
    x_cal = x_cal[: max(samples, 32)]
    with torch.no_grad():
        ref = model.eval()(x_eval)
    out = Sensitivity(list(levels), {}, {})
    total, done = len(groups) * len(levels), 0
    for name in groups:
        kls, agrees = [], []
        for r in levels:
            student, _ = compress(model, example, method, 0.0, repair, calib_data=x_cal if repair == "repair" else None,
                                  seed=seed, ratios={name: r})
            m = evaluate(student, x_eval, ref)
            kls.append(m["kl"])
            agrees.append(m["agreement"])
            done += 1
            if on_step is not None:
                on_step(done, total, name)
        # a cost must not fall when more is removed (noise on few samples): keep it monotone
        for i in range(1, len(kls)):
            kls[i] = max(kls[i], kls[i - 1])
        out.kl[name], out.agreement[name] = kls, agrees
    out.seconds = time.perf_counter() - t0
    return out
