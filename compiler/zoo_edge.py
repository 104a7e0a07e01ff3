"""The edge test zoo: common architectures users bring, written from their published definitions (no downloads).

Each family has a `size`: "small" (what the registry builds; fast enough for CI and trainable on the digits) and
"full" (the published width and depth, for a 32x32 input or the published keyword-spotting shape). Strides of the
stem are reduced for 32x32 inputs where the published network would shrink the map to nothing before the last stage.
Every model is plain `torch.nn`, so its graph is what a user's copy of the published model gives.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

IMAGE_SHAPE = (1, 3, 32, 32)
KWS1D_SHAPE = (1, 10, 49)  # N,C,L: 10 MFCC channels x 49 frames
MLP_SHAPE = (1, 64)  # N,D: 8x8 digits flattened
GRU_SHAPE = (1, 16, 10)  # N,T,F: 16 frames x 10 features (small); the full size is 49 x 10


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels the way the MobileNet / EfficientNet reference code does (never below 90 % of v)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _depth(n: int, mult: float) -> int:
    return max(1, math.ceil(n * mult))


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                 act: Callable[[], nn.Module] | None = nn.ReLU):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                                   nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


# --- MobileNetV2 (Sandler et al. 2018) --------------------------------------------------------------------------


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1, act=nn.ReLU6))
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   ConvBNAct(hidden, cout, 1, act=None)]  # linear bottleneck: no activation
        self.conv = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    # (expansion t, channels c, repeats n, stride s); the second stage's stride is 1 for 32x32 inputs (CIFAR variant)
    CFG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes: int = 10, width: float = 1.0, depth: float = 1.0, last: int = 1280):
        super().__init__()
        c = make_divisible(32 * width)
        layers: list[nn.Module] = [ConvBNAct(3, c, 3, 1, act=nn.ReLU6)]
        for t, ch, n, s in self.CFG:
            cout = make_divisible(ch * width)
            for i in range(_depth(n, depth)):
                layers.append(InvertedResidual(c, cout, s if i == 0 else 1, t))
                c = cout
        last_c = make_divisible(last * max(1.0, width))
        layers.append(ConvBNAct(c, last_c, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last_c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def mobilenetv2(num_classes: int = 10, size: str = "small") -> nn.Module:
    if size == "full":
        return MobileNetV2(num_classes)
    return MobileNetV2(num_classes, width=0.25, depth=0.5, last=320)


# --- MobileNetV3-Small (Howard et al. 2019) -------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    """Channel attention as in torchvision's MobileNetV3 / EfficientNet: pool, 1x1 conv, act, 1x1 conv, gate."""

    def __init__(self, cin: int, squeeze: int, act: Callable[[], nn.Module] = nn.ReLU,
                 gate: Callable[[], nn.Module] = nn.Hardsigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.act, self.fc2, self.gate = nn.Conv2d(cin, squeeze, 1), act(), nn.Conv2d(squeeze, cin, 1), gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.act(self.fc1(self.avgpool(x)))))


