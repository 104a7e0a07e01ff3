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
