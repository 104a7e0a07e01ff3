"""Training on the built-in digits data (for the zoo, the demo and the checkpoint sweep)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from edgefold.compiler import data
from torch import nn


@dataclass
class TrainConfig:
    epochs: int = 8
    lr: float = 2e-3
    optimizer: str = "adam"  # adam | sgd
    weight_decay: float = 1e-4
    augment: bool = False
    batch_size: int = 64
    seed: int = 0


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 2 pixels (digits are centred, so this is cheap, label-preserving jitter)."""
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=g))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer every edgefold training uses (plain and SAM): Nesterov SGD or AdamW."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, nesterov=True)
    return torch.optim.AdamW(params, cfg.lr, weight_decay=cfg.weight_decay)


def make_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, n_train: int) -> torch.optim.lr_scheduler.LRScheduler:
    """One-cycle learning rate over all steps of cfg.epochs."""
    steps = cfg.epochs * ((n_train + cfg.batch_size - 1) // cfg.batch_size)
    return torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps, pct_start=0.25)


def train(model: nn.Module, input_shape: tuple[int, ...], cfg: TrainConfig | None = None,
          on_epoch: Callable[[int, float], None] | None = None, train_set: data.Split | None = None,
          test_set: data.Split | None = None) -> float:
    """Train `model` in place; returns test accuracy (percent). Default data: the digits train/test split; a user's
    (x, y) can be given as train_set/test_set (test_set None: accuracy on the training data)."""
    cfg = cfg or TrainConfig()
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    if train_set is None:
        tr, te = data.load(input_shape, "train"), data.load(input_shape, "test")
    else:
        tr, te = train_set, test_set if test_set is not None else train_set
    opt = make_optimizer(list(model.parameters()), cfg)
    sched = make_schedule(opt, cfg, len(tr))
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(tr), generator=g)
        for i in range(0, len(tr), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            x = tr.x[idx]
            if cfg.augment and x.dim() == 4:
                x = _augment(x, g)
            loss = F.cross_entropy(model(x), tr.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if on_epoch is not None:
            on_epoch(epoch, data.accuracy(model, te))
    model.eval()
    return data.accuracy(model, te)
