"""compress() on the reference zoo: every method runs, shrinks the model as the ratio says, keeps the input model
intact, reports consistently; ratio 0 is the identity; bad arguments raise a one-line EdgefoldError."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from edgefold.compiler import zoo
from edgefold.compiler.checkpoint import ModelSpec, load_model, save_model, structural_plan
from edgefold.compiler.compress import METHODS, compress, keep_count
from torch import nn

from edgefold.core.errors import EdgefoldError


@pytest.fixture(autouse=True)
def _seed_one_thread():
    torch.manual_seed(0)
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: OpenMP on busy shared cores only slows the forwards down
    yield
    torch.set_num_threads(old)


def _model(name: str) -> tuple[nn.Module, torch.Tensor]:
    return zoo.build(name).eval(), torch.randn(zoo.input_shape(name))


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _channels(m: nn.Module) -> int:
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return m.num_features
    return m.normalized_shape[0]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", zoo.REFERENCE)
def test_compress_zoo_half(name, method):
    model, x = _model(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    xb = torch.randn(2, *x.shape[1:])
    with torch.no_grad():
        y0 = model(xb)
    out, rep = compress(model, x, method, 0.5)

    # the input model is untouched; the result is a different, eval-mode module
    assert out is not model and not out.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        y = out(xb)
    assert y.shape == y0.shape and torch.isfinite(y).all()

    # it really shrank: every group lost half its channels, so params and MACs drop to roughly a quarter
    assert rep.params_before == _n_params(model) and rep.params_after == _n_params(out)
    assert 0.15 < rep.params_after / rep.params_before < 0.45, rep.params_after / rep.params_before
    assert 0.15 < rep.macs_after / rep.macs_before < 0.45
    assert rep.groups and rep.seconds > 0
    modules = dict(out.named_modules())
    for g in rep.groups:
        assert g.k == keep_count(g.n, 0.5) and len(g.members) == g.k and len(g.rho) == g.k
        flat = [i for m in g.members for i in m]
        if method == "fold":
            assert sorted(flat) == list(range(g.n))  # every original channel merged into exactly one kept one
            assert g.fold_error is not None and g.proj_error == pytest.approx(g.fold_error)
        else:
            assert all(len(m) == 1 for m in g.members) and flat == sorted(flat)
            assert g.proj_error >= g.prune_error * (1 - 1e-6)  # L2 top-k is the optimal prune
        assert all(-1.0 <= r <= 1.0 for r in g.rho)
        assert all(r == 1.0 for r, m in zip(g.rho, g.members, strict=True) if len(m) == 1)
        for norm in g.norm_layers:
            assert _channels(modules[norm]) == g.k
    # the classifier output is never compressed
    assert y.shape[-1] == 10
    json.dumps(rep.to_dict())


@pytest.mark.parametrize("name", zoo.REFERENCE)
def test_ratio_zero_is_identity(name):
    model, x = _model(name)
    xb = torch.randn(3, *x.shape[1:])
    for method in ("fold", "mag2"):
        out, rep = compress(model, x, method, 0.0)
        assert rep.params_after == rep.params_before and all(g.k == g.n for g in rep.groups)
        with torch.no_grad():
            torch.testing.assert_close(out(xb), model(xb), rtol=0, atol=1e-6)


def test_vit_heads_update_attributes_and_reload(tmp_path):
    model, x = _model("vit_tiny")
    out, rep = compress(model, x, "fold", 0.5)
    heads = [g for g in rep.groups if g.kind == "heads"]
    assert len(heads) == 2 and all(g.n == 4 and g.k == 2 for g in heads)
    for blk in out.blocks:
        assert blk.attn.num_heads == 2 and blk.attn.head_dim == 16
        assert blk.attn.qkv.out_features == 3 * 2 * 16 and blk.attn.proj.in_features == 2 * 16
    assert blk.norm1.normalized_shape == (32,)  # residual stream 64 → 32
    plan = structural_plan(out, zoo.build("vit_tiny"))
    assert plan["blocks.0.attn"] == {"num_heads": 2}
    spec = ModelSpec(name="vit_tiny", input_shape=zoo.input_shape("vit_tiny"))
    back = load_model(save_model(tmp_path / "v.pt", out, spec), spec).model
    with torch.no_grad():
        assert torch.equal(back(x), out(x))


def test_ignored_layers_keep_their_channels():
    model, x = _model("resnet8")
    out, rep = compress(model, x, "fold", 0.5, ignored_layers=[model.stem[0]])
    assert out.stem[0].out_channels == 16 and out.layers[0].conv2.out_channels == 16  # coupled by the residual
    assert out.layers[0].conv1.out_channels == 8 and out.fc.in_features == 32
    assert all(g.name != "stem.0" for g in rep.groups)


class Inception(nn.Module):
    """Two branches concatenated along channels, then a 1×1 conv: concat index mapping."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 6, 1), nn.BatchNorm2d(6), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.mix = nn.Conv2d(10, 8, 1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = self.mix(torch.cat([self.a(x), self.b(x)], 1))
        return self.fc(y.mean((2, 3)))


