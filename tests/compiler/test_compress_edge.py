"""compress() on architectures beyond ReLU convnets, each from a minimal local definition of the published block:
channel shuffle (ShuffleNetV2), timm attention with a separate attn_dim, DenseNet concatenation with every repair,
recurrent layers (no compressible group: said so), and where `ar` does not apply (squeeze-excitation, grouped convs).
"""

from __future__ import annotations

import pytest
import torch
from edgefold.compiler.compress import compress
from edgefold.compiler.compress import repair as R
from edgefold.compiler.compress.graph import _split_dims
from torch import nn

REPAIRS = ["none", "repair", "ar", "dir"]


@pytest.fixture(autouse=True)
def _seed_one_thread(monkeypatch):
    torch.manual_seed(0)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setattr(R, "DEFAULT_DIR", R.DirConfig(batch=4, steps=2))
    yield
    torch.set_num_threads(old)


def _calibrated(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """BatchNorm statistics from a few forward passes (not the 0/1 defaults), then eval mode."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return model.eval()


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --- channel shuffle ---------------------------------------------------------------------------------------------


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride, bf = stride, cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
                                         nn.BatchNorm2d(cin), nn.Conv2d(cin, bf, 1, bias=False), nn.BatchNorm2d(bf),
                                         nn.ReLU())
        c2 = cin if stride > 1 else bf
        self.branch2 = nn.Sequential(nn.Conv2d(c2, bf, 1, bias=False), nn.BatchNorm2d(bf), nn.ReLU(),
                                     nn.Conv2d(bf, bf, 3, stride, 1, groups=bf, bias=False), nn.BatchNorm2d(bf),
                                     nn.Conv2d(bf, bf, 1, bias=False), nn.BatchNorm2d(bf), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU())
        self.stages = nn.Sequential(ShuffleUnit(24, 48, 2), ShuffleUnit(48, 48, 1), ShuffleUnit(48, 96, 2))
        self.head = nn.Sequential(nn.Conv2d(96, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU())
        self.fc = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.stages(self.stem(x))).mean((2, 3)))


def test_split_dims():
    assert _split_dims((2, 48, 4, 4), (2, 2, 24, 4, 4)) == [[1, 2]]
    assert _split_dims((2, 17, 144), (2, 17, 3, 2, 24)) == [[2, 3, 4]]
    assert _split_dims((2, 48, 4, 4), (2, 48, 16)) == []  # a merge, not a split
    assert _split_dims((2, 48, 1), (2, 1, 48)) == []


@pytest.mark.parametrize("method", ["fold", "mag1"])
def test_channel_shuffle_compresses_branches_and_protects_the_shuffled_channels(method):
    x = torch.randn(4, 3, 32, 32)
    model = _calibrated(ShuffleNet(), x)
    c, rep = compress(model, x, method, 0.5)
    with torch.no_grad():
        y0, y = model(x), c(x)
    assert y.shape == y0.shape and torch.isfinite(y).all()
    # the channels every shuffle permutes are left alone, with one notice naming them
    assert len(rep.notices) == 1 and rep.notices[0].startswith("channel shuffle:")
    assert "stages.2.branch2.5" in rep.skipped_groups and "stages.2.branch1.2" in rep.skipped_groups
    assert c.stages[2].branch2[5].out_channels == 48 and c.head[0].in_channels == 96
    # each branch's inner channels (1x1 -> depthwise -> 1x1) are compressed
    assert c.stages[1].branch2[0].out_channels == 12 and c.stages[1].branch2[3].out_channels == 12
    assert rep.params_after < 0.75 * rep.params_before and rep.macs_after < 0.75 * rep.macs_before
    assert rep.params_after == _params(c)
    c0, _ = compress(model, x, method, 0.0)
    with torch.no_grad():
        assert torch.allclose(c0(x), y0, atol=1e-5)


# --- timm attention with a separate attn_dim ---------------------------------------------------------------------


class TimmAttention(nn.Module):
    """timm's Attention: q, k, v of width attn_dim (not the embedding dim), reshaped by self.attn_dim."""

    def __init__(self, dim: int, num_heads: int, attn_dim: int):
        super().__init__()
        self.num_heads, self.attn_dim, self.head_dim = num_heads, attn_dim, attn_dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * attn_dim)
        self.proj = nn.Linear(attn_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1) @ v
        return self.proj(x.transpose(1, 2).reshape(b, n, self.attn_dim))


