"""BatchNorm repair after compression: REPAIR, data-free AR, deep-inversion DIR, LayerNorm models."""

from __future__ import annotations

import copy

import pytest
import torch
from edgefold.compiler import data, zoo
from edgefold.compiler.checkpoint import load_model
from edgefold.compiler.compress import GroupRecord, compress
from edgefold.compiler.compress import repair as R
from torch import nn

from edgefold.core.errors import EdgefoldError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Measured: on 2 cores shared with other jobs, 2 intra-op threads made deep inversion ~15x slower than 1.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def resnet8(trained):
    lm = load_model(trained("resnet8"))
    shape = lm.spec.input_shape
    return lm.model, shape, data.load(shape, "test"), data.calibration_batch(shape)


def _bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k}


@pytest.mark.parametrize("method", ["fold", "mag2"])
def test_repair_restores_accuracy(resnet8, method):
    model, shape, test, calib = resnet8
    ex = torch.zeros(shape)
    plain, _ = compress(model, ex, method, 0.5, "none")
    repaired, _ = compress(model, ex, method, 0.5, "repair", calib_data=calib)
    a_none, a_rep = data.accuracy(plain, test), data.accuracy(repaired, test)
    assert a_rep >= a_none + 5.0, (a_none, a_rep)
    # only statistics changed: the weights are those of the un-repaired model
    sd_p, sd_r = plain.state_dict(), repaired.state_dict()
    assert all(torch.equal(sd_p[k], sd_r[k]) for k in sd_p if "running" not in k and "num_batches" not in k)


def test_reestimate_is_the_exact_dataset_statistic():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3, bias=False), nn.BatchNorm2d(5)
    model = nn.Sequential(conv, bn, nn.ReLU()).eval()
    x = torch.randn(300, 3, 6, 6)
    assert R.reestimate_bn(model, x, batch_size=128) == 1  # 3 equal chunks of 100
    with torch.no_grad():
        y = conv(x)
    assert torch.allclose(bn.running_mean, y.mean((0, 2, 3)), atol=1e-5)
    assert not model.training and bn.momentum == 0.1  # modes and momentum restored


def test_ar_scales_running_var_by_the_formula():
    bn = nn.BatchNorm1d(3)
    bn.running_var.copy_(torch.tensor([2.0, 3.0, 4.0]))
    bn.running_mean.copy_(torch.tensor([1.0, -1.0, 0.5]))
    model = nn.Sequential(nn.Linear(4, 3), bn)
    g = GroupRecord("0", 6, 3, members=[[0, 1, 2], [3], [4, 5]], rho=[0.5, 1.0, -0.2], norm_layers=["1"],
                    proj_error=0.0)
    R.apply_repair("ar", model, model, [g], None, torch.zeros(1, 4))
    # (1 + (n-1)·rho)/n: 2/3 for n=3, rho=.5; 1 for a singleton; rho<0 clipped to 0 -> 1/2
    assert torch.allclose(bn.running_var, torch.tensor([2.0 * 2 / 3, 3.0, 4.0 * 0.5]))
    assert torch.equal(bn.running_mean, torch.tensor([1.0, -1.0, 0.5]))


def test_ar_on_folded_resnet_matches_report(resnet8):
    model, shape, _, _ = resnet8
    ex = torch.zeros(shape)
    plain, report = compress(model, ex, "fold", 0.5, "none")
    ar, _ = compress(model, ex, "fold", 0.5, "ar")
    before, after = _bn_state(plain), _bn_state(ar)
    checked = 0
    for g in report.groups:
        f = torch.tensor([R.variance_factor(len(m), r) for m, r in zip(g.members, g.rho, strict=True)])
        for name in g.norm_layers:
            key = f"{name}.running_var"
            assert torch.allclose(after[key], before[key] * f, rtol=1e-6)
            assert torch.equal(after[f"{name}.running_mean"], before[f"{name}.running_mean"])
            checked += int((f < 1).sum())
    assert checked > 0  # some clusters really were merged and corrected


def test_ar_is_identity_for_magnitude_pruning(resnet8):
    model, shape, _, _ = resnet8
    ex = torch.zeros(shape)
    a, _ = compress(model, ex, "mag1", 0.5, "none")
    b, _ = compress(model, ex, "mag1", 0.5, "ar")
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_dir_is_deterministic_and_data_free(resnet8, monkeypatch):
    model, shape, _, _ = resnet8
    monkeypatch.setattr(R, "DEFAULT_DIR", R.DirConfig(batch=8, steps=10))
    ex = torch.zeros(shape)
    plain, _ = compress(model, ex, "fold", 0.5, "none")
    a, _ = compress(model, ex, "fold", 0.5, "dir")
    b, _ = compress(model, ex, "fold", 0.5, "dir")
    with torch.no_grad():  # callers often compress under no_grad: the inversion still needs autograd
        c, _ = compress(model, ex, "fold", 0.5, "dir")
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) and torch.equal(sa[k], sc[k]) for k in sa)
    assert not torch.equal(_bn_state(plain)["stem.1.running_var"], _bn_state(a)["stem.1.running_var"])
    x0 = R.deep_inversion(model, ex, R.DirConfig(batch=4, steps=2, seed=0))
    x1 = R.deep_inversion(model, ex, R.DirConfig(batch=4, steps=2, seed=1))
    assert x0.shape == (4, *shape[1:]) and not torch.equal(x0, x1)


def test_deep_inversion_batch_carries_the_statistics(resnet8):
    """Re-estimating the *uncompressed* model's BN on the synthetic batch keeps most of its accuracy; on the
    random starting point (0 steps) it does not."""
    model, shape, test, _ = resnet8
    accs = {}
    for steps in (0, 60):
        x = R.deep_inversion(model, torch.zeros(shape), R.DirConfig(batch=16, steps=steps))
        m = copy.deepcopy(model)
        R.reestimate_bn(m, x)
        accs[steps] = data.accuracy(m, test)
    assert accs[60] >= accs[0] + 12.0, accs  # measured: 18 -> 39 % (3-epoch resnet8, 1 thread)


def test_layernorm_model_repairs_are_identity():
    model = zoo.build("vit_tiny").eval()
    ex = torch.randn(2, 3, 32, 32)
    calib = torch.randn(8, 3, 32, 32)
    ref, report = compress(model, ex, "fold", 0.5, "none")
    assert any(g.norm_layers for g in report.groups)  # LayerNorms are in the folded residual-stream group
    for kind in ("repair", "ar", "dir"):
        m, _ = compress(model, ex, "fold", 0.5, kind, calib_data=calib)
        assert torch.equal(m(ex), ref(ex)), kind


def test_repair_errors():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(EdgefoldError, match="needs calibration data"):
        R.apply_repair("repair", m, m, [], None, torch.zeros(1, 3, 8, 8))
    with pytest.raises(EdgefoldError, match="unknown repair"):
        R.apply_repair("bogus", m, m, [], None, torch.zeros(1, 3, 8, 8))
    with pytest.raises(EdgefoldError, match="empty"):
        R.apply_repair("repair", m, m, [], torch.zeros(0, 3, 8, 8), torch.zeros(1, 3, 8, 8))
