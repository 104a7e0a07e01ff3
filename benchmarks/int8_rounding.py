"""Data-aware int8 weight rounding and bias correction, applied to a float model before it is quantised
(measured by benchmarks/int8_remedies.py; not part of the exporter, as it did not raise agreement there).

TFLite's int8 weights are symmetric per output channel: q = clamp(round(w / s), -127, 127) with
s = max|w| / 127. Rounding each weight to its nearest grid point ignores the layer's input: for a conv whose
input channels are correlated (an RGB camera, or a grayscale image in three channels), the rounding errors of
one channel's weights can be cancelled by another's. GPTQ (Frantar et al., 2023) rounds a layer's weights one
input column at a time and spreads each column's error over the columns not yet rounded, weighted by the
inverse of the input's second moment H = E[x xᵀ] measured on calibration data; the result minimises the
layer's output error ||(W - Q) x||² far better than nearest rounding.

The rounded weights are written back as floats exactly on the grid (w = q · s, with each channel's largest
weight kept at ±127 so s does not change), so the exporter's own per-channel quantiser reproduces q; BatchNorm
folding scales a channel's weights and its grid alike, so the grid survives it. Bias correction (Nagel et al.,
2019) then removes the mean output shift E[(W - Q) x] the rounding leaves in each channel.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from edgefold.core.errors import EdgefoldError

ROUNDINGS = ("nearest", "gptq")
DEFAULT_ROUNDING = "nearest"
QMAX = 127
DAMPING = 0.01  # of the mean diagonal of H, so that H is invertible when inputs are (nearly) collinear
BATCH = 64


def check_rounding(rounding: str) -> str:
    if rounding not in ROUNDINGS:
        raise EdgefoldError(f"unknown weight rounding '{rounding}'; choose one of: {', '.join(ROUNDINGS)}")
    return rounding


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers whose weights TFLite quantises per output channel (Conv1d/2d, Linear)."""
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and m.weight.numel() > 0]


def _columns(mod: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's input as groups x K x samples: the vectors each output channel takes a dot product with."""
    if isinstance(mod, nn.Linear):
        return x.reshape(-1, x.shape[-1]).T.unsqueeze(0)
    if isinstance(mod, nn.Conv1d):
        x = x.unsqueeze(2)
        kernel, stride, pad, dil = (1, *mod.kernel_size), (1, *mod.stride), (0, *mod.padding), (1, *mod.dilation)
    else:
        kernel, stride, pad, dil = mod.kernel_size, mod.stride, mod.padding, mod.dilation
    if isinstance(pad, str) or mod.padding_mode != "zeros":
        raise ValueError("padding mode")
    cols = F.unfold(x, kernel, dilation=dil, padding=pad, stride=stride)  # N x (C*kh*kw) x L
    g = mod.groups
    cols = cols.reshape(x.shape[0], g, -1, cols.shape[-1])  # channel-major, as the weight's flattening
    return cols.permute(1, 2, 0, 3).reshape(g, cols.shape[2], -1)


class _Stats:
    """Accumulated per-layer input statistics: H = Σ x xᵀ per group and the mean input vector."""

    def __init__(self) -> None:
        self.h: torch.Tensor | None = None
        self.s: torch.Tensor | None = None
        self.n = 0

    def add(self, cols: torch.Tensor) -> None:
        cols = cols.double()
        h, s = cols @ cols.transpose(1, 2), cols.sum(2)
        self.h = h if self.h is None else self.h + h
        self.s = s if self.s is None else self.s + s
        self.n += cols.shape[2]


@torch.no_grad()
def _collect(model: nn.Module, calib: torch.Tensor, layers: list[tuple[str, nn.Module]]) -> dict[str, _Stats]:
    stats: dict[str, _Stats] = {name: _Stats() for name, _ in layers}
    skip: set[str] = set()
    hooks = []
    for name, mod in layers:
        def hook(m: nn.Module, args: tuple, _out: torch.Tensor, name: str = name) -> None:
            if name in skip or not args or not isinstance(args[0], torch.Tensor):
                return
            try:
                stats[name].add(_columns(m, args[0].detach()))
            except ValueError:
                skip.add(name)
        hooks.append(mod.register_forward_hook(hook))
    try:
        for i in range(0, len(calib), BATCH):
            model(calib[i : i + BATCH])
    finally:
        for h in hooks:
            h.remove()
    return {k: v for k, v in stats.items() if k not in skip and v.n > 0}


def _grid(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel scale of TFLite's symmetric int8 weights, shaped to broadcast over w (rows x K)."""
    return (w.abs().amax(1, keepdim=True) / QMAX).clamp_min(1e-30)


def gptq_rows(w: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Round the rows of w (R x K, one output channel each) onto their int8 grid, GPTQ order, for input
    second moment h (K x K); returns the integer codes (R x K, in [-127, 127]) with each row's largest
    weight at ±127."""
    w = w.double().clone()
    s = _grid(w)
    top = w.abs().argmax(1)
    keep = torch.zeros_like(w, dtype=torch.bool)
    keep[torch.arange(len(w)), top] = True
    fixed = torch.round(w / s).clamp(-QMAX, QMAX)  # ±127 at each row's largest weight
    h = h.double().clone()
    dead = torch.diag(h) == 0  # an input that is always zero: its weights do not matter
    h[dead, dead] = 1
    h += torch.eye(len(h), dtype=h.dtype) * DAMPING * torch.diag(h).mean()
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    q = torch.empty_like(w)
    for j in range(w.shape[1]):
        col = torch.where(keep[:, j], fixed[:, j], torch.round(w[:, j] / s[:, 0]).clamp(-QMAX, QMAX))
        q[:, j] = col
        err = (w[:, j] - col * s[:, 0]) / u[j, j]
        w[:, j + 1 :] -= err[:, None] * u[j, j + 1 :][None, :]
    return q


def _matrix(mod: nn.Module) -> torch.Tensor:
    return mod.weight.detach().reshape(mod.weight.shape[0], -1)


def round_weights(model: nn.Module, calib: torch.Tensor, rounding: str = "gptq",
                  bias_correction: bool = True) -> nn.Module:
    """A copy of `model` (eval mode) whose Conv/Linear weights lie on TFLite's int8 grid, rounded with `rounding`,
    and whose biases cancel the mean output shift of the rounding (`bias_correction`)."""
    check_rounding(rounding)
    model = copy.deepcopy(model).eval()
    layers = _layers(model)
    if not layers:
        return model
    stats = _collect(model, calib, layers)
    with torch.no_grad():
        for name, mod in layers:
            st = stats.get(name)
            if st is None:
                continue
            w = _matrix(mod).double()
            groups = st.h.shape[0]
            rows = w.reshape(groups, -1, w.shape[1])  # output channels are grouped in order
            s = _grid(w).reshape(groups, -1, 1)
            if rounding == "gptq":
                q = torch.stack([gptq_rows(rows[g], st.h[g] / st.n) for g in range(groups)])
            else:
                q = torch.round(rows / s).clamp(-QMAX, QMAX)
            new = (q * s).reshape(w.shape)
            if bias_correction:
                mean_in = (st.s / st.n).unsqueeze(2)  # groups x K x 1
                shift = ((new - w).reshape(groups, -1, w.shape[1]) @ mean_in).reshape(-1)
                if mod.bias is None:
                    mod.bias = nn.Parameter(torch.zeros(w.shape[0], dtype=mod.weight.dtype))
                mod.bias.data -= shift.to(mod.bias.dtype)
            mod.weight.data = new.reshape(mod.weight.shape).to(mod.weight.dtype)
    return model
