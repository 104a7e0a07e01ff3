"""export_all: format parsing, the typed report, and that nothing is written when out_dir is None or on failure."""

from __future__ import annotations

import json

import pytest
import torch
from edgefold.compiler.export import FORMATS, ExportReport, export_all, parse_formats
from export_nets import TINY_SHAPE, TinyNet

from edgefold.core.errors import EdgefoldError


def test_parse_formats():
    assert parse_formats("tflite-int8, onnx") == ["onnx", "tflite-int8"]  # canonical order
    assert parse_formats("all") == list(FORMATS)
    assert parse_formats(["tflite"]) == ["tflite-int8"]
    for bad in ("onnx,pdf", "", " , "):
        with pytest.raises(EdgefoldError):
            parse_formats(bad)


def test_onnx_only_report_in_memory(tmp_path):
    torch.manual_seed(0)
    rep = export_all(TinyNet(), TINY_SHAPE, None, "onnx", label="tiny")
    assert isinstance(rep, ExportReport) and rep.out_dir is None
    assert rep.artifacts == {"model.onnx": "onnx"} and rep.sizes["model.onnx"] > 1000
    assert rep.fidelity["onnx"].agreement == 100.0 and rep.tflm_arena_bytes is None and rep.ops == {}
    d = json.loads(json.dumps(rep.to_dict(), default=lambda o: o.to_dict()))
    assert d["formats"]["onnx"]["agreement"] == 100.0 and d["model"] == "tiny"


def test_bad_arguments_write_nothing(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(EdgefoldError, match="unknown target backend"):
        export_all(TinyNet(), TINY_SHAPE, out, "onnx", target_backend="gpu")
    with pytest.raises(EdgefoldError, match="shape"):
        export_all(TinyNet(), TINY_SHAPE, out, "onnx", calib=torch.zeros(4, 1, 9, 9))
    assert not out.exists()