@pytest.mark.parametrize("method", METHODS)
def test_concat_model(method):
    model = Inception().eval()
    x = torch.randn(1, 3, 8, 8)
    out, rep = compress(model, x, method, 0.5)
    assert (out.a[0].out_channels, out.b[0].out_channels, out.mix.in_channels, out.mix.out_channels) == (3, 2, 5, 4)
    with torch.no_grad():
        assert out(torch.randn(2, 3, 8, 8)).shape == (2, 3)


def test_deterministic_by_seed():
    model, x = _model("resnet8")
    a, ra = compress(model, x, "fold", 0.5, seed=3)
    b, rb = compress(model, x, "fold", 0.5, seed=3)
    assert [g.members for g in ra.groups] == [g.members for g in rb.groups]
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("kwargs", [
    {"method": "prune"}, {"method": "FOLD"}, {"ratio": 1.0}, {"ratio": -0.1}, {"ratio": float("nan")},
    {"ratio": "0.5"}, {"ratio": True}, {"repair": "bogus"},
])
def test_bad_arguments_raise_one_line_errors(kwargs):
    model, x = _model("resnet8")
    with pytest.raises(EdgefoldError) as e:
        compress(model, x, **kwargs)
    assert "\n" not in str(e.value)


def test_wrong_input_shape_and_foreign_ignored_layer():
    model, _ = _model("resnet8")
    with pytest.raises(EdgefoldError, match="does not run"):
        compress(model, torch.randn(1, 1, 49, 10))
    with pytest.raises(EdgefoldError, match="not a submodule"):
        compress(model, torch.randn(1, 3, 32, 32), ignored_layers=[copy.deepcopy(model.stem[0])])


def test_frozen_weights_under_no_grad_and_training_flag_kept():
    model, x = _model("resnet8")
    model.train()
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        out, rep = compress(model, x, "fold", 0.5)
    assert rep.params_after < rep.params_before / 2  # the graph is still found with frozen weights
    assert model.training and not out.training
    assert not any(p.requires_grad for p in out.parameters()) and not any(p.requires_grad for p in model.parameters())


class MHANet(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(6, 16)
        self.mha = nn.MultiheadAttention(16, 4, batch_first=True)
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 3)

    def forward(self, x):
        h = self.inp(x)
        h = h + self.mha(h, h, h)[0]
        return self.fc2(torch.relu(self.fc1(h))).mean(1)


def test_unsupported_layers_leave_their_group_alone():
    model = MHANet().eval()
    out, rep = compress(model, torch.randn(1, 5, 6), "fold", 0.5)
    assert rep.skipped_groups == ["inp"] and [(g.name, g.n, g.k) for g in rep.groups] == [("fc1", 32, 16)]
    assert out.inp.out_features == 16 and out.fc1.out_features == 16
    with torch.no_grad():
        assert out(torch.randn(2, 5, 6)).shape == (2, 3)


def test_kmeans_deterministic_and_close_to_sklearn():
    from edgefold.compiler.compress.fold import default_restarts, fold_error
    from edgefold.compiler.compress.kmeans import kmeans
    from sklearn.cluster import KMeans

    g = torch.Generator().manual_seed(0)
    centers = torch.randn(12, 300, generator=g) * 3
    x = centers[torch.randint(12, (96,), generator=g)] + torch.randn(96, 300, generator=g)  # blobs
    a, b = kmeans(x, 24, seed=1), kmeans(x, 24, seed=1)
    assert torch.equal(a.labels, b.labels) and a.inertia == b.inertia
    assert sorted(set(a.labels.tolist())) == list(range(24))
    assert fold_error(x, a.labels) ** 2 == pytest.approx(a.inertia, rel=1e-4)
    for k in (6, 12, 24, 48):
        # with the restarts compress() uses for a group of this size (both sides vary ~±3 % per seed with 10)
        ours = kmeans(x, k, seed=0, n_init=default_restarts(x.shape[0])).inertia
        sk = KMeans(k, n_init=10, random_state=0).fit(x.double().numpy()).inertia_
        assert ours <= 1.02 * sk, (k, ours / sk)
