"""Normalisation repair after compression: `repair`, `ar` (approximate repair), `dir` (deep-inversion repair).

Removing or merging channels changes the distribution of every activation downstream, but BatchNorm keeps
normalising with the statistics of the *uncompressed* network. Repair fixes those statistics; the weights are
never trained.

- `repair` (REPAIR): reset every BatchNorm's running statistics and re-estimate them with forward passes over
  calibration data (cumulative average, ``momentum=None``), the rest of the network in eval mode.
- `ar` (data-free approximate repair): a folded channel is the mean of the n_c channels of its cluster. If each
  member has variance σ² and their mean pairwise correlation is ρ_c, the mean has variance
  σ²·(1 + (n_c − 1)·ρ_c) / n_c. So the merged channel of every BatchNorm of the group gets
  ``running_var *= (1 + (n_c − 1)·ρ_c) / n_c`` — the same as scaling its normalised output by
  sqrt(n_c / (1 + (n_c − 1)·ρ_c)). ρ_c is the compressor's estimate from weight cosine similarity, clipped to
  [0, 1] (k-means merges similar channels; a negative estimate is noise and would make the factor meaningless).
  Singletons (n_c = 1) are unchanged, so for the magnitude-pruning methods (mag1/mag2: every kept channel is a
  singleton, nothing is merged) `ar` is the identity.
  The premise is that the merged channel reaches the next layers only as BatchNorm output that later, also
  corrected, BatchNorms renormalise. It fails, and `ar` leaves a group as folded (GroupRecord.ar_skip, one notice),
  where the channels are multiplied by a squeeze-excitation gate computed from themselves, or feed a layer whose
  own outputs are not compressed (e.g. the 1×1 conv before RegNet's grouped conv): that layer's BatchNorm keeps its
  stored statistics and passes the rescaled channels on, and along a residual stream the excess compounds block
  after block (random-weight edge zoo, BatchNorm statistics from digits, fold r=0.5: full-width RegNetX largest
  output error 25.6 with ar vs 1.9 without; small EfficientNet-B0 relative error 3.3 vs 0.9). Trained ResNets are
  not affected by the rule (ResNet-18 on digits, fold r=0.3: 97.5 % with ar, 38.3 % without).
- `dir` (deep-inversion repair): synthesise a small batch from the *uncompressed* model alone — optimise random
  inputs with Adam so that their per-BatchNorm batch statistics match each BatchNorm's running mean and variance
  (plus a small total-variation and L2 prior and a cross-entropy term on fixed labels, which spreads the batch
  over classes) — then run REPAIR on the compressed model with that batch. No real data is touched, and the
  result is deterministic for a given seed.

LayerNorm (vit_tiny and other transformers): LayerNorm keeps no running statistics; it normalises every token
with statistics computed at inference time across its channels, so it re-estimates itself on every input — that
is what "LayerNorm reset" amounts to, and there is nothing to re-estimate. Its affine parameters are learned
weights (folded by the compressor like any producer's) and are left as they are: resetting them to 1/0 would
throw away training, not repair statistics. The `ar` variance argument concerns a channel's variance across
samples, which LayerNorm does not normalise, so `ar` leaves LayerNorm channels unchanged (identity) — the same
thing `repair` does for them. In a model without BatchNorm, `repair`, `ar` and `dir` therefore leave the model
as it is (`dir` does not even synthesise a batch); BatchNorm layers of mixed models are repaired as usual.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from edgefold.core.errors import EdgefoldError
from edgefold.core.vocab import REPAIRS

KINDS = REPAIRS
REPAIR_BATCH = 128  # calibration samples per forward pass during re-estimation


@dataclass(frozen=True)
class DirConfig:
    """Deep-inversion settings. The defaults take ~5-10 s on resnet8 on one CPU core."""

    batch: int = 32  # synthetic images
    steps: int = 100  # Adam steps
    lr: float = 0.2
    tv: float = 1e-3  # total-variation prior weight (smooth images)
    l2: float = 1e-4  # L2 prior weight (bounded pixel values)
    ce: float = 0.0  # cross-entropy on fixed labels (off: it did not help on resnet8/digits)
    seed: int = 0


DEFAULT_DIR = DirConfig()


def batchnorms(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    """BatchNorm layers that keep running statistics (the only ones repair can change)."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats and m.running_var is not None]


