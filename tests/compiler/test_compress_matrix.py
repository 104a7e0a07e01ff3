"""Every reference zoo model × {fold, mag1, mag2} × {none, repair, ar, dir} × ratio {0.1, 0.5}: it runs, forwards,
shrinks as expected; ratio 0 keeps the function; a saved compressed model reloads to identical outputs.

Untrained models with batch-2 inputs and a 2-step deep inversion keep this fast (resnet18 and vgg11_bn are big).
"""

from __future__ import annotations

import functools

import pytest
import torch
from edgefold.compiler import data, zoo
from edgefold.compiler.checkpoint import ModelSpec, load_model, save_model
from edgefold.compiler.compress import compress, keep_count
from edgefold.compiler.compress import repair as R

METHODS = ["fold", "mag1", "mag2"]
REPAIRS = ["none", "repair", "ar", "dir"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Measured: on 2 cores shared with other jobs, 2 intra-op threads were up to ~15x slower than 1.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _fast_dir(monkeypatch):
    monkeypatch.setattr(R, "DEFAULT_DIR", R.DirConfig(batch=2, steps=2))


@functools.cache
def _setup(name: str):
    model = zoo.build(name).eval()
    shape = zoo.input_shape(name)
    x = data.load(shape, "test").x[:2].contiguous()  # real digits, batch 2
    calib = data.calibration_batch(shape, 8)
    return model, x, calib


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("ratio", [0.1, 0.5])
@pytest.mark.parametrize("repair", REPAIRS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", zoo.REFERENCE)
def test_matrix(name, method, repair, ratio):
    model, x, calib = _setup(name)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    c, rep = compress(model, x, method, ratio, repair, calib_data=calib)
    assert all(torch.equal(ref[k], v) for k, v in model.state_dict().items())  # the input model is untouched
    with torch.no_grad():
        y = c(x)
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    assert not c.training
    assert rep.groups and all(g.k == keep_count(g.n, ratio) for g in rep.groups)
    assert rep.params_after == _params(c) and rep.params_before == _params(model)
    # every layer loses about `ratio` of its inputs and/or outputs: at least ratio/2 of the parameters go
    assert rep.params_after <= (1 - ratio / 2) * rep.params_before
    assert rep.macs_after <= (1 - ratio / 2) * rep.macs_before
    if ratio == 0.5:
        assert rep.params_after <= 0.5 * rep.params_before


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", zoo.REFERENCE)
def test_ratio_zero_keeps_the_function(name, method):
    model, x, _ = _setup(name)
    for repair in ("none", "ar"):  # ar corrects merged channels only: none at ratio 0
        c, rep = compress(model, x, method, 0.0, repair)
        assert rep.params_after == rep.params_before
        with torch.no_grad():
            assert torch.allclose(c(x), model(x), atol=1e-5), repair


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", zoo.REFERENCE)
def test_saved_compressed_model_reloads(name, method, tmp_path):
    model, x, calib = _setup(name)
    c, rep = compress(model, x, method, 0.5, "repair", calib_data=calib)
    path = save_model(tmp_path / "c.pt", c, ModelSpec(name=name, input_shape=zoo.input_shape(name)),
                      {"compress": {"method": method, "params_after": rep.params_after}})
    back = load_model(path)  # weights_only=True: no code is unpickled
    assert back.plan and back.meta["compress"]["method"] == method
    assert _params(back.model) == rep.params_after
    with torch.no_grad():
        assert torch.equal(back.model(x), c(x))
