"""One loader for the user's data (.npz with x[, y], .npy) and the rule for when the built-in digits apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from edgefold.compiler.userdata import load_arrays, num_outputs, resolve_data

from edgefold.core.errors import EdgefoldError

SHAPE = (1, 3, 8, 8)


def _x(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, 8, 8)).astype(np.float32)


def test_npz_with_labels_and_npy_both_load(tmp_path):
    np.savez(tmp_path / "d.npz", x=_x(), y=np.arange(6) % 12)
    np.save(tmp_path / "d.npy", _x(4).astype(np.float64))
    a = load_arrays(tmp_path / "d.npz", SHAPE, num_classes=12)
    b = load_arrays(tmp_path / "d.npy", SHAPE)
    assert a.x.shape == (6, 3, 8, 8) and a.x.dtype == torch.float32 and a.y.tolist() == list(range(6))
    assert b.x.shape == (4, 3, 8, 8) and b.x.dtype == torch.float32 and b.y is None
    assert not a.builtin


@pytest.mark.parametrize("make, match", [
    (lambda p: p.with_suffix(".txt").write_text("1 2 3"), "expected a .npz"),
    (lambda p: None, "file not found"),
    (lambda p: p.write_bytes(b"not a zip"), "not a readable .npz"),
    (lambda p: np.savez(p, inputs=_x()), "no array 'x'"),
    (lambda p: np.savez(p, x=(_x() * 100).astype(np.uint8)), "must be floating point"),
    (lambda p: np.savez(p, x=_x()[:, :2]), "have shape 6,2,8,8; the model needs N,3,8,8"),
    (lambda p: np.savez(p, x=np.where(np.arange(6)[:, None, None, None] == 2, np.nan, _x())), "NaN"),
    (lambda p: np.savez(p, x=_x(), y=np.ones(6, np.float32)), "must be integers"),
    (lambda p: np.savez(p, x=_x(), y=np.arange(5)), "one per sample"),
    (lambda p: np.savez(p, x=_x(), y=np.arange(6) + 5), "go up to 10 but the model has 10 outputs"),
    (lambda p: np.savez(p, x=_x(), y=-np.arange(6)), "must be >= 0"),
    (lambda p: np.save(p.with_suffix(".npy"), np.array([object()])), "not a readable .npy"),
])
def test_bad_files_give_one_line_errors(tmp_path, make, match):
    p = tmp_path / "bad.npz"
    made = make(p)
    target = p
    for suffix in (".txt", ".npy"):
        if p.with_suffix(suffix).exists():
            target = p.with_suffix(suffix)
    del made
    with pytest.raises(EdgefoldError, match=match) as e:
        load_arrays(target, SHAPE, num_classes=10)
    assert "\n" not in str(e.value)


def test_eval_data_needs_labels(tmp_path):
    np.savez(tmp_path / "x.npz", x=_x())
    with pytest.raises(EdgefoldError, match="needs labels"):
        resolve_data(None, str(tmp_path / "x.npz"), SHAPE, 10, zoo_model=False)


def test_user_model_with_12_outputs_is_never_scored_on_digits(tmp_path):
    shape = (1, 3, 32, 32)
    # no data at all: nothing built in for a user model
    plan = resolve_data(None, None, shape, 12, zoo_model=False)
    assert plan.inputs is None and plan.eval is None
    with pytest.raises(EdgefoldError, match="needs input data"):
        plan.require_inputs("int8 calibration")
    # asked for the digits: their images calibrate, but their labels are not the model's classes
    plan = resolve_data("digits", None, shape, 12, zoo_model=False)
    assert plan.inputs is not None and plan.inputs.builtin and plan.eval is None
    assert any("12 outputs" in n for n in plan.notes)
    # a zoo model (10 digit classes) gets the digits for both
    plan = resolve_data(None, None, shape, 10, zoo_model=True)
    assert plan.inputs.source == "digits train" and plan.eval.source == "digits test"
    # the user's own labelled data scores the user's model
    x = np.random.default_rng(1).standard_normal((5, 3, 32, 32)).astype(np.float32)
    np.savez(tmp_path / "ev.npz", x=x, y=np.array([0, 11, 3, 4, 5]))
    plan = resolve_data(None, str(tmp_path / "ev.npz"), shape, 12, zoo_model=False)
    assert plan.eval is not None and plan.eval.y.max() == 11 and not plan.eval.builtin


def test_num_outputs():
    assert num_outputs(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 12)), SHAPE) == 12
    assert num_outputs(torch.nn.Conv2d(3, 4, 1), SHAPE) is None