class InputWidthAttention(TimmAttention):
    """Older timm: head_dim is not kept and the heads are merged back to the width of the input."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__(dim, num_heads, dim)
        del self.head_dim, self.attn_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        x = ((q * self.scale) @ k.transpose(-2, -1)).softmax(-1) @ v
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class TinyViT(nn.Module):
    def __init__(self, attn: nn.Module, dim: int = 8):
        super().__init__()
        self.inp = nn.Linear(6, dim)
        self.norm = nn.LayerNorm(dim)
        self.attn = attn
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        x = x + self.attn(self.norm(x))
        x = x + self.mlp(x)
        return self.head(x.mean(1))


@pytest.mark.parametrize("method", ["fold", "mag1"])
def test_timm_attention_updates_attn_dim_with_the_heads(method):
    from edgefold.compiler.checkpoint import apply_plan, structural_plan

    def build() -> nn.Module:
        torch.manual_seed(0)
        return TinyViT(TimmAttention(8, 4, 12)).eval()

    model, x = build(), torch.randn(2, 5, 6)
    c, rep = compress(model, x, method, 0.5)
    heads = [g for g in rep.groups if g.kind == "heads"]
    assert [(g.n, g.k) for g in heads] == [(4, 2)] and not rep.notices
    assert (c.attn.num_heads, c.attn.head_dim, c.attn.attn_dim) == (2, 3, 6)
    assert c.attn.qkv.out_features == 18 and c.attn.proj.in_features == 6 and c.norm.normalized_shape == (4,)
    x2 = torch.randn(3, 7, 6)  # another batch size and token count than the example
    with torch.no_grad():
        y = c(x2)
    assert y.shape == (3, 3) and torch.isfinite(y).all()
    # the saved form (attributes that differ from a fresh build + state_dict) rebuilds the same model
    plan = structural_plan(c, build())
    assert plan["attn"] == {"num_heads": 2, "attn_dim": 6}
    back = apply_plan(build(), plan, c.state_dict())
    back.load_state_dict(c.state_dict())
    with torch.no_grad():
        assert torch.equal(back(x2), y)


def test_timm_attention_duplicate_heads_fold_exactly():
    torch.manual_seed(0)
    base, wide = TimmAttention(8, 2, 6).eval(), TimmAttention(8, 4, 12).eval()
    sd = base.state_dict()  # heads h and h+2 of the wide block are copies of base head h, proj columns halved
    wide.load_state_dict({"qkv.weight": sd["qkv.weight"].view(3, 2, 3, 8).repeat(1, 2, 1, 1).reshape(36, 8),
                          "qkv.bias": sd["qkv.bias"].view(3, 2, 3).repeat(1, 2, 1).reshape(36),
                          "proj.weight": sd["proj.weight"].view(8, 2, 3).repeat(1, 2, 1).reshape(8, 12) / 2,
                          "proj.bias": sd["proj.bias"]})
    x = torch.randn(2, 5, 8)
    folded, rep = compress(wide, x, "fold", 0.5)
    assert sorted(map(sorted, rep.groups[0].members)) == [[0, 2], [1, 3]]
    assert (folded.num_heads, folded.attn_dim) == (2, 6)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), base(x), atol=1e-5, rtol=1e-5)


def test_attention_that_reads_its_width_from_the_input_keeps_its_heads_with_a_notice():
    model, x = TinyViT(InputWidthAttention(8, 4)).eval(), torch.randn(2, 5, 6)
    # the residual stream is the attention width here: keep it (its input layer ignored) to isolate the heads
    c, rep = compress(model, x, "fold", 0.5, ignored_layers=[model.inp])
    assert c.attn.num_heads == 4 and c.attn.qkv.out_features == 24
    assert "attn.qkv" in rep.skipped_groups
    assert len(rep.notices) == 1 and rep.notices[0].startswith("attention: the heads of attn")
    assert c.mlp[0].out_features == 8  # the other groups are compressed
    with torch.no_grad():
        assert torch.isfinite(c(x)).all()


# --- DenseNet: norm layers over concatenations hold channels of several groups -----------------------------------


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.norm1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, 2 * growth, 1, bias=False)
        self.norm2, self.conv2 = nn.BatchNorm2d(2 * growth), nn.Conv2d(2 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(torch.relu(self.norm2(self.conv1(torch.relu(self.norm1(x))))))
        return torch.cat([x, y], 1)


class DenseNet(nn.Module):
    def __init__(self, c0: int = 8, growth: int = 6, layers: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(3, c0, 3, padding=1, bias=False)
        self.block = nn.Sequential(*[DenseLayer(c0 + i * growth, growth) for i in range(layers)])
        width = c0 + layers * growth
        self.norm, self.fc = nn.BatchNorm2d(width), nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.norm(self.block(self.stem(x)))).mean((2, 3)))


@pytest.mark.parametrize("repair", REPAIRS)
@pytest.mark.parametrize("method", ["fold", "mag1", "mag2"])
def test_densenet_every_repair(method, repair):
    x = torch.randn(8, 3, 8, 8)
    model = _calibrated(DenseNet(), x)
    c, rep = compress(model, x, method, 0.5, repair, calib_data=x)
    with torch.no_grad():
        y = c(x)
    assert y.shape == (8, 10) and torch.isfinite(y).all()
    assert rep.params_after < 0.5 * rep.params_before and rep.macs_after < 0.5 * rep.macs_before
    assert c.block[2].norm1.num_features == 4 + 3 + 3 and c.norm.num_features == 4 + 3 * 3


def test_densenet_norm_positions_and_ar_scale_the_groups_own_channels():
    x = torch.randn(8, 3, 8, 8)
    model = _calibrated(DenseNet(), x)
    # magnitude pruning: kept channel c of a group is original channel members[c][0], at the group's offset in each
    # concatenation (stem at 0, layer i's growth channels at 8 + 6·i)
    c, rep = compress(model, x, "mag1", 0.5)
    offset = {"stem": 0, **{f"block.{i}.conv2": 8 + 6 * i for i in range(3)}}
    checked = 0
    for g in rep.groups:
        for name, pos in g.norm_index.items():
            orig, new = model.get_submodule(name), c.get_submodule(name)
            for mem, p in zip(g.members, pos, strict=True):
                assert new.weight[p[0]] == orig.weight[offset.get(g.name, 0) + mem[0]]
                assert new.running_var[p[0]] == orig.running_var[offset.get(g.name, 0) + mem[0]]
                checked += 1
    assert checked > 30
    # fold: ar scales exactly the merged channels' running variance, wherever they sit
    plain, rep = compress(model, x, "fold", 0.5, "none")
    ar, _ = compress(model, x, "fold", 0.5, "ar")
    expect = {n: torch.ones_like(m.running_var) for n, m in plain.named_modules() if isinstance(m, nn.BatchNorm2d)}
    for g in rep.groups:
        f = torch.tensor([R.variance_factor(len(m), r) for m, r in zip(g.members, g.rho, strict=True)])
        for name, pos in g.norm_index.items():
            expect[name][torch.tensor(pos).reshape(-1)] = f
    assert any(bool((e != 1).any()) for e in expect.values())
    for name, e in expect.items():
        got = ar.get_submodule(name).running_var / plain.get_submodule(name).running_var
        torch.testing.assert_close(got, e.to(got.dtype), rtol=1e-5, atol=0)


# --- recurrent layers --------------------------------------------------------------------------------------------


class RNNKWS(nn.Module):
    def __init__(self, cell: type[nn.RNNBase]):
        super().__init__()
        self.rnn, self.fc = cell(10, 16, batch_first=True), nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(x)[0][:, -1])


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_recurrent_model_with_nothing_to_compress_says_so(cell):
    model, x = RNNKWS(cell).eval(), torch.randn(2, 12, 10)
    c, rep = compress(model, x, "fold", 0.5, "ar")
    assert not rep.groups and rep.params_after == rep.params_before
    assert any(n.startswith("recurrent layers are not compressed (rnn)") for n in rep.notices)
    assert any(n.startswith("nothing to compress:") for n in rep.notices)
    with torch.no_grad():
        assert torch.equal(c(x), model(x))


# --- where ar's premise fails: squeeze-excitation gates, channels feeding layers that stay uncompressed -----------


class SEBlock(nn.Module):
    def __init__(self, c: int = 16):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.fc1, self.fc2 = nn.Conv2d(c, 4, 1), nn.Conv2d(4, c, 1)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)
        self.conv3, self.bn3 = nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)
        self.grouped = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(c))
        self.fc = nn.Linear(c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))  # SE gate
        x = torch.relu(self.bn2(self.conv2(x)))
        x = torch.relu(self.bn3(self.conv3(x)))  # conv3's outputs feed a grouped conv: they stay
        return self.fc(torch.relu(self.grouped(x)).mean((2, 3)))


def test_ar_is_skipped_where_it_does_not_apply_and_says_so():
    x = torch.randn(8, 3, 8, 8)
    model = _calibrated(SEBlock(), x)
    plain, _ = compress(model, x, "fold", 0.5, "none")
    ar, rep = compress(model, x, "fold", 0.5, "ar")
    why = {g.name: g.ar_skip for g in rep.groups}
    assert why["fc2"] == "its channels are gated by squeeze-excitation"
    assert why["conv2"] == "its channels feed layers that are not compressed (conv3)"
    assert "conv3" in rep.skipped_groups
    assert len(rep.notices) == 1 and rep.notices[0].startswith("ar does not apply to 2 merged group(s)")
    for bn in ("bn", "bn2"):  # both groups' statistics are left as folded
        assert torch.equal(ar.get_submodule(bn).running_var, plain.get_submodule(bn).running_var)


def test_ar_still_corrects_plain_chains():
    x = torch.randn(8, 3, 8, 8)
    model = _calibrated(nn.Sequential(nn.Conv2d(3, 16, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.Conv2d(16, 16, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)), x)
    plain, _ = compress(model, x, "fold", 0.5, "none")
    ar, rep = compress(model, x, "fold", 0.5, "ar")
    assert not rep.notices and not any(g.ar_skip for g in rep.groups)  # the last group feeds the classifier: fine
    for bn in ("1", "4"):
        assert (ar.get_submodule(bn).running_var < plain.get_submodule(bn).running_var).any()
