"""Every model of the edge test zoo (small sizes) compresses with fold and mag1 at ratio 0.5 and every repair: the
output stays finite, parameters and MACs go down (recurrent models: nothing to compress, and the report says so), the
compressed model forwards another batch size, and the compress time is recorded.

The structural compression runs once per (model, method); each repair is then applied to a copy of its result, as
compress() does (test_compress_edge.py runs compress() itself with every repair on DenseNet).
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from edgefold.compiler import data, zoo, zoo_edge
from edgefold.compiler.compress import compress
from edgefold.compiler.compress import repair as R

RECURRENT = {"gru_kws", "lstm_kws"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@functools.cache
def _model(name: str):
    torch.manual_seed(0)
    model, shape = zoo.build(name), zoo.input_shape(name)
    calib = data.calibration_batch(shape, 16)
    model.train()  # BatchNorm statistics from digits, not the 0/1 defaults
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model(calib)
    return model.eval(), data.load(shape, "test").x[:4].contiguous(), calib


@functools.cache
def _compressed(name: str, method: str):
    model, x, _ = _model(name)
    return compress(model, x[:2], method, 0.5)


@pytest.mark.parametrize("repair", ["none", "repair", "ar", "dir"])
@pytest.mark.parametrize("method", ["fold", "mag1"])
@pytest.mark.parametrize("name", list(zoo_edge.EDGE))
def test_edge_zoo_compresses(name, method, repair, monkeypatch):
    monkeypatch.setattr(R, "DEFAULT_DIR", R.DirConfig(batch=4, steps=2))
    model, x, calib = _model(name)
    base, rep = _compressed(name, method)
    c = copy.deepcopy(base)
    R.apply_repair(repair, c, model, rep.groups, calib, x[:2], seed=0)
    with torch.no_grad():
        y = c.eval()(x)  # batch 4: not the example's batch 2
    assert y.shape == (4, 10) and torch.isfinite(y).all()
    assert rep.seconds > 0 and rep.timings["graph"] > 0 and rep.timings["prune"] >= 0
    if name in RECURRENT:
        assert not rep.groups and rep.params_after == rep.params_before
        assert any(n.startswith("nothing to compress") for n in rep.notices)
        return
    assert rep.params_after < rep.params_before and rep.macs_after < rep.macs_before
    # nn.MultiheadAttention's residual stream is left alone (skipped): only its MLPs shrink
    assert rep.params_after < (0.9 if name == "vit_mha" else 0.8) * rep.params_before
    assert rep.params_after == sum(p.numel() for p in c.parameters())


def test_edge_zoo_notices():
    """What is left alone, and why, for the families with structure compression cannot change everywhere."""
    assert any(n.startswith("channel shuffle:") for n in _compressed("shufflenetv2_05", "fold")[1].notices)
    assert not _compressed("vit_timm", "fold")[1].notices  # heads and attn_dim shrink together
    heads = [g for g in _compressed("vit_timm", "fold")[1].groups if g.kind == "heads"]
    assert heads and all(g.k < g.n for g in heads)
    _, rep = compress(_model("regnetx_200mf")[0], _model("regnetx_200mf")[1][:2], "fold", 0.5, "ar")
    assert any(n.startswith("ar does not apply") for n in rep.notices)
