"""ONNX float and ONNX int8 (QDQ, per-channel) exports, and calibration data from a user .npz."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from edgefold.compiler import data
from edgefold.compiler.check.fidelity import FormatFidelity, check_fidelity, onnx_outputs, onnx_saturation_note
from edgefold.compiler.export.calib import calibration, load_npz
from edgefold.compiler.export.onnx import export_onnx
from edgefold.compiler.export.onnx_int8 import export_onnx_int8
from export_nets import TINY_SHAPE, trained_tiny

from edgefold.core.errors import EdgefoldError


@pytest.fixture(scope="module")
def exported():
    model = trained_tiny()
    calib = data.calibration_batch(TINY_SHAPE, 64)
    f = export_onnx(model, calib[:1])
    return model, calib, f, export_onnx_int8(f, calib)


def test_float_onnx_matches_torch_any_batch(exported):
    model, calib, f, _ = exported
    m = onnx.load_from_string(f)
    onnx.checker.check_model(m)
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    with torch.no_grad():
        ref = model(calib[:37]).numpy()
    assert np.abs(onnx_outputs(f, calib[:37]) - ref).max() < 1e-4


def test_int8_onnx_is_qdq_per_channel(exported):
    _, _, _, q = exported
    m = onnx.load_from_string(q)
    kinds = [n.op_type for n in m.graph.node]
    assert "QuantizeLinear" in kinds and "DequantizeLinear" in kinds
    inits = {i.name: i for i in m.graph.initializer}
    conv_w = [n.input[1] for n in m.graph.node if n.op_type == "Conv"]
    per_channel = 0
    for w in conv_w:  # each conv weight comes through a DequantizeLinear with one scale per output channel
        dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == w)
        scale = onnx.numpy_helper.to_array(inits[dq.input[1]])
        per_channel += scale.size > 1
        assert onnx.numpy_helper.to_array(inits[dq.input[0]]).dtype == np.int8
    assert conv_w and per_channel == len(conv_w)


def test_int8_onnx_fidelity(exported):
    model, _, f, q = exported
    rep = check_fidelity(model, TINY_SHAPE, {"onnx": f, "onnx-int8": q})
    assert rep["onnx"].agreement == 100.0 and rep["onnx"].max_abs_error < 1e-4
    # The tiny net (~87 % on digits) sits near its decision boundaries: 97 % agreement and <= 2 pt on 2026-11-30,
    # 95.6 % and 2.2 pt on 2026-12-01 with the same code (15ebee2) and freshly resolved packages (cause not found).
    assert rep["onnx-int8"].agreement >= 95.0 and abs(rep["onnx-int8"].accuracy - rep["torch"].accuracy) <= 3.0


def test_int8_rejects_wrong_calibration(exported):
    _, _, f, _ = exported
    with pytest.raises(EdgefoldError, match="shape"):
        export_onnx_int8(f, np.zeros((4, 3, 8, 8), np.float32))


def test_npz_calibration(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, calib=np.random.default_rng(0).normal(size=(10, 1, 8, 8)).astype(np.float32))
    x = calibration(good, TINY_SHAPE)
    assert x.shape == (10, 1, 8, 8) and x.dtype == torch.float32 and x.is_contiguous()
    assert calibration(None, TINY_SHAPE).shape == (128, 1, 8, 8)
    np.savez(tmp_path / "shape.npz", x=np.zeros((10, 8, 8, 1), np.float32))  # NHWC by mistake
    np.savez(tmp_path / "dtype.npz", x=np.zeros((10, 1, 8, 8), np.uint8))
    np.savez(tmp_path / "many.npz", a=np.zeros(3), b=np.zeros(3))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for name, pat in [("shape", "shape"), ("dtype", "float32"), ("many", "name the calibration array"),
                      ("junk", "not a readable"), ("missing", "not found")]:
        with pytest.raises(EdgefoldError, match=pat):
            load_npz(tmp_path / f"{name}.npz", TINY_SHAPE)


def test_int8_onnx_checked_fused_and_as_written(exported):
    model, _, _, q = exported
    rep = check_fidelity(model, TINY_SHAPE, {"onnx-int8": q})
    assert list(rep) == ["torch", "onnx-int8", "onnx-int8-qdq"]
    fused, qdq = rep["onnx-int8"], rep["onnx-int8-qdq"]
    assert fused.runtime == "onnxruntime" and qdq.runtime == "onnxruntime, QDQ as written"
    assert fused.samples == qdq.samples == rep["torch"].samples
    assert qdq.agreement >= 95.0  # the file's own arithmetic: per-channel int8, no saturation


def _fid(fmt: str, agreement: float) -> FormatFidelity:
    return FormatFidelity(fmt, "onnxruntime", agreement, None, 0.1, 360, 0.0)


def test_saturation_note_only_when_fused_kernels_lose_a_point():
    def note(fused, qdq):
        return onnx_saturation_note({"onnx-int8": _fid("onnx-int8", fused),
                                     "onnx-int8-qdq": _fid("onnx-int8-qdq", qdq)})

    flag = note(88.06, 96.67)
    assert flag and "88.06" in flag and "96.67" in flag and "--onnx-reduce-range" in flag
    assert note(96.0, 96.9) is None and note(96.67, 96.67) is None and note(97.0, 95.0) is None
    assert onnx_saturation_note({"onnx-int8": _fid("onnx-int8", 80.0)}) is None  # nothing to compare with


def test_reduce_range_keeps_weights_within_seven_bits(exported):
    model, calib, f, q = exported

    def weights(blob):
        m = onnx.load_from_string(blob)
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
        return [inits[n.input[0]] for n in m.graph.node
                if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
                and inits[n.input[0]].dtype == np.int8 and inits[n.input[0]].ndim > 1]

    full, reduced = weights(q), weights(export_onnx_int8(f, calib, reduce_range=True))
    assert full and len(full) == len(reduced)
    assert max(np.abs(w).max() for w in full) == 127  # symmetric per channel: each channel's largest weight is 127
    assert max(np.abs(w).max() for w in reduced) <= 64
