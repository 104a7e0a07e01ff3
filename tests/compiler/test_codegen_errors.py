"""Codegen refuses what the runtime cannot run, naming the op, as a one-line CLI error."""

from __future__ import annotations

import pytest
import tflite
from _ef_tflite_builder import Op, T, build, fc_model, unary_model
from edgefold.compiler.codegen import SUPPORTED_OPS, UnsupportedOp, generate

from edgefold.core.errors import EdgefoldError


def test_unsupported_op_is_named(tmp_path) -> None:
    # the op, its layer (this hand-built model's tensor name stands in for it) and its output tensor, on one line
    with pytest.raises(UnsupportedOp, match=r"^unsupported op: ELU \(layer 't1', tensor t1\): the edgefold runtime "
                                            r"implements [^\n]*$"):
        generate(unary_model(tflite.BuiltinOperator.ELU), tmp_path)
    assert not (tmp_path / "model.c").exists()


def test_op_version_too_new(tmp_path) -> None:
    v = SUPPORTED_OPS["FULLY_CONNECTED"] + 1
    tensors = [T((1, 4), scale=[0.1]), T((2, 4), scale=[0.1], data=__import__("numpy").ones((2, 4), "int8")),
               T((1, 2), scale=[0.1])]
    blob = build(tensors, [Op(tflite.BuiltinOperator.FULLY_CONNECTED, [0, 1, -1], [2], True, version=v)], [0], [2])
    with pytest.raises(UnsupportedOp, match=rf"FULLY_CONNECTED version {v}"):
        generate(blob, tmp_path)


def test_float_io_rejected(tmp_path) -> None:
    tensors = [T((1, 4), "float32"), T((1, 4), "float32")]
    blob = build(tensors, [Op(tflite.BuiltinOperator.RSQRT, [0], [1])], [0], [1])
    with pytest.raises(EdgefoldError, match="int8 in/out"):
        generate(blob, tmp_path)


def test_garbage_file(tmp_path) -> None:
    with pytest.raises(EdgefoldError, match="not a valid .tflite"):
        generate(b"\x00" * 64, tmp_path)


def test_cli_unsupported_op_one_line(cli, tmp_path) -> None:
    src = tmp_path / "export"
    src.mkdir()
    (src / "model_int8.tflite").write_bytes(unary_model(tflite.BuiltinOperator.ELU))
    rc, out, err = cli("codegen", "--from", src, "--out", tmp_path / "c")
    assert rc != 0
    assert err.strip().count("\n") == 0 and "ELU" in err and "tensor t1" in err and "Traceback" not in err


def test_cli_writes_model(cli, tmp_path) -> None:
    src = tmp_path / "export"
    src.mkdir()
    (src / "model_int8.tflite").write_bytes(fc_model())
    rc, out, err = cli("codegen", "--from", src, "--out", tmp_path / "c")
    assert rc == 0, err
    h = (tmp_path / "c" / "model.h").read_text()
    arena = int(next(line.split()[2] for line in h.splitlines() if line.startswith("#define EF_ARENA_BYTES")))
    assert f"{arena:,}" in out and "arena" in out
    for name in ("EF_INPUT_BYTES 8", "EF_OUTPUT_BYTES 4", "EF_MODEL_MACS 32UL", "EF_INPUT_ZERO_POINT 3",
                 "EF_OUTPUT_ZERO_POINT -5", "int ef_model_run(const int8_t *input, int8_t *output);"):
        assert name in h
