"""Distillation losses: the compressed model (student) learns the uncompressed one's (teacher's) outputs.

Logits: KL(softmax(t/T) ‖ softmax(s/T))·T² (Hinton et al.), which needs no labels. Features (optional): at every
normalisation layer of a compressed channel group, student channel c is pulled towards the mean of the teacher's
channels that were merged into it (`members` of the group record; one channel for pruning), so the folded
network keeps computing what its clusters computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    t = float(temperature)
    s = F.log_softmax(student_logits.flatten(1) / t, dim=1)
    p = F.log_softmax(teacher_logits.flatten(1) / t, dim=1)
    return F.kl_div(s, p, log_target=True, reduction="batchmean") * (t * t)


def _width(m: nn.Module) -> int | None:
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return int(m.num_features)
    if isinstance(m, nn.LayerNorm):
        return int(m.normalized_shape[-1])
    return None


class FeatureTaps:
    """Forward hooks on the group normalisation layers of teacher and student, and the member-mean matching."""

    def __init__(self, teacher: nn.Module, student: nn.Module, groups: Sequence[Any]) -> None:
        t_mods, s_mods = dict(teacher.named_modules()), dict(student.named_modules())
        self.pairs: list[tuple[str, torch.Tensor]] = []  # (layer, (k, n) averaging matrix)
        self.t_out: dict[str, torch.Tensor] = {}
        self.s_out: dict[str, torch.Tensor] = {}
        self.handles = []
        for g in groups:
            if all(len(m) == 1 for m in g.members) and g.k == g.n:
                continue  # untouched group: nothing to match
            avg = torch.zeros(g.k, g.n)
            for c, mem in enumerate(g.members):
                avg[c, mem] = 1.0 / len(mem)
            for name in g.norm_layers:
                # a layer that also holds other groups' channels (DenseNet's concatenations) has no (k, n) matching
                if name in t_mods and name in s_mods and _width(t_mods[name]) == g.n:
                    self.pairs.append((name, avg))
                    self.handles.append(t_mods[name].register_forward_hook(self._store(self.t_out, name)))
                    self.handles.append(s_mods[name].register_forward_hook(self._store(self.s_out, name)))

    @staticmethod
    def _store(where: dict[str, torch.Tensor], name: str):
        def hook(_m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            where[name] = out

        return hook

    def loss(self) -> torch.Tensor:
        total = torch.zeros(())
        for name, avg in self.pairs:
            t, s = self.t_out.get(name), self.s_out.get(name)
            if t is None or s is None or t.dim() < 2:
                continue
            target = torch.einsum("kn,bn...->bk...", avg, t.detach())
            total = total + F.mse_loss(s, target)
        return total / max(1, len(self.pairs))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