class MBV3Block(nn.Module):
    def __init__(self, cin: int, k: int, exp: int, cout: int, se: bool, act: Callable[[], nn.Module], stride: int):
        super().__init__()
        layers: list[nn.Module] = []
        if exp != cin:
            layers.append(ConvBNAct(cin, exp, 1, act=act))
        layers.append(ConvBNAct(exp, exp, k, stride, groups=exp, act=act))
        if se:
            layers.append(SqueezeExcite(exp, make_divisible(exp // 4)))
        layers.append(ConvBNAct(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_res else self.block(x)


class MobileNetV3Small(nn.Module):
    RE, HS = nn.ReLU, nn.Hardswish
    # (kernel, expanded, out, SE, activation, stride); the first block's stride is 1 for 32x32 inputs
    CFG = [(3, 16, 16, True, RE, 1), (3, 72, 24, False, RE, 2), (3, 88, 24, False, RE, 1),
           (5, 96, 40, True, HS, 2), (5, 240, 40, True, HS, 1), (5, 240, 40, True, HS, 1),
           (5, 120, 48, True, HS, 1), (5, 144, 48, True, HS, 1), (5, 288, 96, True, HS, 2),
           (5, 576, 96, True, HS, 1), (5, 576, 96, True, HS, 1)]

    def __init__(self, num_classes: int = 10, width: float = 1.0, blocks: int = 11, last: int = 1024):
        super().__init__()
        c = make_divisible(16 * width)
        layers: list[nn.Module] = [ConvBNAct(3, c, 3, 1, act=nn.Hardswish)]
        cfg = self.CFG[:blocks]
        for k, exp, out, se, act, s in cfg:
            exp_c, out_c = make_divisible(exp * width), make_divisible(out * width)
            layers.append(MBV3Block(c, k, exp_c, out_c, se, act, s))
            c = out_c
        last_conv = 6 * c
        layers.append(ConvBNAct(c, last_conv, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(last_conv, last), nn.Hardswish(), nn.Dropout(0.2),
                                        nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def mobilenetv3_small(num_classes: int = 10, size: str = "small") -> nn.Module:
    if size == "full":
        return MobileNetV3Small(num_classes)
    return MobileNetV3Small(num_classes, width=0.5, blocks=6, last=128)


# --- EfficientNet-B0 (Tan & Le 2019) ------------------------------------------------------------------------------


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1, act=nn.SiLU))
        layers += [ConvBNAct(hidden, hidden, k, stride, groups=hidden, act=nn.SiLU),
                   SqueezeExcite(hidden, max(1, cin // 4), act=nn.SiLU, gate=nn.Sigmoid),
                   ConvBNAct(hidden, cout, 1, act=None)]
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_res else self.block(x)


class EfficientNet(nn.Module):
    # (expansion, kernel, stride, channels, repeats); B0. The stem stride is 1 for the reduced (32x32) input.
    CFG = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
           (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]

    def __init__(self, num_classes: int = 10, width: float = 1.0, depth: float = 1.0, last: int = 1280):
        super().__init__()
        c = make_divisible(32 * width)
        layers: list[nn.Module] = [ConvBNAct(3, c, 3, 1, act=nn.SiLU)]
        for t, k, s, ch, n in self.CFG:
            cout = make_divisible(ch * width)
            for i in range(_depth(n, depth)):
                layers.append(MBConv(c, cout, k, s if i == 0 else 1, t))
                c = cout
        layers.append(ConvBNAct(c, last, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def efficientnet_b0(num_classes: int = 10, size: str = "small") -> nn.Module:
    if size == "full":
        return EfficientNet(num_classes)
    return EfficientNet(num_classes, width=0.25, depth=0.34, last=160)


# --- ShuffleNetV2 0.5x (Ma et al. 2018) ---------------------------------------------------------------------------


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    x = x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(b, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        half = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(ConvBNAct(cin, cin, 3, stride, groups=cin, act=None),
                                         ConvBNAct(cin, half, 1))
        else:
            self.branch1 = nn.Sequential()
        b2_in = cin if stride > 1 else half
        self.branch2 = nn.Sequential(ConvBNAct(b2_in, half, 1), ConvBNAct(half, half, 3, stride, groups=half, act=None),
                                     ConvBNAct(half, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, num_classes: int = 10, channels: tuple[int, ...] = (24, 48, 96, 192, 1024),
                 repeats: tuple[int, ...] = (4, 8, 4)):
        super().__init__()
        # 32x32 input: stem stride 1 and no max-pool (the CIFAR adaptation)
        self.conv1 = ConvBNAct(3, channels[0], 3, 1)
        c = channels[0]
        stages: list[nn.Module] = []
        for n, cout in zip(repeats, channels[1:-1], strict=True):
            units: list[nn.Module] = [ShuffleUnit(c, cout, 2)]
            units += [ShuffleUnit(cout, cout, 1) for _ in range(n - 1)]
            stages.append(nn.Sequential(*units))
            c = cout
        self.stages = nn.Sequential(*stages)
        self.conv5 = ConvBNAct(c, channels[-1], 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv5(self.stages(self.conv1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def shufflenetv2_05(num_classes: int = 10, size: str = "small") -> nn.Module:
    if size == "full":
        return ShuffleNetV2(num_classes)
    return ShuffleNetV2(num_classes, (16, 32, 64, 96, 256), (2, 2, 1))


# --- SqueezeNet 1.1 (Iandola et al. 2016) -------------------------------------------------------------------------


class Fire(nn.Module):
    def __init__(self, cin: int, squeeze: int, e1: int, e3: int):
        super().__init__()
        self.squeeze, self.squeeze_act = nn.Conv2d(cin, squeeze, 1), nn.ReLU()
        self.expand1x1, self.expand1x1_act = nn.Conv2d(squeeze, e1, 1), nn.ReLU()
        self.expand3x3, self.expand3x3_act = nn.Conv2d(squeeze, e3, 3, padding=1), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_act(self.squeeze(x))
        return torch.cat([self.expand1x1_act(self.expand1x1(x)), self.expand3x3_act(self.expand3x3(x))], 1)


class SqueezeNet11(nn.Module):
    """Published strides kept: at 32x32 the classifier's average pool sees a 1x1 map."""

    def __init__(self, num_classes: int = 10, width: float = 1.0):
        super().__init__()

        def w(c: int) -> int:
            return max(4, int(c * width))

        self.features = nn.Sequential(
            nn.Conv2d(3, w(64), 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(w(64), w(16), w(64), w(64)), Fire(w(128), w(16), w(64), w(64)), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(w(128), w(32), w(128), w(128)), Fire(w(256), w(32), w(128), w(128)),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(w(256), w(48), w(192), w(192)), Fire(w(384), w(48), w(192), w(192)),
            Fire(w(384), w(64), w(256), w(256)), Fire(w(512), w(64), w(256), w(256)))
        final = nn.Conv2d(w(512), num_classes, 1)
        self.classifier = nn.Sequential(nn.Dropout(0.5), final, nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        # the published initialisation: without BatchNorm, PyTorch's default init leaves the ReLU'd classifier dead
        # (every logit 0, chance accuracy) after the first steps
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


def squeezenet11(num_classes: int = 10, size: str = "small") -> nn.Module:
    # half width when small: at a quarter, the first Fire modules squeeze to 4 channels and the net trains to
    # 64-87 % on the digits, run to run; at half it trains to 98 %
    return SqueezeNet11(num_classes, 1.0 if size == "full" else 0.5)


# --- RegNetX (Radosavovic et al. 2020) ----------------------------------------------------------------------------


class XBlock(nn.Module):
    """ResNet bottleneck with a grouped 3x3 (bottleneck ratio 1), as RegNetX's building block."""

    def __init__(self, cin: int, cout: int, stride: int, group_width: int):
        super().__init__()
        self.a = ConvBNAct(cin, cout, 1)
        self.b = ConvBNAct(cout, cout, 3, stride, groups=cout // group_width)
        self.c = ConvBNAct(cout, cout, 1, act=None)
        self.proj = ConvBNAct(cin, cout, 1, stride, act=None) if (stride != 1 or cin != cout) else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sc = x if self.proj is None else self.proj(x)
        return self.relu(sc + self.c(self.b(self.a(x))))


class RegNetX(nn.Module):
    def __init__(self, num_classes: int = 10, widths: tuple[int, ...] = (24, 56, 152, 368),
                 depths: tuple[int, ...] = (1, 1, 4, 7), group_width: int = 8, stem: int = 32):
        super().__init__()
        self.stem = ConvBNAct(3, stem, 3, 1)  # stride 1 for 32x32
        c = stem
        stages: list[nn.Module] = []
        for wd, d in zip(widths, depths, strict=True):
            stages.append(nn.Sequential(*[XBlock(c if i == 0 else wd, wd, 2 if i == 0 else 1, group_width)
                                          for i in range(d)]))
            c = wd
        self.trunk = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.trunk(self.stem(x))), 1))


def regnetx_200mf(num_classes: int = 10, size: str = "small") -> nn.Module:
    if size == "full":
        return RegNetX(num_classes)
    return RegNetX(num_classes, (16, 32, 48, 64), (1, 1, 2, 2), group_width=8, stem=16)


# --- DenseNet-BC (Huang et al. 2017); torchvision's layer names ---------------------------------------------------


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int, bn_size: int):
        super().__init__()
        self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU()
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2, self.relu2 = nn.BatchNorm2d(bn_size * growth), nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))
        return torch.cat([x, new], 1)


class Transition(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm, self.relu = nn.BatchNorm2d(cin), nn.ReLU()
        self.conv, self.pool = nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2, 2)


class DenseNet(nn.Module):
    def __init__(self, num_classes: int = 10, growth: int = 32, blocks: tuple[int, ...] = (6, 12, 24, 16),
                 init: int = 64, bn_size: int = 4):
        super().__init__()
        feats: list[nn.Module] = [nn.Conv2d(3, init, 3, 1, 1, bias=False), nn.BatchNorm2d(init), nn.ReLU()]
        c = init
        for i, n in enumerate(blocks):
            for _ in range(n):
                feats.append(DenseLayer(c, growth, bn_size))
                c += growth
            if i != len(blocks) - 1:
                feats.append(Transition(c, c // 2))
                c //= 2
        feats += [nn.BatchNorm2d(c), nn.ReLU()]
        self.features = nn.Sequential(*feats)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def densenet(num_classes: int = 10, size: str = "small") -> nn.Module:
    if size == "full":
        return DenseNet(num_classes)  # DenseNet-121's blocks, CIFAR stem
    return DenseNet(num_classes, growth=8, blocks=(2, 2, 2), init=16, bn_size=2)


# --- ViT, timm-style attention (separate qkv Linear, attn_dim) ----------------------------------------------------


class TimmAttention(nn.Module):
    """timm's `Attention` with `attn_dim` (the width of q, k and v) separate from the embedding `dim`."""

    def __init__(self, dim: int, num_heads: int, attn_dim: int | None = None, qkv_bias: bool = True):
        super().__init__()
        attn_dim = attn_dim or dim
        self.num_heads, self.attn_dim = num_heads, attn_dim
        self.head_dim = attn_dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, attn_dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(attn_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        x = attn.softmax(dim=-1) @ v
        return self.proj(x.transpose(1, 2).reshape(b, n, self.attn_dim))


class TimmMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TimmBlock(nn.Module):
    def __init__(self, dim: int, heads: int, attn_dim: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = TimmAttention(dim, heads, attn_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = TimmMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TimmViT(nn.Module):
    def __init__(self, num_classes: int = 10, img: int = 32, patch: int = 8, dim: int = 192, depth: int = 12,
                 heads: int = 3, attn_dim: int | None = None, mlp_ratio: float = 4.0):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (img // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[TimmBlock(dim, heads, attn_dim or dim, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def vit_timm(num_classes: int = 10, size: str = "small") -> nn.Module:
    if size == "full":
        return TimmViT(num_classes)  # ViT-Ti/8 at 32x32
    return TimmViT(num_classes, dim=32, depth=2, heads=2, attn_dim=48, mlp_ratio=2.0)


# --- ViT with nn.MultiheadAttention (torchvision's EncoderBlock) -----------------------------------------------------


class MHABlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + y
        return x + self.mlp(self.ln_2(x))


class MHAViT(nn.Module):
    def __init__(self, num_classes: int = 10, img: int = 32, patch: int = 8, dim: int = 192, depth: int = 12,
                 heads: int = 3, mlp_dim: int = 768):
        super().__init__()
        self.conv_proj = nn.Conv2d(3, dim, patch, patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, (img // patch) ** 2 + 1, dim) * 0.02)
        self.layers = nn.Sequential(*[MHABlock(dim, heads, mlp_dim) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding
        return self.head(self.ln(self.layers(x))[:, 0])


def vit_mha(num_classes: int = 10, size: str = "small") -> nn.Module:
    if size == "full":
        return MHAViT(num_classes)
    return MHAViT(num_classes, dim=32, depth=2, heads=2, mlp_dim=64)


# --- 1-D DS-CNN keyword spotter (Conv1d over MFCC frames, N,C,L) --------------------------------------------------


class DSCNN1d(nn.Module):
    def __init__(self, num_classes: int = 10, in_ch: int = 10, width: int = 64, blocks: int = 4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(in_ch, width, 5, 2, 2, bias=False), nn.BatchNorm1d(width), nn.ReLU())
        body: list[nn.Module] = []
        for _ in range(blocks):
            body += [nn.Conv1d(width, width, 3, 1, 1, groups=width, bias=False), nn.BatchNorm1d(width), nn.ReLU(),
                     nn.Conv1d(width, width, 1, bias=False), nn.BatchNorm1d(width), nn.ReLU()]
        self.body = nn.Sequential(*body)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.body(self.stem(x))), 1))


def dscnn1d(num_classes: int = 10, size: str = "small") -> nn.Module:
    return DSCNN1d(num_classes, KWS1D_SHAPE[1], *((64, 4) if size == "full" else (24, 2)))


# --- MLP on feature vectors (N,D) ---------------------------------------------------------------------------------


class MLP(nn.Module):
    def __init__(self, num_classes: int = 10, in_dim: int = 64, hidden: tuple[int, ...] = (256, 128)):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp(num_classes: int = 10, size: str = "small") -> nn.Module:
    return MLP(num_classes, MLP_SHAPE[1], (256, 128) if size == "full" else (64, 32))


# --- Recurrent keyword spotters (N,T,F): GRU and LSTM -------------------------------------------------------------


class RNNKWS(nn.Module):
    """A recurrent layer over the frames, the last step's hidden state into a linear classifier."""

    def __init__(self, num_classes: int = 10, features: int = 10, hidden: int = 64, cell: str = "gru"):
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(features, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


def gru_kws(num_classes: int = 10, size: str = "small") -> nn.Module:
    return RNNKWS(num_classes, GRU_SHAPE[2], 64 if size == "full" else 32, "gru")


def lstm_kws(num_classes: int = 10, size: str = "small") -> nn.Module:
    return RNNKWS(num_classes, GRU_SHAPE[2], 64 if size == "full" else 32, "lstm")


# name -> (factory(num_classes, size), input shape of the small size)
FAMILIES: dict[str, tuple[Callable[..., nn.Module], tuple[int, ...]]] = {
    "mobilenetv2": (mobilenetv2, IMAGE_SHAPE),
    "mobilenetv3_small": (mobilenetv3_small, IMAGE_SHAPE),
    "efficientnet_b0": (efficientnet_b0, IMAGE_SHAPE),
    "shufflenetv2_05": (shufflenetv2_05, IMAGE_SHAPE),
    "squeezenet11": (squeezenet11, IMAGE_SHAPE),
    "regnetx_200mf": (regnetx_200mf, IMAGE_SHAPE),
    "densenet": (densenet, IMAGE_SHAPE),
    "vit_timm": (vit_timm, IMAGE_SHAPE),
    "vit_mha": (vit_mha, IMAGE_SHAPE),
    "dscnn1d": (dscnn1d, KWS1D_SHAPE),
    "mlp": (mlp, MLP_SHAPE),
    "gru_kws": (gru_kws, GRU_SHAPE),
    "lstm_kws": (lstm_kws, GRU_SHAPE),
}

# What the zoo registry adds: the small sizes, under the family name.
EDGE: dict[str, tuple[Callable[..., nn.Module], tuple[int, ...]]] = {
    name: (partial(fn, size="small"), shape) for name, (fn, shape) in FAMILIES.items()
}


def build_full(name: str, num_classes: int = 10) -> nn.Module:
    """The published width and depth of a test-zoo family (not registered: too slow for CI)."""
    torch.manual_seed(0)
    return FAMILIES[name][0](num_classes, size="full")


def full_input_shape(name: str) -> tuple[int, ...]:
    return (1, 49, 10) if name in ("gru_kws", "lstm_kws") else FAMILIES[name][1]

