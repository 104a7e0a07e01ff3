"""`edgefold compress` end to end: outputs, reloadability, and one-line errors that write nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from edgefold.compiler import data, zoo
from edgefold.compiler.checkpoint import load_file, load_model

KEYS = {"method", "ratio", "repair", "params_before", "params_after", "macs_before", "macs_after", "seconds",
        "accuracy_before", "accuracy_after", "groups", "model"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 cores shared with other jobs: 1 intra-op thread is much faster here
    yield
    torch.set_num_threads(n)


def test_compress_resnet8_end_to_end(cli, trained, tmp_path):
    out = tmp_path / "run"
    rc, stdout, err = cli("compress", "--model", "resnet8", "--weights", trained("resnet8"), "--method", "fold",
                          "--ratio", "0.5", "--repair", "ar", "--out", out)
    assert rc == 0, err
    assert "parameters" in stdout and "accuracy" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["compress.json", "model.pt"]
    rep = json.loads((out / "compress.json").read_text())
    assert KEYS <= rep.keys()
    assert (rep["method"], rep["ratio"], rep["repair"]) == ("fold", 0.5, "ar")
    assert rep["params_after"] < rep["params_before"] and rep["macs_after"] < rep["macs_before"]
    assert rep["accuracy_before"] > 80 and rep["model"]["name"] == "resnet8"
    assert load_file(out / "model.pt")["format"] == "edgefold-model/1"  # plain data: weights_only load works
    lm = load_model(out / "model.pt")
    assert sum(p.numel() for p in lm.model.parameters()) == rep["params_after"]
    assert data.accuracy(lm.model, data.load(lm.spec.input_shape, "test")) == pytest.approx(rep["accuracy_after"])
    assert lm.meta["compress"]["method"] == "fold" and lm.spec.name == "resnet8"


def test_repair_with_user_calibration_and_builtin_digits(cli, tmp_path):
    x = data.calibration_batch(zoo.input_shape("dscnn"), 16).numpy()
    np.savez(tmp_path / "calib.npz", x=x)
    rc, _, err = cli("compress", "--model", "dscnn", "--method", "mag2", "--ratio", "0.25", "--repair", "repair",
                     "--calib", tmp_path / "calib.npz", "--out", tmp_path / "a")
    assert rc == 0, err
    rep = json.loads((tmp_path / "a" / "compress.json").read_text())
    assert rep["calibration"].endswith("calib.npz") and rep["accuracy_after"] is not None
    rc, _, err = cli("compress", "--model", "dscnn", "--ratio", "0.25", "--repair", "repair", "--out", tmp_path / "b")
    assert rc == 0, err
    assert json.loads((tmp_path / "b" / "compress.json").read_text())["calibration"].startswith("digits")


FACTORY = """
import torch.nn as nn

def build():
    return nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
