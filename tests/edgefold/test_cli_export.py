"""`edgefold export` end to end: a compressed model from a `compress` folder, and every kind of bad input."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import onnx
import pytest
import torch
from edgefold.compiler import zoo
from edgefold.compiler.checkpoint import ModelSpec, save_model

NETS = textwrap.dedent('''
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, 2, 1)
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.act(self.conv(x)), 1), 1))

        def act(self, x):
            return torch.relu(x)

    class SinTiny(Tiny):
        def act(self, x):
            return torch.sin(x)  # no int8 kernel pattern: the TFLite stage fails after ONNX succeeded

    def tiny():
        torch.manual_seed(0)
        return Tiny()

    def sin_tiny():
        torch.manual_seed(0)
        return SinTiny()
''')


@pytest.fixture
def nets(tmp_path, monkeypatch):
    (tmp_path / "ef_export_cli_nets.py").write_text(NETS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "ef_export_cli_nets"


@pytest.fixture(scope="module")
def compressed_dir(tmp_path_factory):
    """What `edgefold compress` leaves: DIR/model.pt, an edgefold checkpoint of the folded model."""
    d = tmp_path_factory.mktemp("compressed")
    spec = ModelSpec(name="resnet8", input_shape=zoo.input_shape("resnet8"))
    model = zoo.build("resnet8").eval()
    try:
        from edgefold.compiler.compress import compress

        model, _ = compress(model, torch.zeros(spec.input_shape), "fold", 0.5, "none")
        (d / "folded").touch()
    except ImportError:
        pass  # compression stage not installed: export the uncompressed checkpoint
    save_model(d / "model.pt", model, spec, {"model": "resnet8", "input_shape": list(spec.input_shape)})
    return d


def _one_line(err: str) -> bool:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    return len(lines) == 1 and "Traceback" not in err


def test_export_from_compress_dir(cli, compressed_dir, tmp_path):
    out = tmp_path / "out"
    rc, stdout, err = cli("export", "--from", compressed_dir, "--out", out)
    assert rc == 0, err
    names = {p.name for p in out.iterdir()}
    assert names == {"model.onnx", "model_int8.onnx", "model_int8.tflite", "model_int8_tflite.h",
                     "model_int8_tflite.c", "check.json"}
    check = json.loads((out / "check.json").read_text())
    for fmt in ("onnx", "onnx-int8", "tflite-int8"):
        entry = check["formats"][fmt]
        assert {"agreement", "accuracy", "max_abs_error", "bytes"} <= set(entry)
        assert entry["bytes"] == (out / entry["file"]).stat().st_size
    assert check["formats"]["onnx"]["agreement"] == 100.0
    assert "tflm" in check["formats"]["tflite-int8"]  # the same .tflite, run on the TFLM host interpreter
    assert "qdq" in check["formats"]["onnx-int8"]  # the same .onnx, Q/DQ run as written (no fused int8 kernels)
    assert check["tflm_arena_bytes"] > 1000
    assert {"CONV_2D", "FULLY_CONNECTED"} <= set(check["ops"])
    assert check["coverage"]["backend"] == "tflm" and check["flags"] == []
    assert f"{(out / 'model_int8.tflite').stat().st_size}u;" in (out / "model_int8_tflite.c").read_text()
    assert "tflite-int8" in stdout and "TFLM arena" in stdout
    stem = torch.load(compressed_dir / "model.pt")["state_dict"]["stem.0.weight"]
    assert stem.shape[0] == (8 if (compressed_dir / "folded").exists() else 16)
    assert check["input_shape"] == [1, 3, 32, 32]
    io = check["tflite_io"]
    assert io["input"]["shape"] == [1, 32, 32, 3] and io["input"]["dtype"] == "INT8" and len(io["input"]["scale"]) == 1


def test_onnx_reduce_range(cli, nets, tmp_path):
    out = tmp_path / "o"
    rc, stdout, err = cli("export", "--factory", f"{nets}:tiny", "--input-shape", "1,1,8,8", "--format", "onnx-int8",
                          "--data", "digits", "--onnx-reduce-range", "--out", out)
    assert rc == 0, err
    m = onnx.load(out / "model_int8.onnx")
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    w = [inits[n.input[0]] for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
         and inits[n.input[0]].dtype == np.int8 and inits[n.input[0]].ndim > 1]
    assert w and max(np.abs(a).max() for a in w) <= 64
    entry = json.loads((out / "check.json").read_text())["formats"]["onnx-int8"]
    assert {"agreement", "qdq"} <= set(entry) and "ort qdq" in stdout


def test_factory_tflite_only_edgefold_backend(cli, nets, tmp_path):
    out = tmp_path / "o"
    rc, _, err = cli("export", "--factory", f"{nets}:tiny", "--input-shape", "1,1,8,8", "--format", "tflite-int8",
                     "--target-backend", "edgefold", "--no-check", "--out", out)
    assert rc != 0 and "needs input data" in err and _one_line(err)  # never calibrated on the digits unasked
    rc, _, err = cli("export", "--factory", f"{nets}:tiny", "--input-shape", "1,1,8,8", "--format", "tflite-int8",
                     "--target-backend", "edgefold", "--no-check", "--data", "digits", "--out", out)
    assert rc == 0, err
    check = json.loads((out / "check.json").read_text())
    assert check["coverage"]["backend"] == "edgefold" and check["coverage"]["status"] in ("covered", "unknown")
    assert not (out / "model.onnx").exists() and (out / "model_int8.tflite").exists()


def test_unknown_format(cli, tmp_path):
    rc, _, err = cli("export", "--model", "resnet8", "--format", "onnx,pdf", "--out", tmp_path / "x")
    assert rc == 2 and "unknown format 'pdf'" in err and _one_line(err)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("bad,pattern", [("shape", "shape"), ("dtype", "floating point"), ("key", "no array 'x'")])
def test_bad_calibration(cli, nets, tmp_path, bad, pattern):
    import numpy as np

    arr = np.zeros((4, 8, 8, 1), np.float32) if bad == "shape" else np.zeros((4, 1, 8, 8), np.int32)
    if bad == "key":
        np.savez(tmp_path / "c.npz", calib=np.zeros((4, 1, 8, 8), np.float32))
    else:
        np.savez(tmp_path / "c.npz", x=arr)
    out = tmp_path / "o"
    rc, _, err = cli("export", "--factory", f"{nets}:tiny", "--input-shape", "1,1,8,8", "--calib", tmp_path / "c.npz",
                     "--out", out)
    assert rc == 2 and pattern in err and _one_line(err)
    assert not out.exists()


def test_unwritable_output(cli, nets, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, _, err = cli("export", "--factory", f"{nets}:tiny", "--input-shape", "1,1,8,8", "--data", "digits",
                     "--out", blocker / "sub")
    assert rc == 2 and "cannot create output folder" in err and _one_line(err)


def test_failure_half_way_leaves_earlier_artifacts(cli, nets, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"OLD ONNX")
    (out / "check.json").write_text('{"old": true}')
    rc, _, err = cli("export", "--factory", f"{nets}:sin_tiny", "--input-shape", "1,1,8,8", "--data", "digits",
                     "--out", out)
    assert rc == 2 and "SIN" in err and _one_line(err)
    assert sorted(p.name for p in out.iterdir()) == ["check.json", "model.onnx"]  # no stage folder, no new file
    assert (out / "model.onnx").read_bytes() == b"OLD ONNX" and json.loads((out / "check.json").read_text()) == {
        "old": True}


def test_bad_from_dir(cli, compressed_dir, tmp_path):
    rc, _, err = cli("export", "--from", tmp_path, "--out", tmp_path / "o")
    assert rc == 2 and "no model.pt" in err and _one_line(err)
    rc, _, err = cli("export", "--from", compressed_dir, "--weights", compressed_dir / "model.pt", "--out", tmp_path)
    assert rc == 2 and "not both" in err
