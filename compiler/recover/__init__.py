"""Recovery: distil the compressed model from the uncompressed one, on unlabelled inputs.

    report = recover(student, teacher, inputs, RecoverConfig(epochs=10, time_budget_s=300), labels=None)

The student (compressed: folded or pruned, the same procedure for both so they compare fairly) is trained in place
to match the teacher's logits (KL at temperature T, optionally the group features, see distill.py), mixed with
cross-entropy where the inputs carry labels. It needs only inputs: the user's data, the built-in digits for zoo
models, or synthetic inputs made from the teacher alone by deep inversion (`synthetic_inputs`, data-free). A
held-out part of the inputs picks the best epoch (top-1 agreement with the teacher, or accuracy where the inputs
carry labels; the state before training counts as epoch 0, so the result is never worse there than the start) and
that checkpoint is what the student ends with. A time budget stops
training early. Deterministic for a seed (one process, same thread count).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgefold.core.errors import EdgefoldError

from .distill import FeatureTaps, kd_loss

__all__ = ["RecoverConfig", "RecoverReport", "recover", "reestimate_bn", "synthetic_inputs", "evaluate"]


@dataclass(frozen=True)
class RecoverConfig:
    epochs: int = 10
    time_budget_s: float | None = None  # stop after the epoch that crosses it (the best checkpoint is kept)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    temperature: float = 4.0
    feature_weight: float = 0.0  # > 0: also match group features (needs the compressor's group records)
    holdout: float = 0.15  # fraction of the inputs kept aside to pick the best epoch
    augment: bool = True  # random ±2-pixel shifts of image inputs (the teacher relabels every shifted batch)
    shift: int = 2  # the largest shift, pixels
    # labels given: loss = (1 - w) KD + w cross-entropy (resnet8-half, 12 epochs: 96.1 -> 98.6 % with w = 0.5)
    label_weight: float = 0.5
    bn_reestimate: bool = False  # re-estimate BatchNorm statistics on all training inputs before the first epoch
    ema: float = 0.0  # > 0: score and keep an exponential moving average of the weights (decay per step)
    warmup: float = 0.15  # fraction of the steps spent warming the learning rate up
    seed: int = 0

    def validate(self) -> None:
        if self.epochs < 1:
            raise EdgefoldError(f"recovery epochs must be >= 1, got {self.epochs}")
        if self.time_budget_s is not None and not (self.time_budget_s > 0 and math.isfinite(self.time_budget_s)):
            raise EdgefoldError(f"--recover-time must be a positive number of seconds, got {self.time_budget_s}")
        if not 0 <= self.holdout < 1:
            raise EdgefoldError(f"recovery holdout must be in [0, 1), got {self.holdout}")
        if self.lr <= 0 or self.batch_size < 2 or self.temperature <= 0:
            raise EdgefoldError("recovery needs lr > 0, batch size >= 2 and temperature > 0")
        if not 0 <= self.label_weight <= 1 or not 0 <= self.ema < 1 or not 0 <= self.warmup < 1 or self.shift < 0:
            raise EdgefoldError("recovery needs label weight in [0, 1], EMA decay and warm-up in [0, 1), shift >= 0")


@dataclass
class RecoverReport:
    epochs_run: int
    best_epoch: int  # 0 = the student as it came in
    selected_by: str  # "held-out accuracy" | "held-out agreement"
    stopped_by: str  # "epochs" | "time budget"
    seconds: float
    samples: int  # training inputs
    heldout: int
    history: list[dict[str, Any]] = field(default_factory=list)  # per epoch (0 = before training)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def best(self) -> dict[str, Any]:
        return self.history[self.best_epoch]


Progress = Callable[[int, int, dict[str, Any]], None]  # (epochs done, epochs planned, metrics of the last epoch)


@torch.no_grad()
def _outputs(model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    was = model.training
    model.eval()
    out = torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)]) if len(x) else torch.empty(0)
    model.train(was)
    return out


@torch.no_grad()
def evaluate(student: nn.Module, x: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None,
             temperature: float = 4.0) -> dict[str, float | None]:
    """Top-1 agreement with the teacher (%), KL to it, and accuracy (%) when labels are given."""
    out = _outputs(student, x)
    agree = float((out.flatten(1).argmax(1) == teacher_logits.flatten(1).argmax(1)).float().mean() * 100)
    kl = float(kd_loss(out, teacher_logits, temperature))
    acc = None if labels is None else float((out.flatten(1).argmax(1) == labels).float().mean() * 100)
    return {"agreement": round(agree, 4), "kl": kl, "accuracy": None if acc is None else round(acc, 4)}


def _shift(x: torch.Tensor, g: torch.Generator, most: int = 2) -> torch.Tensor:
    if x.dim() != 4 or most < 1:
        return x
    dy, dx = (int(v) for v in torch.randint(-most, most + 1, (2,), generator=g))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def _split(n: int, frac: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=g)
    h = int(round(n * frac))
    if h < 8 or n - h < 8:  # too few to hold any out: select on the training inputs themselves
        return perm, perm
    return perm[h:], perm[:h]


def recover(student: nn.Module, teacher: nn.Module, inputs: torch.Tensor, config: RecoverConfig | None = None,
            labels: torch.Tensor | None = None, eval_x: torch.Tensor | None = None,
            eval_y: torch.Tensor | None = None, groups: Sequence[Any] | None = None,
            on_epoch: Progress | None = None) -> RecoverReport:
    """Distil `student` from `teacher` in place on `inputs` (N x input shape); returns what happened per epoch.

    labels (optional, one per input) only change how the best epoch is picked (held-out accuracy). eval_x/eval_y,
    if given, are scored after every epoch for the report (never used for any choice). Runs on one intra-op thread
    (small batches on shared cores: 2 threads were 9x slower than 1 on this 2-core machine under load).
    """
    from edgefold.compiler.compress import single_thread

    with single_thread():
        return _recover(student, teacher, inputs, config, labels, eval_x, eval_y, groups, on_epoch)


def _recover(student: nn.Module, teacher: nn.Module, inputs: torch.Tensor, config: RecoverConfig | None,
             labels: torch.Tensor | None, eval_x: torch.Tensor | None, eval_y: torch.Tensor | None,
             groups: Sequence[Any] | None, on_epoch: Progress | None) -> RecoverReport:
    cfg = config or RecoverConfig()
    cfg.validate()
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2 or len(inputs) < 2:
        raise EdgefoldError("recovery needs at least 2 input samples")
    if cfg.feature_weight > 0 and not groups:
        raise EdgefoldError("feature distillation needs the compressor's group records")
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    teacher = teacher.eval()  # only ever run under no_grad: its weights are never touched
    x = inputs.float().contiguous()
    tr_idx, ho_idx = _split(len(x), cfg.holdout, g)
    x_tr, x_ho = x[tr_idx], x[ho_idx]
    y_ho = labels[ho_idx] if labels is not None else None
    y_tr = labels[tr_idx] if labels is not None and cfg.label_weight > 0 else None
    t_tr = _outputs(teacher, x_tr)  # teacher logits of the unshifted inputs, reused whenever no shift is drawn
    t_ho = _outputs(teacher, x_ho)
    t_ev = _outputs(teacher, eval_x) if eval_x is not None else None
    selected_by = "held-out accuracy" if y_ho is not None else "held-out agreement"

    if cfg.bn_reestimate:
        reestimate_bn(student, x_tr, cfg.batch_size)
    # EMA: the averaged weights are what is scored and kept; the student itself is what the optimiser steps
    scored = copy.deepcopy(student) if cfg.ema > 0 else student

    def score(epoch: int, loss: float | None) -> dict[str, Any]:
        m = evaluate(scored, x_ho, t_ho, y_ho, cfg.temperature)
        row: dict[str, Any] = {"epoch": epoch, "loss": loss, "heldout_agreement": m["agreement"],
                               "heldout_kl": m["kl"], "heldout_accuracy": m["accuracy"]}
        if eval_x is not None:
            e = evaluate(scored, eval_x, t_ev, eval_y, cfg.temperature)
            row.update(eval_agreement=e["agreement"], eval_accuracy=e["accuracy"])
        row["seconds"] = round(time.perf_counter() - t0, 3)
        return row

    def key(row: dict[str, Any]) -> tuple[float, float]:
        main = row["heldout_accuracy"] if row["heldout_accuracy"] is not None else row["heldout_agreement"]
        return (main, -row["heldout_kl"])

    history = [score(0, None)]
    best_state, best_epoch = copy.deepcopy(scored.state_dict()), 0
    params = [p for p in student.parameters() if p.requires_grad]
    if not params:
        raise EdgefoldError("the compressed model has no trainable parameters")
    opt = torch.optim.AdamW(params, cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(x_tr) / cfg.batch_size))
    planned = cfg.epochs * steps_per_epoch  # re-planned after every epoch when a time budget will stop training
    step = 0
    taps = FeatureTaps(teacher, student, groups) if cfg.feature_weight > 0 and groups else None
    stopped = "epochs"
    try:
        for epoch in range(1, cfg.epochs + 1):
            student.train()
            perm = torch.randperm(len(x_tr), generator=g)
            total, seen = 0.0, 0
            for i in range(0, len(x_tr), cfg.batch_size):
                idx = perm[i : i + cfg.batch_size]
                if len(idx) < 2:  # BatchNorm in training mode needs two samples
                    continue
                xb = x_tr[idx]
                shifted = cfg.augment and xb.dim() == 4 and bool(torch.rand((), generator=g) < 0.75)
                if shifted:
                    xb = _shift(xb, g, cfg.shift)
                if shifted or taps is not None:
                    with torch.no_grad():
                        tb = teacher(xb)
                else:
                    tb = t_tr[idx]
                out = student(xb)
                loss = kd_loss(out, tb, cfg.temperature)
                if y_tr is not None:
                    loss = (1 - cfg.label_weight) * loss + cfg.label_weight * F.cross_entropy(out.flatten(1), y_tr[idx])
                if taps is not None:
                    loss = loss + cfg.feature_weight * taps.loss()
                for grp in opt.param_groups:
                    grp["lr"] = _lr(cfg.lr, step, planned, cfg.warmup)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if scored is not student:
                    _ema_update(scored, student, cfg.ema)
                step += 1
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
            row = score(epoch, total / max(1, seen))
            history.append(row)
            if key(row) > key(history[best_epoch]):
                best_state, best_epoch = copy.deepcopy(scored.state_dict()), epoch
            if on_epoch is not None:
                on_epoch(epoch, cfg.epochs, row)
            if cfg.time_budget_s is not None:
                spent = time.perf_counter() - t0
                if spent >= cfg.time_budget_s and epoch < cfg.epochs:
                    stopped = "time budget"
                    break
                # the epochs the budget will allow, so the learning rate decays to its end in time
                fit_in = int(cfg.time_budget_s / (spent / epoch))
                planned = max(epoch + 1, min(cfg.epochs, fit_in)) * steps_per_epoch
    finally:
        if taps is not None:
            taps.remove()
    student.load_state_dict(best_state)
    student.eval()
    return RecoverReport(len(history) - 1, best_epoch, selected_by, stopped, round(time.perf_counter() - t0, 3),
                         len(x_tr), len(x_ho), history)


@torch.no_grad()
def _ema_update(avg: nn.Module, model: nn.Module, decay: float) -> None:
    for a, p in zip(avg.parameters(), model.parameters(), strict=True):
        a.lerp_(p.detach(), 1 - decay)
    for a, b in zip(avg.buffers(), model.buffers(), strict=True):
        a.copy_(b)  # BatchNorm statistics: the student's own (they follow its weights closely enough)


@torch.no_grad()
def reestimate_bn(model: nn.Module, x: torch.Tensor, batch: int = 64) -> None:
    """Recompute every BatchNorm's running mean/var as the plain average over `x` (training-mode forward passes)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return
    was = model.training
    moms = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    model.train()
    for i in range(0, len(x), batch):
        if len(x[i : i + batch]) >= 2:
            model(x[i : i + batch])
    for m, mom in zip(bns, moms, strict=True):
        m.momentum = mom
    model.train(was)


