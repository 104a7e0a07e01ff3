"""TFLM host interpreter: invoke, arena measurement (report parsing agrees with bisection), input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from edgefold.compiler.check import tflm
from edgefold.compiler.check.fidelity import dequantize_output, quantize_input
from edgefold.compiler.export.tflite import export_tflite_int8
from edgefold.compiler.tflite_model import read_tflite
from torch import nn

from edgefold.core.errors import EdgefoldError


@pytest.fixture(scope="module")
def conv():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()).eval()
    calib = torch.randn(64, 3, 16, 16).clamp(-2, 2)
    return model, calib, export_tflite_int8(model, calib[:1], calib)


def test_single_conv_is_one_op_nhwc_both_ends(conv):
    _, _, blob = conv
    info = read_tflite(blob)
    assert [op.name for op in info.ops] == ["CONV_2D"]  # ReLU fused, no TRANSPOSE at either end
    assert info.input_tensors[0].shape == (1, 16, 16, 3) and info.output_tensors[0].shape == (1, 16, 16, 8)


def test_invoke_matches_float_conv(conv):
    model, calib, blob = conv
    info = read_tflite(blob)
    x = calib[:5]
    xq = quantize_input(x, info.input_tensors[0].scale, info.input_tensors[0].zero_point)
    y = tflm.tflm_invoke(blob, xq)
    assert y.dtype == np.int8 and y.shape == (5, 16, 16, 8)
    assert np.array_equal(y, tflm.tflm_invoke(blob, xq))  # deterministic
    so, zo = info.output_tensors[0].scale, info.output_tensors[0].zero_point
    with torch.no_grad():
        ref = model(x).numpy()
    err = np.abs(dequantize_output(y, so, zo) - ref)
    assert err.max() < 8 * so and err.mean() < so  # int8 rounding of input, weights and output


def test_arena_report_is_the_minimum(conv):
    _, _, blob = conv
    arena = tflm.tflm_arena_bytes(blob)
    assert 0 < arena < 64 * 1024
    assert tflm._fits(blob, arena)
    assert not tflm._fits(blob, arena - 64)
    assert abs(tflm._bisect_arena(blob) - arena) <= 16  # the printed figure agrees with a search


def test_invoke_rejects_wrong_inputs(conv):
    _, _, blob = conv
    with pytest.raises(EdgefoldError, match="int8"):
        tflm.tflm_invoke(blob, np.zeros((1, 16, 16, 3), np.float32))
    with pytest.raises(EdgefoldError, match="shape"):
        tflm.tflm_invoke(blob, np.zeros((1, 3, 16, 16), np.int8))  # NCHW instead of NHWC
    with pytest.raises(EdgefoldError):
        tflm.tflm_invoke(b"not a flatbuffer at all" * 4, np.zeros((1, 16, 16, 3), np.int8))
