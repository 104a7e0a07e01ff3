"""Duplicate-channel invariance: a model whose channels are exact duplicates folds back to the same function.

Each test builds a small random "base" model and a "wide" copy in which every hidden channel appears `mult` times
(producers copied, consumers' input slices divided by the multiplicity, so the wide model computes exactly the base
function). Folding the wide model must find the duplicates: k = number of distinct channels per group, each kept
channel merges exactly one duplicate family, and the outputs are unchanged (1e-5).
"""

from __future__ import annotations

import pytest
import torch
from edgefold.compiler.compress import compress
from edgefold.compiler.zoo import Attention, BasicBlock
from torch import nn


@pytest.fixture(autouse=True)
def _seed_one_thread():
    torch.manual_seed(0)
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: OpenMP on busy shared cores only slows the forwards down
    yield
    torch.set_num_threads(old)


def randomize(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters (the defaults would hide merge mistakes)."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=g)
            m.running_mean = torch.randn(m.num_features, generator=g)
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5
    return model.eval()


def widen(base: nn.Module, wide: nn.Module, mult: int) -> nn.Module:
    """Copy base into wide, where every widened dim is the base dim repeated `mult` times (channel c ↦ c mod C).

    A weight's input dim (dim 1 of conv/linear weights) that was widened is divided by mult: the duplicates'
    contributions then sum to the original one.
    """
    bs, ws = base.state_dict(), wide.state_dict()
    out = {}
    for key, b in bs.items():
        w = ws[key]
        if b.dim() == 0:
            out[key] = b.clone()
            continue
        reps = []
        for db, dw in zip(b.shape, w.shape, strict=True):
            assert dw in (db, mult * db), (key, b.shape, w.shape)
            reps.append(dw // db)
        t = b.repeat(*reps)
        if key.endswith("weight") and b.dim() >= 2 and reps[1] == mult:
            t = t / mult
        out[key] = t
    wide.load_state_dict(out)
    return wide.eval()


def check_fold(base: nn.Module, wide: nn.Module, x: torch.Tensor, mult: int, distinct: dict[str, int]) -> None:
    with torch.no_grad():
        y_base, y_wide = base(x), wide(x)
    torch.testing.assert_close(y_wide, y_base, atol=1e-5, rtol=1e-5)  # the widening itself is exact
    ratio = (mult - 1) / mult
    folded, rep = compress(wide, x, "fold", ratio)
    assert {g.name: g.k for g in rep.groups} == distinct
    for g in rep.groups:
        # every kept channel merges one complete duplicate family {c, c + C, c + 2C, ...}
        c = g.n // mult
        assert sorted(i for m in g.members for i in m) == list(range(g.n))
        assert all(sorted(m) == [m[0] % c + j * c for j in range(mult)] for m in g.members)
        assert g.proj_error == pytest.approx(0.0, abs=1e-3 * (1 + (g.prune_error or 0)))
        assert all(r == pytest.approx(1.0, abs=1e-5) for r in g.rho)  # duplicates are perfectly correlated
    with torch.no_grad():
        torch.testing.assert_close(folded(x), y_base, atol=1e-5, rtol=1e-5)
    assert rep.params_after < rep.params_before


class PlainCNN(nn.Module):
    def __init__(self, c1: int, c2: int, c3: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
                                  nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Conv2d(c2, c3, 1), nn.ReLU())
        self.fc = nn.Linear(c3 * 4 * 4, 5)  # flatten of a 4×4 map: each channel owns 16 fc inputs

    def forward(self, x):
        return self.fc(torch.flatten(self.body(x), 1))


def test_plain_cnn_with_duplicates_folds_exactly():
    base = randomize(PlainCNN(4, 6, 3))
    wide = widen(base, PlainCNN(8, 12, 6), 2)
    x = torch.randn(3, 3, 8, 8)
    check_fold(base, wide, x, 2, {"body.0": 4, "body.3": 6, "body.7": 3})


def test_plain_cnn_with_triplicates_folds_exactly():
    base = randomize(PlainCNN(3, 5, 2))
    wide = widen(base, PlainCNN(9, 15, 6), 3)
    check_fold(base, wide, torch.randn(2, 3, 8, 8), 3, {"body.0": 3, "body.3": 5, "body.7": 2})


class TinyResNet(nn.Module):
    """Stem + an identity block + a block with a projection shortcut: residual adds couple the groups."""

    def __init__(self, w1: int, w2: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, w1, 3, padding=1, bias=False), nn.BatchNorm2d(w1), nn.ReLU())
        self.block1 = BasicBlock(w1, w1, 1)
        self.block2 = BasicBlock(w1, w2, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w2, 4)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.block2(self.block1(self.stem(x)))), 1))