def _lr(peak: float, step: int, total: int, warmup: float = 0.15) -> float:
    """One cycle: linear warm-up from peak/25 over the first `warmup` of the steps, then cosine decay towards 0."""
    w = max(1, int(total * warmup)) if warmup > 0 else 0
    if step < w:
        return peak / 25 + (peak - peak / 25) * step / w
    t = min(1.0, (step - w) / max(1, total - w))
    return peak * 0.5 * (1 + math.cos(math.pi * t)) + peak * 1e-4


def synthetic_inputs(teacher: nn.Module, example: torch.Tensor, n: int = 256, steps: int = 100, batch: int = 64,
                     seed: int = 0, on_batch: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """n inputs made from the teacher alone by deep inversion (what repair 'dir' does), for data-free recovery.

    Batches use seeds seed, seed+1, ... so the set is deterministic; a model without BatchNorm has no statistics to
    invert, and gets seeded Gaussian inputs.
    """
    if n < 2:
        raise EdgefoldError("data-free recovery needs at least 2 synthetic samples")
    from edgefold.compiler.compress import single_thread

    with single_thread():
        return _synthetic(teacher, example, n, steps, batch, seed, on_batch)


def _synthetic(teacher: nn.Module, example: torch.Tensor, n: int, steps: int, batch: int, seed: int,
               on_batch: Callable[[int, int], None] | None) -> torch.Tensor:
    from edgefold.compiler.compress.repair import DirConfig, deep_inversion

    out = []
    made, b = 0, 0
    while made < n:
        size = min(batch, n - made)
        out.append(deep_inversion(teacher, example, DirConfig(batch=size, steps=steps, seed=seed + b)))
        made += size
        b += 1
        if on_batch is not None:
            on_batch(made, n)
    return torch.cat(out).contiguous()