def apply_repair(kind: str, compressed: nn.Module, original: nn.Module, groups: Sequence[Any],
                 calib_data: Any, example_inputs: Any, *, seed: int | None = None,
                 dir_config: DirConfig | None = None) -> None:
    """Repair the normalisation statistics of `compressed` in place.

    `groups` are the compressor's GroupRecords (members, rho, norm_layers per coupled group); `original` is the
    uncompressed model (read only, used by `dir`); `calib_data` is a tensor/array of inputs or an iterable of
    input batches (or (inputs, labels) pairs), needed by `repair`; `example_inputs` gives `dir` its input shape.
    """
    if kind not in KINDS:
        raise EdgefoldError(f"unknown repair '{kind}'; choose one of: {', '.join(KINDS)}")
    if kind == "none":
        return
    if kind == "repair":
        if calib_data is None:
            raise EdgefoldError("repair 'repair' re-estimates BatchNorm statistics and needs calibration data "
                                "(use 'ar' or 'dir' for data-free repair)")
        reestimate_bn(compressed, calib_data)
    elif kind == "ar":
        approximate_repair(compressed, groups)
    else:
        cfg = dir_config or DEFAULT_DIR
        if seed is not None:
            cfg = replace(cfg, seed=seed)
        if not batchnorms(compressed):
            return  # nothing to re-estimate (LayerNorm-only model): see module docstring
        synthetic = deep_inversion(original, example_inputs, cfg)
        reestimate_bn(compressed, synthetic)


# --- REPAIR: re-estimate BatchNorm statistics -----------------------------------------------------------------


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise EdgefoldError(f"calibration data must be a tensor or array of inputs, got {type(x).__name__}")
    return x.float()


