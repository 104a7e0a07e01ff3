"""Recovery by distillation: improves a compressed tiny model on held-out digits, deterministically; data-free."""

from __future__ import annotations

import copy

import pytest
import torch
from edgefold.compiler import data
from edgefold.compiler.compress import compress
from edgefold.compiler.recover import RecoverConfig, recover, synthetic_inputs
from edgefold.compiler.train import TrainConfig, train
from torch import nn

from edgefold.core.errors import EdgefoldError

SHAPE = (1, 1, 8, 8)


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 24, 3, padding=1, bias=False), nn.BatchNorm2d(24), nn.ReLU(),
                         nn.Conv2d(24, 24, 3, padding=1, bias=False), nn.BatchNorm2d(24), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 10))


@pytest.fixture(scope="module")
def tiny_trained():
    m = _tiny()
    train(m, SHAPE, TrainConfig(epochs=6, lr=1e-2, seed=0))
    return m.eval()


def _compressed(teacher):
    calib = data.calibration_batch(SHAPE, 128)
    student, rep = compress(teacher, torch.zeros(SHAPE), "fold", 0.6, "repair", calib_data=calib)
    return student, rep


def test_recovery_improves_accuracy_and_is_deterministic(tiny_trained):
    trained = tiny_trained
    test = data.load(SHAPE, "test")
    x = data.load(SHAPE, "train").x
    base = data.accuracy(tiny_trained, test)
    runs = []
    for _ in range(2):
        student, rep = _compressed(tiny_trained)
        before = data.accuracy(student, test)
        report = recover(student, trained, x, RecoverConfig(epochs=4, seed=3), groups=rep.groups)
        runs.append((before, data.accuracy(student, test), report, student.state_dict()))
    (b0, a0, r0, s0), (b1, a1, r1, s1) = runs
    assert b0 == b1 and a0 == a1
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    assert r0.history == [{**h, "seconds": r0.history[i]["seconds"]} for i, h in enumerate(r1.history)]
    assert a0 > b0 + 2.0, (base, b0, a0)
    assert r0.best_epoch >= 1 and r0.selected_by == "held-out agreement"
    assert r0.history[r0.best_epoch]["heldout_agreement"] >= r0.history[0]["heldout_agreement"]


def test_recovery_time_budget_and_labels(tiny_trained):
    trained = tiny_trained
    student, _ = _compressed(tiny_trained)
    tr = data.load(SHAPE, "train")
    report = recover(student, trained, tr.x, RecoverConfig(epochs=50, time_budget_s=1e-3), labels=tr.y)
    assert report.stopped_by == "time budget" and report.epochs_run == 1
    assert report.selected_by == "held-out accuracy"


def test_data_free_recovery_on_deep_inversion_samples(tiny_trained):
    trained = tiny_trained
    test = data.load(SHAPE, "test")
    student, rep = _compressed(tiny_trained)
    before = data.accuracy(student, test)
    syn = synthetic_inputs(tiny_trained, torch.zeros(SHAPE), n=64, steps=40, batch=32, seed=0)
    assert syn.shape == (64, 1, 8, 8)
    assert torch.equal(syn, synthetic_inputs(tiny_trained, torch.zeros(SHAPE), n=64, steps=40, batch=32, seed=0))
    report = recover(student, trained, syn, RecoverConfig(epochs=4, seed=0))
    # the selection guarantees the held-out synthetic agreement only; real-digit accuracy may move a little either way:
    # the held-out split of 64 samples is 10 images, so one image decides the epoch (on one host's float kernels the
    # chosen epoch cost 3.1 pt of real accuracy, on another less than 3)
    assert report.best["heldout_agreement"] >= report.history[0]["heldout_agreement"]
    assert data.accuracy(student, test) >= before - 4.0


def test_feature_distillation_runs(tiny_trained):
    trained = tiny_trained
    student, rep = _compressed(tiny_trained)
    x = data.load(SHAPE, "train").x[:256]
    report = recover(student, trained, x, RecoverConfig(epochs=1, feature_weight=1.0), groups=rep.groups)
    assert report.epochs_run == 1 and report.history[1]["loss"] > 0


def test_bad_config_is_one_line():
    with pytest.raises(EdgefoldError, match="positive number"):
        RecoverConfig(time_budget_s=-1).validate()
    m = _tiny()
    with pytest.raises(EdgefoldError, match="at least 2"):
        recover(copy.deepcopy(m), m, torch.zeros(1, 1, 8, 8))


def test_recipe_pieces_are_deterministic_and_help(tiny_trained):
    """Hard labels + BatchNorm re-estimation + EMA: the same result twice for a seed, better than the start."""
    trained = tiny_trained
    tr, test = data.load(SHAPE, "train"), data.load(SHAPE, "test")
    cfg = RecoverConfig(epochs=4, seed=1, label_weight=0.5, bn_reestimate=True, ema=0.9, shift=1)
    runs = []
    for _ in range(2):
        student, _ = _compressed(trained)
        before = data.accuracy(student, test)
        report = recover(student, trained, tr.x, cfg, labels=tr.y)
        runs.append((before, data.accuracy(student, test), report, student.state_dict()))
    (b0, a0, r0, s0), (_, a1, r1, s1) = runs
    assert a0 == a1 and all(torch.equal(s0[k], s1[k]) for k in s0)
    assert [h["heldout_accuracy"] for h in r0.history] == [h["heldout_accuracy"] for h in r1.history]
    assert a0 > b0 + 2.0, (b0, a0)
    with pytest.raises(EdgefoldError, match="label weight"):
        RecoverConfig(label_weight=1.5).validate()


def test_bn_reestimate_matches_the_data():
    from edgefold.compiler.recover import reestimate_bn

    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)).eval()
    x = data.load(SHAPE, "train").x[:200]
    reestimate_bn(m, x, batch=50)
    with torch.no_grad():
        feats = m[0](x)
    assert torch.allclose(m[1].running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    assert m[1].momentum == 0.1 and not m.training
