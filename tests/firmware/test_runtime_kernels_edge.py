"""Randomized single-op tests for the kernels the edge architectures need (issue #13): activations (LOGISTIC, TANH,
HARD_SWISH, LEAKY_RELU, RSQRT, standalone RELU / RELU6), SUB / MAXIMUM / MINIMUM, SUM, STRIDED_SLICE, slicing and
channel shuffle, grouped convolution, int8 SOFTMAX. Each builds a tiny PyTorch module, exports it with the project's
int8 TFLite exporter, generates C, builds it on the host (portable and packed kernels) and compares bit-exactly with
TFLM on 20 random inputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from _ef_runtime_support import export, host_model, io_params, tflm
from torch import nn

N_INPUTS = 20


def _calib(seed: int, shape: tuple[int, ...], n: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    spread = float(torch.empty(1).uniform_(0.3, 4.0, generator=g))
    shift = float(torch.empty(1).uniform_(-1.0, 1.0, generator=g))
    return (torch.randn((n, *shape[1:]), generator=g) * spread + shift).contiguous()


def _compare(model: nn.Module, shape: tuple[int, ...], seed: int, expect_op: str) -> None:
    from edgefold.compiler.tflite_model import read_tflite

    torch.manual_seed(seed)
    blob = export(model.eval(), shape, _calib(seed, shape))
    ops = [op for op in read_tflite(blob).ops if op.name == expect_op]
    assert ops, f"exporter produced {[op.name for op in read_tflite(blob).ops]}, not {expect_op}"
    g = read_tflite(blob)
    assert all(g.tensors[i].dtype == "int8" for op in ops for i in op.outputs), f"{expect_op} is not int8"
    _, _, in_shape = io_params(blob)
    x = np.random.default_rng(seed).integers(-128, 128, size=(N_INPUTS, *in_shape[1:]), dtype=np.int8)
    ref = tflm(blob, x)
    for variant in ("portable", "packed"):
        ours = host_model(blob, variant).run(x)
        assert np.array_equal(ours, ref), f"{expect_op} seed {seed} {variant}: {(ours != ref).sum()} bytes differ"


class _Around(nn.Module):
    """1x1 convs around `fn`, so the exporter quantises the op's input and output (a lone op stays float)."""

    def __init__(self, c: int, fn: Callable[[torch.Tensor], torch.Tensor], c_out: int | None = None):
        super().__init__()
        self.a, self.b, self.fn = nn.Conv2d(c, c, 1), nn.Conv2d(c_out or c, c_out or c, 1), fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.fn(self.a(x)))


def _shape(seed: int, c_max: int = 12) -> tuple[int, int, int, int]:
    r = np.random.default_rng(seed)
    return 1, int(r.integers(1, c_max)), int(r.integers(1, 12)), int(r.integers(1, 12))


ACTIVATIONS: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "sigmoid": ("LOGISTIC", torch.sigmoid),
    "tanh": ("TANH", torch.tanh),
    "hardswish": ("HARD_SWISH", nn.functional.hardswish),
    "leaky": ("LEAKY_RELU", lambda x: nn.functional.leaky_relu(x, 0.1)),
    "rsqrt": ("RSQRT", lambda x: torch.rsqrt(x * x + 0.1)),
    "gelu": ("LOGISTIC", nn.functional.gelu),  # exported as x * sigmoid(1.702 x): TFLM has no GELU
}


@pytest.mark.parametrize("seed", [101, 102])
@pytest.mark.parametrize("kind", sorted(ACTIVATIONS))
def test_activation(kind: str, seed: int) -> None:
    op, fn = ACTIVATIONS[kind]
    shape = _shape(seed)
    if seed % 2 == 0:  # > 256 elements: the kernels' table path
        shape = (1, shape[1], 12, 12)
    _compare(_Around(shape[1], fn), shape, seed, op)


@pytest.mark.parametrize("seed", [103, 104])
@pytest.mark.parametrize("op, fn", [("RELU", nn.functional.relu), ("RELU6", nn.functional.relu6)])
def test_standalone_relu(op: str, fn: Callable[[torch.Tensor], torch.Tensor], seed: int) -> None:
    """After a concatenation there is no producer to fuse the activation into (DenseNet's pre-activation)."""
    shape = _shape(seed)
    if seed % 2 == 0:
        shape = (1, shape[1], 12, 12)
    c = shape[1]
    _compare(_Around(c, lambda x: fn(torch.cat([x, 0.5 - x], 1)), c_out=2 * c), shape, seed, op)


