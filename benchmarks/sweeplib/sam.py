"""Sharpness-aware minimisation (SAM) training on digits, for the sweep's flat-minimum checkpoints.

Same data, schedule and augmentation as `edgefold.compiler.train.train`; each step first climbs to the worst
point within an L2 ball of radius rho (w + rho·g/‖g‖), takes the gradient there, and applies it at w.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from edgefold.compiler import data
from edgefold.compiler.train import TrainConfig, _augment, make_optimizer, make_schedule
from torch import nn


class SAM:
    """Wraps a base optimizer: `first_step` perturbs the weights, `second_step` restores them and steps."""

    def __init__(self, params: list[nn.Parameter], base: torch.optim.Optimizer, rho: float = 0.05):
        self.params, self.base, self.rho = params, base, rho
        self._eps: list[torch.Tensor | None] = []

    @torch.no_grad()
    def first_step(self) -> None:
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.norm(torch.stack([g.norm(2) for g in grads]), 2) if grads else torch.tensor(0.0)
        scale = self.rho / (norm + 1e-12)
        self._eps = []
        for p in self.params:
            if p.grad is None:
                self._eps.append(None)
                continue
            e = p.grad * scale
            p.add_(e)
            self._eps.append(e)

    @torch.no_grad()
    def second_step(self) -> None:
        for p, e in zip(self.params, self._eps, strict=True):
            if e is not None:
                p.sub_(e)
        self.base.step()


def _bn_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def train_sam(model: nn.Module, input_shape: tuple[int, ...], cfg: TrainConfig, rho: float = 0.05) -> float:
    """Train `model` in place with SAM over cfg.optimizer; returns test accuracy (percent)."""
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    tr, te = data.load(input_shape, "train"), data.load(input_shape, "test")
    params = [p for p in model.parameters() if p.requires_grad]
    base = make_optimizer(params, cfg)
    opt = SAM(params, base, rho)
    sched = make_schedule(base, cfg, len(tr))
    for _ in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(tr), generator=g)
        for i in range(0, len(tr), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            if len(idx) < 2:
                continue
            x, y = tr.x[idx], tr.y[idx]
            if cfg.augment:
                x = _augment(x, g)
            base.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.first_step()
            base.zero_grad(set_to_none=True)
            # the perturbed pass must not move BN running statistics (momentum 0 keeps them)
            bns = _bn_layers(model)
            old = [m.momentum for m in bns]
            for m in bns:
                m.momentum = 0.0
            F.cross_entropy(model(x), y).backward()
            for m, mom in zip(bns, old, strict=True):
                m.momentum = mom
            opt.second_step()
            sched.step()
    model.eval()
    return data.accuracy(model, te)
