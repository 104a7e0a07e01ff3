"""Per-kernel randomized tests: single-op PyTorch models with random shapes, strides, padding, channel counts and
activation ranges (set by the calibration data), exported by the real int8 TFLite exporter, compared bit-exactly
with TFLM on random inputs. Fixed seeds, so CI is deterministic."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from _ef_runtime_support import export, host_model, io_params, tflm
from torch import nn

N_INPUTS = 12


def _calib(seed: int, shape: tuple[int, ...], n: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    spread = float(torch.empty(1).uniform_(0.2, 4.0, generator=g))
    shift = float(torch.empty(1).uniform_(-1.0, 1.0, generator=g))
    return (torch.randn((n, *shape[1:]), generator=g) * spread + shift).contiguous()


def _inputs(blob: bytes, seed: int) -> np.ndarray:
    _, _, shape = io_params(blob)
    rng = np.random.default_rng(seed)
    return rng.integers(-128, 128, size=(N_INPUTS, *shape[1:]), dtype=np.int8)


def _compare(model: nn.Module, shape: tuple[int, ...], seed: int, expect_op: str) -> bytes:
    from edgefold.compiler.tflite_model import read_tflite

    torch.manual_seed(seed)
    model = model.eval()
    blob = export(model, shape, _calib(seed, shape))
    ops = {op.name for op in read_tflite(blob).ops}
    assert expect_op in ops, f"exporter produced {ops}, not {expect_op}"
    x = _inputs(blob, seed)
    ref = tflm(blob, x)
    for variant in ("portable", "packed"):
        ours = host_model(blob, variant).run(x)
        assert np.array_equal(ours, ref), f"{expect_op} seed {seed} {variant}: {(ours != ref).sum()} bytes differ"
    return blob


def _int8_front(c: int, seed: int) -> nn.Conv2d:
    """A 1x1 conv in front of ops the PT2E quantizer does not annotate on their own (add, pools, mean): without it
    the exporter leaves such a one-op model's input float."""
    torch.manual_seed(seed)
    return nn.Conv2d(c, c, 1)


def _act(kind: int) -> list[nn.Module]:
    return [[], [nn.ReLU()], [nn.ReLU6()]][kind]


# Exports cost ~10 s each on a busy CI machine: a small fixed set by default, more with EDGEFOLD_FULL_BITEXACT=1.
FULL = os.environ.get("EDGEFOLD_FULL_BITEXACT") == "1"
CONV_SEEDS = [1, 2, 3, 4, 5, 6, 7, 8] if FULL else [1, 2]