"""


def test_factory_model_without_digits_output(cli, tmp_path, monkeypatch):
    (tmp_path / "efnet_user.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    base = ["compress", "--factory", "efnet_user:build", "--input-shape", "1,2,12,12", "--method", "fold"]
    rc, _, err = cli(*base, "--repair", "dir", "--out", tmp_path / "o")
    assert rc == 0, err
    rep = json.loads((tmp_path / "o" / "compress.json").read_text())
    assert rep["accuracy_before"] is None and rep["accuracy_after"] is None  # 3 outputs: not a digits model
    lm = load_model(tmp_path / "o" / "model.pt")
    assert lm.spec.factory == "efnet_user:build" and lm.model[0].out_channels == 4
    # REPAIR needs data, and digits don't apply to this model: clear error, nothing written
    rc, _, err = cli(*base, "--repair", "repair", "--out", tmp_path / "p")
    assert rc != 0 and "--data" in err and not (tmp_path / "p").exists()


def test_help_explains_every_option(cli):
    rc, out, _ = cli("compress", "--help")
    assert rc == 0
    for opt in ("--model", "--factory", "--weights", "--input-shape", "--method", "--ratio", "--repair", "--calib",
                "--seed", "--out", "fold", "mag1", "mag2", "ar", "dir", "compress.json", "model.pt"):
        assert opt in out


def _bad_files(tmp_path):
    (tmp_path / "corrupt.pt").write_bytes(b"\x80\x02garbage" * 10)
    torch.save(zoo.build("resnet8"), tmp_path / "pickled.pt")
    np.savez(tmp_path / "wrong_shape.npz", x=np.zeros((4, 1, 32, 32), np.float32))
    np.savez(tmp_path / "int.npz", x=np.zeros((4, 3, 32, 32), np.int64))
    np.savez(tmp_path / "no_x.npz", y=np.zeros(3))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")


M = ["--model", "resnet8"]
BAD = {
    "ratio_one": (M + ["--ratio", "1"], "ratio"),
    "ratio_negative": (M + ["--ratio", "-0.1"], "ratio"),
    "ratio_nan": (M + ["--ratio", "nan"], "ratio"),
    "ratio_text": (M + ["--ratio", "half"], "ratio"),
    "unknown_method": (M + ["--method", "prune"], "method"),
    "unknown_repair": (M + ["--repair", "magic"], "repair"),
    "unknown_model": (["--model", "resnet9000"], "unknown model"),
    "no_model": ([], "no model given"),
    "missing_checkpoint": (M + ["--weights", "{tmp}/nope.pt"], "not found"),
    "corrupt_checkpoint": (M + ["--weights", "{tmp}/corrupt.pt"], "not a readable torch file"),
    "pickled_checkpoint": (M + ["--weights", "{tmp}/pickled.pt"], "pickled code"),
    "wrong_input_shape": (M + ["--input-shape", "1,1,49,10"], "does not fit"),
    "malformed_input_shape": (M + ["--input-shape", "1,3,32"], "input-shape"),
    "factory_not_importable": (["--factory", "no_such_pkg.nets:build", "--input-shape", "1,3,32,32"],
                               "cannot import"),
    "calib_wrong_shape": (M + ["--repair", "repair", "--calib", "{tmp}/wrong_shape.npz"], "shape"),
    "calib_int": (M + ["--repair", "repair", "--calib", "{tmp}/int.npz"], "floating"),
    "calib_no_x": (M + ["--repair", "repair", "--calib", "{tmp}/no_x.npz"], "no array 'x'"),
    "calib_corrupt": (M + ["--repair", "repair", "--calib", "{tmp}/bad.npz"], "not a readable"),
    "calib_missing": (M + ["--repair", "repair", "--calib", "{tmp}/none.npz"], "not found"),
}


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory):
    """An output folder from an earlier successful run, which failing runs must leave alone."""
    from edgefold.cli import main

    d = tmp_path_factory.mktemp("earlier")
    assert main(["compress", "--model", "dscnn", "--ratio", "0.5", "--repair", "none", "--out", str(d / "out")]) == 0
    return d / "out"


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_error_nothing_written(cli, tmp_path, case, earlier_run):
    _bad_files(tmp_path)
    args, match = BAD[case]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    before = {p.name: p.read_bytes() for p in earlier_run.iterdir()}
    for out in (tmp_path / "new_out", earlier_run):
        rc, stdout, err = cli("compress", *args, "--out", out)
        assert rc != 0
        assert "Traceback" not in err + stdout
        assert len(err.strip().splitlines()) == 1, err
        assert match in err, err
    assert not (tmp_path / "new_out").exists()
    assert {p.name: p.read_bytes() for p in earlier_run.iterdir()} == before  # no stray temp or staged files


def test_compressed_model_can_be_compressed_again(cli, tmp_path):
    assert cli("compress", "--model", "dscnn", "--ratio", "0.5", "--repair", "none", "--out", tmp_path / "a")[0] == 0
    rc, _, err = cli("compress", "--weights", tmp_path / "a" / "model.pt", "--method", "mag1", "--ratio", "0.5",
                     "--repair", "dir", "--out", tmp_path / "b")
    assert rc == 0, err
    a = json.loads((tmp_path / "a" / "compress.json").read_text())
    b = json.loads((tmp_path / "b" / "compress.json").read_text())
    assert b["params_before"] == a["params_after"] and b["params_after"] < a["params_after"]
    lm = load_model(tmp_path / "b" / "model.pt")  # plan is relative to the original dscnn, so it rebuilds
    assert sum(p.numel() for p in lm.model.parameters()) == b["params_after"]
