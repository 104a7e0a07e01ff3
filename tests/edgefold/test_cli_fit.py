"""The user's data, budgets and replay through the CLI: a 12-class user model is never scored on digits, an
unmeetable budget is one line, --ratios replays exactly, deploy without --weights warns, train --factory --data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from edgefold.compiler.checkpoint import load_model

NET12 = """
import torch.nn as nn

def build():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 12))
"""
SHAPE = ["--input-shape", "1,3,16,16"]


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def net12(tmp_path, monkeypatch):
    (tmp_path / "efnet12.py").write_text(NET12)
    monkeypatch.syspath_prepend(str(tmp_path))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "own.npz", x=x, y=np.arange(40) % 12)
    np.save(tmp_path / "inputs.npy", x[:20])
    return ["--factory", "efnet12:build", *SHAPE]


def test_12_class_user_model_is_never_scored_on_digits(cli, tmp_path, net12):
    # asked to calibrate on the digits: their images are used, their labels are not this model's classes
    rc, out, err = cli("compress", *net12, "--data", "digits", "--repair", "repair", "--out", tmp_path / "a")
    assert rc == 0, err
    rep = json.loads((tmp_path / "a" / "compress.json").read_text())
    assert rep["accuracy_before"] is None and rep["accuracy_after"] is None and rep["accuracy_data"] is None
    assert any("12 outputs" in n for n in rep["notes"]) and rep["calibration"] == "digits train"
    # no data at all: nothing built in is substituted; REPAIR needs data -> one line, nothing written
    rc, _, err = cli("compress", *net12, "--repair", "repair", "--out", tmp_path / "b")
    assert rc != 0 and "needs input data" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()
    # its own labelled data (.npy inputs for calibration, .npz with y for accuracy): scored on its own classes
    rc, _, err = cli("compress", *net12, "--data", tmp_path / "inputs.npy", "--eval-data", tmp_path / "own.npz",
                     "--repair", "repair", "--out", tmp_path / "c")
    assert rc == 0, err
    rep = json.loads((tmp_path / "c" / "compress.json").read_text())
    assert rep["accuracy_before"] is not None and rep["accuracy_data"].startswith(str(tmp_path / "own.npz"))


def test_deploy_without_weights_warns_and_user_model_needs_data(cli, tmp_path, net12):
    rc, _, err = cli("deploy", "--target", "nano33ble-qemu", *net12, "--out", tmp_path / "d")
    assert rc != 0
    # a failed deploy prints its error alone (issue 11: one line); the random-weights warning follows a finished run
    assert "needs input data" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "compress").exists()


def test_bad_data_files_are_one_line(cli, tmp_path, net12):
    np.savez(tmp_path / "labels13.npz", x=np.zeros((4, 3, 16, 16), np.float32), y=np.array([0, 1, 2, 12]))
    for args, msg in ((["--eval-data", tmp_path / "labels13.npz"], "go up to 12 but the model has 12 outputs"),
                      (["--data", tmp_path / "nope.npz"], "file not found"),
                      (["--data", tmp_path / "own.npz", "--data-free"], "--data-free uses no input data"),
                      (["--fit", "--ratios", tmp_path / "r.json"], "cannot be combined"),
                      (["--recover-time", "5"], "pass --recover too"),
                      (["--max-flash", "100"], "pass --fit too")):
        rc, _, err = cli("compress", *net12, *args, "--out", tmp_path / "x")
        assert rc != 0 and msg in err, (args, err)
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_unmeetable_budget_and_exact_replay(cli, tmp_path):
    rc, _, err = cli("compress", "--model", "resnet8", "--fit", "--max-flash", "10", "--out", tmp_path / "a")
    assert rc != 0 and "smallest footprint reachable is Flash" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists()
    ratios = {"layers.0.conv1": 0.5, "layers.2.conv1": 0.75, "layers.1.shortcut.0": 0.25}
    (tmp_path / "r.json").write_text(json.dumps({"ratios": ratios}))
    rc, _, err = cli("compress", "--model", "resnet8", "--ratios", tmp_path / "r.json", "--repair", "none",
                     "--out", tmp_path / "b")
    assert rc == 0, err
    rep = json.loads((tmp_path / "b" / "compress.json").read_text())
    assert rep["ratios"] == ratios  # recorded as replayable ratios
    k = {g["name"]: g["k"] for g in rep["groups"]}
    assert (k["layers.0.conv1"], k["layers.2.conv1"], k["layers.1.shortcut.0"]) == (8, 16, 24)
    # the compress.json itself replays to the same model
    rc, _, err = cli("compress", "--model", "resnet8", "--ratios", tmp_path / "b" / "compress.json", "--repair",
                     "none", "--out", tmp_path / "c")
    assert rc == 0, err
    a, b = load_model(tmp_path / "b" / "model.pt").model, load_model(tmp_path / "c" / "model.pt").model
    assert all(torch.equal(v, b.state_dict()[n]) for n, v in a.state_dict().items())


def test_train_a_user_model_on_its_data(cli, tmp_path, net12):
    rc, out, err = cli("train", *net12, "--data", tmp_path / "own.npz", "--epochs", "1", "--out", tmp_path / "m.pt")
    assert rc == 0, err
    lm = load_model(tmp_path / "m.pt")
    assert lm.spec.factory == "efnet12:build" and lm.meta["classes"] == 12 and "own.npz" in out
    rc, _, err = cli("train", *net12, "--out", tmp_path / "n.pt")
    assert rc != 0 and "needs its data" in err
