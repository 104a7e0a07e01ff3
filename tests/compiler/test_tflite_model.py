"""The one .tflite reader: what it reads from a known graph, and that a truncated or mutated flatbuffer is one line
of EdgefoldError (never struct.error, IndexError, a numpy error or a hang)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tflite
from _ef_tflite_builder import Op, T, build, fc_model
from edgefold.compiler.check.coverage import check_coverage
from edgefold.compiler.tflite_model import read_tflite, read_tflite_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefold.core.errors import EdgefoldError

TINY = Path(__file__).parent.parent / "targets" / "data" / "tiny_int8.tflite"


def conv_model() -> bytes:
    """int8 CONV_2D 3x3 (1x6x6x2 -> 1x4x4x3) then DEPTHWISE_CONV_2D 3x3 (-> 1x2x2x3), per-channel weights."""
    r = np.random.default_rng(1)
    w1 = r.integers(-127, 128, (3, 3, 3, 2)).astype(np.int8)
    w2 = r.integers(-127, 128, (1, 3, 3, 3)).astype(np.int8)
    tensors = [T((1, 6, 6, 2), scale=[0.1]), T((3, 3, 3, 2), scale=[0.01] * 3, data=w1),
               T((1, 4, 4, 3), scale=[0.2]), T((1, 3, 3, 3), scale=[0.01] * 3, qdim=3, data=w2),
               T((1, 2, 2, 3), scale=[0.3], zp=[-4])]
    ops = [Op(tflite.BuiltinOperator.CONV_2D, [0, 1, -1], [2]),
           Op(tflite.BuiltinOperator.DEPTHWISE_CONV_2D, [2, 3, -1], [4], version=2)]
    return build(tensors, ops, [0], [4])


def test_reads_tensors_ops_constants_macs_and_io():
    m = read_tflite(fc_model(fin=8, fout=4))
    assert [op.name for op in m.ops] == ["FULLY_CONNECTED"] and m.op_versions() == {"FULLY_CONNECTED": 1}
    assert m.constant_bytes == 4 * 8 + 4 * 4  # int8 weights + int32 bias
    assert m.macs == 4 * 8
    w = m.tensors[1]
    assert w.is_const and w.data.shape == (4, 8) and w.data.dtype == np.int8 and w.type_name == "INT8"
    assert m.io() == {"input": {"name": "t0", "dtype": "INT8", "shape": [1, 8], "scale": [pytest.approx(0.05)],
                                "zero_point": [3]},
                      "output": {"name": "t3", "dtype": "INT8", "shape": [1, 4], "scale": [pytest.approx(0.1)],
                                 "zero_point": [-5]}}
    assert len(m.model_id) == 16 and m.subgraphs == 1

    c = read_tflite(conv_model())
    assert c.macs == 4 * 4 * 3 * (3 * 3 * 2) + 2 * 2 * 3 * (3 * 3)
    assert c.op_versions() == {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 2}
    assert c.ops[0].inputs == [0, 1, -1] and [t.index for t in c.op_inputs(c.ops[0])] == [0, 1]
    assert list(c.tensors[3].scales) == pytest.approx([0.01] * 3) and c.tensors[3].quant_dim == 3


def test_codegen_and_reader_agree_on_macs(tmp_path):
    from edgefold.compiler.codegen import generate

    blob = TINY.read_bytes()
    manifest = generate(blob, tmp_path)
    assert manifest.macs == read_tflite(blob).macs > 0
    assert f"#define EF_MODEL_MACS {manifest.macs}UL" in (tmp_path / "model.h").read_text()


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(EdgefoldError, match="cannot read"):
        read_tflite_file(tmp_path / "none.tflite")
    (tmp_path / "cut.tflite").write_bytes(TINY.read_bytes()[:300])
    with pytest.raises(EdgefoldError, match=r"cut\.tflite: not a valid \.tflite model") as e:
        read_tflite_file(tmp_path / "cut.tflite")
    assert "\n" not in str(e.value)


def _read_or_edgefold_error(blob: bytes) -> None:
    try:
        m = read_tflite(blob)
    except EdgefoldError as e:
        assert "\n" not in str(e) and str(e).startswith("not a valid .tflite model")
        return
    # whatever was read is consistent: every index resolves, figures are computable
    for op in m.ops:
        m.op_inputs(op), m.op_outputs(op)
    m.op_versions(), m.layout_flags(), m.io()
    assert m.macs >= 0 or any(d < 0 for t in m.tensors for d in t.shape)
    try:
        check_coverage(m, "tflm")
    except EdgefoldError:
        pass


SEEDS = {"fc": fc_model(), "conv": conv_model(), "tiny": TINY.read_bytes()}
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("name", list(SEEDS))
def test_every_truncation_is_an_edgefold_error(name):
    blob = SEEDS[name]
    step = max(1, len(blob) // 400)
    for n in [*range(0, len(blob), step), len(blob) - 1]:
        _read_or_edgefold_error(blob[:n])


@pytest.mark.parametrize("name", list(SEEDS))
@FUZZ
@given(data=st.data())
def test_mutated_flatbuffer_is_an_edgefold_error(name, data):
    blob = bytearray(SEEDS[name])
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), min_size=1,
                               max_size=8))
    for pos, value in edits:
        blob[pos] = value
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(blob))))
    _read_or_edgefold_error(bytes(blob if cut is None else blob[:cut]))


@FUZZ
@given(st.binary(max_size=256))
def test_garbage_is_an_edgefold_error(blob):
    _read_or_edgefold_error(blob)
