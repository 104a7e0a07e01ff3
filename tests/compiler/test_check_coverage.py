"""Op coverage gate: ops and versions read from the flatbuffer, uncovered ops named with their layer, layout flags."""

from __future__ import annotations

import os

import pytest
import torch
from edgefold.compiler.check.coverage import TFLM_OPS, backend_ops, check_coverage
from edgefold.compiler.tflite_model import Op, Tensor, TfliteModel, layer_from_tensor_name, op_layer, read_tflite
from torch import nn

from edgefold.core.errors import EdgefoldError


class ConvSin(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.sin(self.conv(x)))


@pytest.fixture(scope="module")
def float_nchw():
    """A float .tflite converted with NCHW I/O: the converter must wrap the convs in TRANSPOSEs."""
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    import litert_torch
    from edgefold.compiler.check.capture import capture_fd2

    torch.manual_seed(0)
    with capture_fd2():
        return bytes(litert_torch.convert(ConvSin().eval(), (torch.randn(1, 3, 8, 8),)).model_content())


def test_reads_ops_and_versions(float_nchw):
    info = read_tflite(float_nchw)
    ops = info.op_versions()
    assert {"CONV_2D", "SIN", "TRANSPOSE"} <= set(ops)
    assert all(isinstance(v, int) and v >= 1 for v in ops.values())
    assert info.input_tensors[0].shape == (1, 3, 8, 8) and info.input_tensors[0].type_name == "FLOAT32"


def test_uncovered_op_is_named_with_its_layer(float_nchw):
    with pytest.raises(EdgefoldError, match=r"op SIN v\d+ \(from layer") as e:
        check_coverage(float_nchw, "tflm")
    assert "tflm backend" in str(e.value) and "\n" not in str(e.value)
    if backend_ops("edgefold") is not None:  # the micro runtime's table, once codegen is installed
        with pytest.raises(EdgefoldError, match="SIN"):
            check_coverage(float_nchw, "edgefold")


def test_transpose_next_to_conv_is_flagged(float_nchw):
    info = read_tflite(float_nchw)
    info.ops = [op for op in info.ops if op.name != "SIN"]  # gate the rest; flags are what we look at
    report = check_coverage(info, "tflm")
    assert report.flags and all("TRANSPOSE" in f and "CONV_2D" in f for f in report.flags)
    assert "AddTranspose" in report.resolver and report.status == "covered"


def test_version_gate_and_unknown_backend():
    t = [Tensor(0, "in", (1, 4), "int8"), Tensor(1, "Wrapper/pkg.Net_wrapped/x.Conv2d_stem;1", (1, 4), "int8")]
    info = TfliteModel(t, [Op(0, "CONV_2D", 99, [0], [1], layer=op_layer([t[1]], [t[0]]))], [0], [1], "0" * 16)
    table = backend_ops("edgefold")
    if table is not None and "CONV_2D" in table:
        with pytest.raises(EdgefoldError, match=r"CONV_2D version 99 \(from layer 'stem'\)"):
            check_coverage(info, "edgefold")
    assert check_coverage(info, "tflm").status == "covered"  # TFLM resolves by builtin code, any version
    with pytest.raises(EdgefoldError, match="unknown target backend"):
        check_coverage(info, "cuda")


def test_layer_names_and_tflm_table():
    name = ("litert_torch._convert.to_channel_last_io.ChannelLastIOWrapper/edgefold.compiler.zoo.ResNet_wrapped/"
            "torch.nn.modules.container.Sequential_layers/edgefold.compiler.zoo.BasicBlock_1/"
            "torch.nn.modules.conv.Conv2d_conv1;1")
    assert layer_from_tensor_name(name) == "layers.1.conv1"
    assert layer_from_tensor_name("tfl.pseudo_qconst3") == ""
    assert TFLM_OPS["DEPTHWISE_CONV_2D"] == "AddDepthwiseConv2D" and "SIN" not in TFLM_OPS
