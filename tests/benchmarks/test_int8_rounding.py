"""benchmarks/int8_rounding.py: weights land on TFLite's int8 grid, the real exporter keeps them, and GPTQ
rounding lowers a layer's output error on correlated inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from int8_rounding import QMAX, gptq_rows, round_weights


def _correlated(n: int, seed: int) -> torch.Tensor:
    """Three identical channels, like a grayscale image fed to an RGB model."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g).repeat(1, 3, 1, 1)


def test_gptq_codes_keep_each_channels_scale_and_lower_output_error() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 27, generator=g, dtype=torch.float64)
    x = torch.nn.functional.unfold(_correlated(64, 1).double(), 3, padding=1)  # N x 27 x L
    x = x.permute(1, 0, 2).reshape(27, -1)
    h = x @ x.T / x.shape[1]
    q = gptq_rows(w, h)
    s = w.abs().amax(1, keepdim=True) / QMAX
    assert torch.equal(q, q.round()) and q.abs().max() <= QMAX
    assert torch.equal(q.abs().amax(1), torch.full((8,), float(QMAX), dtype=q.dtype))  # the grid is unchanged
    nearest = torch.round(w / s)
    err_gptq = ((w - q * s) @ x).pow(2).mean()
    err_nearest = ((w - nearest * s) @ x).pow(2).mean()
    assert err_gptq < 0.5 * err_nearest, (float(err_gptq), float(err_nearest))


@pytest.mark.parametrize("rounding", ["nearest", "gptq"])
def test_exporter_reproduces_the_rounded_codes(rounding: str) -> None:
    from edgefold.compiler.export.tflite import convert_int8
    from edgefold.compiler.tflite_model import read_tflite

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 5)).eval()
    model[1].running_var.uniform_(0.5, 2.0)
    calib = _correlated(32, 2)
    rounded = round_weights(model, calib, rounding, bias_correction=True)
    assert not torch.equal(rounded[0].bias, torch.zeros(4))  # bias correction moved the conv's bias
    tfl = read_tflite(convert_int8(rounded, calib[:1], calib))
    conv = torch.nn.utils.fusion.fuse_conv_bn_eval(rounded[0], rounded[1]).weight.detach()
    want_conv = torch.round(conv / (conv.abs().amax((1, 2, 3), keepdim=True) / QMAX)).permute(0, 2, 3, 1)
    lin = rounded[4].weight.detach()
    want_lin = torch.round(lin / (lin.abs().amax(1, keepdim=True) / QMAX))
    got = {t.shape: t.data for t in tfl.tensors if t.dtype == "int8" and t.data is not None and t.data.ndim >= 2}
    assert np.array_equal(got[(4, 3, 3, 3)], want_conv.numpy().astype(np.int8))
    # the Linear sees the NCHW flatten; the exporter may permute its input columns, not the codes per channel
    assert np.array_equal(np.sort(got[(5, 256)], 1), np.sort(want_lin.numpy().astype(np.int8), 1))