@pytest.mark.parametrize("seed", CONV_SEEDS)
def test_conv_2d(seed: int) -> None:
    r = np.random.default_rng(seed)
    cin, cout = int(r.integers(1, 20)), int(r.integers(1, 24))
    k = int(r.choice([1, 3, 5]))
    stride = int(r.choice([1, 2]))
    pad = int(r.choice([0, k // 2]))
    h, w = int(r.integers(k + 1, 14)), int(r.integers(k + 1, 14))
    model = nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, bias=bool(r.integers(2))), *_act(seed % 3))
    _compare(model, (1, cin, h, w), seed, "CONV_2D")


# 1x1 convolutions on 8 channels (MobileNet expansions) have their own packed kernel (conv_2d.c pointwise8)
@pytest.mark.parametrize("cout,act,hw", [(48, 2, (6, 5)), (13, 0, (3, 3))])
def test_conv_2d_pointwise8(cout: int, act: int, hw: tuple[int, int], tmp_path) -> None:
    from edgefold.compiler.codegen import generate

    model = nn.Sequential(nn.Conv2d(8, cout, 1, bias=act != 0), *_act(act))
    blob = _compare(model, (1, 8, *hw), 30 + cout, "CONV_2D")
    generate(blob, tmp_path)
    assert ".pointwise = 8" in (tmp_path / "model.c").read_text(), "the pointwise8 kernel was not selected"


@pytest.mark.parametrize("seed", [11, 12, 13, 14] if FULL else [12])
def test_depthwise_conv_2d(seed: int) -> None:
    r = np.random.default_rng(seed)
    c, mult = int(r.integers(1, 16)), int(r.choice([1, 1, 2]))
    k, stride = int(r.choice([3, 5])), int(r.choice([1, 2]))
    h, w = int(r.integers(k + 1, 14)), int(r.integers(k + 1, 14))
    model = nn.Sequential(nn.Conv2d(c, c * mult, k, stride, k // 2, groups=c), *_act(seed % 3))
    _compare(model, (1, c, h, w), seed, "DEPTHWISE_CONV_2D")


# channel counts that are not a multiple of 4: the packed kernel's quads plus its one-channel tail
@pytest.mark.parametrize("c,k,stride", [(7, 3, 1), (6, 5, 2)])
def test_depthwise_conv_2d_channel_tail(c: int, k: int, stride: int) -> None:
    model = nn.Sequential(nn.Conv2d(c, c, k, stride, k // 2, groups=c), nn.ReLU6())
    _compare(model, (1, c, 9, 8), 15 + c, "DEPTHWISE_CONV_2D")


@pytest.mark.parametrize("seed", [21, 23, 24] if FULL else [23])
def test_fully_connected(seed: int) -> None:
    r = np.random.default_rng(seed)
    fin, fout = int(r.integers(1, 80)), int(r.integers(1, 40))
    # (a trailing ReLU after Linear leaves the exporter's output float: not a runtime matter, so not tested here)
    model = nn.Sequential(nn.Linear(fin, fout), *([nn.ReLU6()] if seed % 2 else []))
    _compare(model, (1, fin), seed, "FULLY_CONNECTED")


class _AddConst(nn.Module):
    def __init__(self, c: int, relu: bool):
        super().__init__()
        self.b = nn.Parameter(torch.randn(1, c, 1, 1))
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + self.b
        return torch.relu(y) if self.relu else y


# (an ADD as the model's last op leaves the exporter's output float, so a 1x1 conv follows it)
@pytest.mark.parametrize("seed", [31, 32] if FULL else [31])
def test_add(seed: int) -> None:
    r = np.random.default_rng(seed)
    c, h, w = int(r.integers(1, 12)), int(r.integers(2, 10)), int(r.integers(2, 10))
    model = nn.Sequential(_int8_front(c, seed), _AddConst(c, bool(seed % 2)), _int8_front(c, seed + 1))
    _compare(model, (1, c, h, w), seed, "ADD")


@pytest.mark.parametrize("seed,kind", [(41, "avg"), (42, "max"), (43, "max")] if FULL else [(41, "avg"), (43, "max")])
def test_pool(seed: int, kind: str) -> None:
    r = np.random.default_rng(seed)
    c, k = int(r.integers(1, 12)), int(r.choice([2, 3]))
    stride = int(r.choice([1, 2]))
    h, w = int(r.integers(k + 1, 14)), int(r.integers(k + 1, 14))
    pool = nn.AvgPool2d(k, stride) if kind == "avg" else nn.MaxPool2d(k, stride, padding=int(r.choice([0, k // 2])))
    op = "AVERAGE_POOL_2D" if kind == "avg" else "MAX_POOL_2D"
    _compare(nn.Sequential(_int8_front(c, seed), pool), (1, c, h, w), seed, op)


class _Mean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


@pytest.mark.parametrize("seed", [51])
def test_mean(seed: int) -> None:
    r = np.random.default_rng(seed)
    c = int(r.integers(1, 20))
    _compare(nn.Sequential(_int8_front(c, seed), _Mean()), (1, c, int(r.integers(1, 9)), int(r.integers(1, 9))),
             seed, "MEAN")


class _Concat(nn.Module):
    def __init__(self, c: int, c2: int, seed: int):
        super().__init__()
        self.front, self.side, self.back = _int8_front(c, seed), nn.Conv2d(c, c2, 3, 1, 1), _int8_front(c + c2, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.front(x)
        return self.back(torch.cat([x, self.side(x)], dim=1))


@pytest.mark.parametrize("seed", [61])
def test_concatenation(seed: int) -> None:
    r = np.random.default_rng(seed)
    c, c2 = int(r.integers(1, 9)), int(r.integers(1, 9))
    _compare(_Concat(c, c2, seed), (1, c, int(r.integers(3, 9)), int(r.integers(3, 9))), seed, "CONCATENATION")