def test_residual_network_with_duplicates_folds_exactly():
    base = randomize(TinyResNet(4, 6))
    wide = widen(base, TinyResNet(8, 12), 2)
    x = torch.randn(2, 3, 8, 8)
    # groups: stem+block1 residual (4), block1.conv1 (4), block2.conv1 (6), block2 residual (6)
    check_fold(base, wide, x, 2, {"stem.0": 4, "block1.conv1": 4, "block2.conv1": 6, "block2.shortcut.0": 6})


def mlp(h1: int, h2: int) -> nn.Module:
    return nn.Sequential(nn.Linear(7, h1), nn.ReLU(), nn.Linear(h1, h2), nn.Tanh(), nn.Linear(h2, 3))


def test_mlp_with_duplicates_folds_exactly():
    base = mlp(5, 4).eval()
    wide = widen(base, mlp(10, 8), 2)
    check_fold(base, wide, torch.randn(6, 7), 2, {"0": 5, "2": 4})


class AttnNet(nn.Module):
    def __init__(self, heads: int):
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.attn = Attention(8, heads, 4)

    def forward(self, x):
        return self.attn(self.inp(x)).mean(1)


def test_duplicate_attention_heads_fold_exactly():
    base = AttnNet(2).eval()
    wide = AttnNet(4).eval()
    # heads h and h+2 of the wide block are copies of base head h; proj columns split between them
    sd = base.state_dict()
    qkv_w = sd["attn.qkv.weight"].view(3, 2, 4, 8).repeat(1, 2, 1, 1).reshape(48, 8)
    qkv_b = sd["attn.qkv.bias"].view(3, 2, 4).repeat(1, 2, 1).reshape(48)
    proj_w = sd["attn.proj.weight"].view(8, 2, 4).repeat(1, 2, 1).reshape(8, 16) / 2
    wide.load_state_dict({**sd, "attn.qkv.weight": qkv_w, "attn.qkv.bias": qkv_b, "attn.proj.weight": proj_w})
    x = torch.randn(2, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(wide(x), base(x), atol=1e-5, rtol=1e-5)
    folded, rep = compress(wide, x, "fold", 0.5, ignored_layers=[wide.inp])
    heads = [g for g in rep.groups if g.kind == "heads"]
    assert len(heads) == 1 and heads[0].n == 4 and heads[0].k == 2
    assert sorted(map(sorted, heads[0].members)) == [[0, 2], [1, 3]]
    assert folded.attn.num_heads == 2 and folded.attn.qkv.out_features == 24 and folded.attn.proj.in_features == 8
    with torch.no_grad():
        torch.testing.assert_close(folded(x), base(x), atol=1e-5, rtol=1e-5)


def mobile(c: int, d: int) -> nn.Module:
    """Conv → depthwise conv → pointwise conv: the depthwise filters belong to their input channels' group."""
    return nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU6(),
                         nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(c), nn.ReLU6(),
                         nn.Conv2d(c, d, 1, bias=False), nn.BatchNorm2d(d), nn.ReLU6(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(d, 4))


def test_depthwise_network_with_duplicates_folds_exactly():
    base = randomize(mobile(4, 6))
    wide = widen(base, mobile(8, 12), 2)
    check_fold(base, wide, torch.randn(2, 3, 8, 8), 2, {"3": 4, "6": 6})