def _batches(calib: Any, batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(calib, (torch.Tensor, np.ndarray)):
        x = _as_tensor(calib)
        if len(x) == 0:
            raise EdgefoldError("calibration data is empty")
        # Equal-sized chunks: the cumulative average weights every batch equally, so a tiny last batch would
        # count as much as a full one.
        yield from torch.tensor_split(x, math.ceil(len(x) / batch_size))
        return
    n = 0
    for item in calib:
        if isinstance(item, (tuple, list)):
            item = item[0]
        n += 1
        yield _as_tensor(item)
    if n == 0:
        raise EdgefoldError("calibration data is empty")


@torch.no_grad()
def reestimate_bn(model: nn.Module, calib: Any, batch_size: int = REPAIR_BATCH) -> int:
    """Reset every BatchNorm's running stats and re-estimate them on `calib`; returns the layers repaired."""
    bns = batchnorms(model)
    if not bns:
        # Still validate the data so that a bad calibration set is reported the same way for every model.
        for _ in _batches(calib, batch_size):
            pass
        return 0
    was_training = model.training
    saved = [(m, m.momentum) for _, m in bns]
    model.eval()
    for _, m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over all calibration batches
        m.train()
    try:
        for x in _batches(calib, batch_size):
            model(x)
    finally:
        for m, mom in saved:
            m.momentum = mom
        model.train(was_training)
    return len(bns)


# --- AR: data-free approximate repair -------------------------------------------------------------------------


def variance_factor(n: int, rho: float) -> float:
    """Variance of the mean of n channels with mean pairwise correlation rho, relative to one channel."""
    rho = min(1.0, max(0.0, float(rho)))
    return (1.0 + (n - 1) * rho) / n


@torch.no_grad()
def approximate_repair(model: nn.Module, groups: Sequence[Any]) -> int:
    """Scale the running variance of every merged BatchNorm channel; returns the channels changed."""
    modules = dict(model.named_modules())
    changed = 0
    for g in groups:
        if getattr(g, "ar_skip", ""):
            continue  # the premise does not hold for this group: its statistics are left as they are
        factors = torch.tensor([variance_factor(len(mem), r) for mem, r in zip(g.members, g.rho, strict=True)])
        if bool((factors == 1.0).all()):
            continue  # singletons only (magnitude pruning, or an untouched group)
        for name in g.norm_layers:
            m = modules.get(name)
            if not (isinstance(m, _BatchNorm) and m.track_running_stats and m.running_var is not None):
                continue  # LayerNorm / GroupNorm / batch-stat BN: no running variance to correct
            pos = getattr(g, "norm_index", {}).get(name)
            if pos is None:  # the layer holds this group's channels only, in order
                pos = [[c] for c in range(len(factors))]
            index = torch.as_tensor(pos, dtype=torch.long).reshape(len(factors), -1)
            if index.numel() and int(index.max()) >= m.running_var.numel():
                raise RuntimeError(f"group {g.name}: {name} has {m.running_var.numel()} channels, fewer than the "
                                   f"group's positions in it")
            f = factors.to(m.running_var.dtype)[:, None].expand_as(index)
            m.running_var.index_put_((index.reshape(-1),), m.running_var[index.reshape(-1)] * f.reshape(-1))
            changed += int((factors != 1.0).sum())
    return changed


# --- DIR: deep inversion of the uncompressed model ------------------------------------------------------------


def _example_tensor(example_inputs: Any) -> torch.Tensor:
    x = example_inputs
    if isinstance(x, (tuple, list)):
        if len(x) != 1:
            raise EdgefoldError("repair 'dir' supports models with a single input tensor")
        x = x[0]
    if not isinstance(x, torch.Tensor):
        raise EdgefoldError(f"example inputs must be a tensor, got {type(x).__name__}")
    return x


def _total_variation(x: torch.Tensor) -> torch.Tensor:
    tv = x.new_zeros(())
    for d in range(2, x.dim()):
        if x.shape[d] > 1:
            tv = tv + (x.narrow(d, 1, x.shape[d] - 1) - x.narrow(d, 0, x.shape[d] - 1)).abs().mean()
    return tv


def deep_inversion(model: nn.Module, example_inputs: Any, cfg: DirConfig = DEFAULT_DIR) -> torch.Tensor:
    """A synthetic batch whose per-BatchNorm statistics in `model` match the stored running statistics."""
    ex = _example_tensor(example_inputs)
    bns = batchnorms(model)
    g = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn((cfg.batch, *ex.shape[1:]), generator=g, dtype=torch.float32)
    if not bns or cfg.steps <= 0:
        return x
    stats: list[tuple[torch.Tensor, torch.Tensor, _BatchNorm]] = []

    def hook(m: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        a = inputs[0]
        dims = [d for d in range(a.dim()) if d != 1]
        stats.append((a.mean(dims), a.var(dims, unbiased=False), m))

    handles = [m.register_forward_hook(hook) for _, m in bns]
    was_training = model.training
    model.eval()  # forward with running stats; the hooks see the batch's own statistics
    # The caller may be under no_grad/inference_mode (compress() often is); the optimisation needs autograd.
    grad_ctx = contextlib.ExitStack()
    grad_ctx.enter_context(torch.inference_mode(False))
    grad_ctx.enter_context(torch.enable_grad())
    x = x.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=cfg.lr)
    try:
        for _ in range(cfg.steps):
            stats.clear()
            out = model(x)
            loss = x.new_zeros(())
            for mean, var, m in stats:
                # Scale-free per channel (mean error in units of the stored std, relative std error), so wide
                # high-variance layers don't drown the others; converged ~2x faster than raw L2 norms here.
                rv = m.running_var + m.eps
                loss = loss + ((mean - m.running_mean).pow(2) / rv).mean() \
                    + ((var + m.eps) / rv).sqrt().sub(1).pow(2).mean()
            loss = loss / len(stats)
            if cfg.ce > 0 and isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[1] > 1:
                labels = torch.arange(cfg.batch) % out.shape[1]
                loss = loss + cfg.ce * F.cross_entropy(out, labels)
            loss = loss + cfg.tv * _total_variation(x) + cfg.l2 * x.pow(2).mean()
            (grad,) = torch.autograd.grad(loss, [x])  # gradients for x only: the model's weights stay untouched
            opt.zero_grad(set_to_none=True)
            x.grad = grad
            opt.step()
    finally:
        grad_ctx.close()
        for h in handles:
            h.remove()
        model.train(was_training)
    return x.detach().contiguous()