class _PRelu(nn.Module):
    def __init__(self, c: int, slopes: int, seed: int):
        super().__init__()
        self.a, self.act, self.b = nn.Conv2d(c, c, 1), nn.PReLU(slopes), nn.Conv2d(c, c, 1)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.act.weight.copy_(torch.empty(slopes).uniform_(-0.5, 1.5, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.act(self.a(x)))


@pytest.mark.parametrize("seed", [105, 106])
@pytest.mark.parametrize("per_channel", [True, False])
def test_prelu_full_integer(per_channel: bool, seed: int) -> None:
    """nn.PReLU (one slope per channel, or one for all) lowers to int8 RELU, MUL, MUL, ADD, with no float island
    and no TRANSPOSE around the per-channel slopes."""
    from edgefold.compiler.export.tflite import check_full_integer
    from edgefold.compiler.tflite_model import read_tflite

    shape = _shape(seed)
    model = _PRelu(shape[1], shape[1] if per_channel else 1, seed)
    _compare(model, shape, seed, "MUL")
    blob = export(model.eval(), shape, _calib(seed, shape))
    check_full_integer(blob, model)
    ops = {op.name for op in read_tflite(blob).ops}
    assert {"RELU", "MUL", "ADD"} <= ops and not ops & {"DEQUANTIZE", "TRANSPOSE"}, ops


class _PreActivation(nn.Module):
    """DenseNet's pre-activation: a BatchNorm after a concatenation, with no conv to fold it into."""

    def __init__(self, c: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a, self.bn, self.b = nn.Conv2d(c, c, 1), nn.BatchNorm2d(2 * c), nn.Conv2d(2 * c, c, 1)
        self.bn.running_mean.copy_(torch.randn(2 * c, generator=g))
        self.bn.running_var.copy_(torch.empty(2 * c).uniform_(0.3, 3.0, generator=g))
        self.bn.weight.data.copy_(torch.randn(2 * c, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.bn(torch.cat([self.a(x), x], 1))))


@pytest.mark.parametrize("seed", [107])
def test_standalone_batchnorm(seed: int) -> None:
    """A BatchNorm that cannot be folded lowers to MUL and ADD in NHWC, with no TRANSPOSE pair around them."""
    from edgefold.compiler.tflite_model import read_tflite

    shape = _shape(seed)
    model = _PreActivation(shape[1], seed)
    _compare(model, shape, seed, "MUL")
    ops = [op.name for op in read_tflite(export(model.eval(), shape, _calib(seed, shape))).ops]
    assert "ADD" in ops and "TRANSPOSE" not in ops, ops


BINARY: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "sub": ("SUB", lambda x: x - x[:, :1]),
    "max": ("MAXIMUM", lambda x: torch.maximum(x, x[:, :1])),
    "min": ("MINIMUM", lambda x: torch.minimum(x, x[:, :1])),
    "mul": ("MUL", lambda x: x * x[:, :1]),  # broadcast along the innermost (channel) dim
    "add": ("ADD", lambda x: x + x[:, :1]),
}


@pytest.mark.parametrize("seed", [111, 112])
@pytest.mark.parametrize("kind", sorted(BINARY))
def test_binary(kind: str, seed: int) -> None:
    op, fn = BINARY[kind]
    shape = _shape(seed)
    _compare(_Around(shape[1], fn), shape, seed, op)


@pytest.mark.parametrize("seed", [121, 122])
def test_sum(seed: int) -> None:
    shape = _shape(seed)
    _compare(_Around(shape[1], lambda x: x.sum((2, 3), keepdim=True)), shape, seed, "SUM")


@pytest.mark.parametrize("seed", [131, 132, 133])
def test_grouped_conv(seed: int) -> None:
    r = np.random.default_rng(seed)
    groups = int(r.choice([2, 3, 4]))
    cin, cout = groups * int(r.integers(2, 6)), groups * int(r.integers(1, 5))  # >= 2 channels a group: not depthwise
    k, stride = int(r.choice([1, 3])), int(r.choice([1, 2]))
    h, w = int(r.integers(k + 1, 11)), int(r.integers(k + 1, 11))
    model = nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups), nn.ReLU())
    _compare(model, (1, cin, h, w), seed, "CONV_2D")


class _Shuffle(nn.Module):
    """ShuffleNetV2's unit: channel split, one branch through a conv, concat, channel shuffle."""

    def __init__(self, c: int):
        super().__init__()
        self.front, self.back = nn.Conv2d(2 * c, 2 * c, 1), nn.Conv2d(2 * c, 2 * c, 1)
        self.branch = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.front(x).chunk(2, dim=1)
        y = torch.cat([a, self.branch(b)], 1)
        n, c, h, w = y.shape
        y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.back(y)


@pytest.mark.parametrize("seed", [141])
def test_split_shuffle(seed: int) -> None:
    r = np.random.default_rng(seed)
    c = int(r.integers(2, 7))
    _compare(_Shuffle(c), (1, 2 * c, int(r.integers(2, 9)), int(r.integers(2, 9))), seed, "CONCATENATION")


# (chunk / split export as one SLICE per part, never as SPLIT / SPLIT_V)
SLICES: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "strided": ("STRIDED_SLICE", lambda x: x[:, :, ::2, 1::2]),
    "split_v": ("SLICE", lambda x: torch.cat(torch.split(x, [1, 2, 3], dim=1)[::-1], 1)),
}


@pytest.mark.parametrize("kind", sorted(SLICES))
def test_slices(kind: str) -> None:
    op, fn = SLICES[kind]
    _compare(_Around(6, fn), (1, 6, 7, 5), 151, op)


class _Softmax(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.a, self.b = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.softmax(self.a(x), dim=-1))


@pytest.mark.parametrize("seed", [161, 162])  # the exporter gives SOFTMAX TFLite's fixed output scale (1/256, -128)
def test_softmax(seed: int) -> None:
    r = np.random.default_rng(seed)
    d = int(r.integers(2, 40))
    _compare(_Softmax(d), (1, int(r.integers(1, 5)), d), seed, "SOFTMAX")


def test_unsupported_op_names_layer(tmp_path) -> None:
    """Codegen's gate, like export's, names the layer an unsupported op came from, on one line."""
    from edgefold.compiler.codegen import UnsupportedOp, generate

    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ELU(), nn.Conv2d(4, 4, 1)).eval()  # ELU lowers to EXP and more
    blob = export(model, (1, 3, 5, 5), _calib(171, (1, 3, 5, 5)))
    with pytest.raises(UnsupportedOp, match=r"^unsupported op: [A-Z_0-9]+ \(layer '1', tensor [^\n]*$"):
        generate(blob, tmp_path / "c")
    assert not (tmp_path / "c").exists()
