"""Reference models, sized for the built-in digits data (10 classes).

Every model is plain `torch.nn` with no per-model compression wiring: coupling between channels is found
from the graph by the compressor.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from edgefold.compiler import zoo_edge
from torch import nn

from edgefold.core.errors import EdgefoldError

CIFAR_SHAPE = (1, 3, 32, 32)
KWS_SHAPE = (1, 1, 49, 10)  # MLPerf Tiny KWS: 49 frames x 10 MFCC


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


# --- ResNet-8 (MLPerf Tiny image classification) and ResNet-18 (CIFAR variant) ---------------------


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(cin, cout, 3, stride)
        self.conv2, self.bn2 = conv_bn(cout, cout, 3, 1)
        self.relu = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, widths: list[int], blocks: list[int], num_classes: int = 10, in_ch: int = 3):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn(in_ch, widths[0], 3, 1), nn.ReLU())
        layers: list[nn.Module] = []
        cin = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.layers(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


def resnet8(num_classes: int = 10) -> nn.Module:
    return ResNet([16, 32, 64], [1, 1, 1], num_classes)


def resnet18(num_classes: int = 10, width: int = 64) -> nn.Module:
    return ResNet([width, 2 * width, 4 * width, 8 * width], [2, 2, 2, 2], num_classes)


def resnet18_narrow(num_classes: int = 10) -> nn.Module:
    """ResNet-18 at 1/4 width (widths 16..128), for sweeps of many checkpoints."""
    return resnet18(num_classes, width=16)


# --- VGG-11 with BatchNorm (CIFAR variant) -------------------------------------------------------------


class VGG(nn.Module):
    def __init__(self, cfg: list, num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [*conv_bn(cin, v), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def vgg11_bn(num_classes: int = 10) -> nn.Module:
    return VGG([64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"], num_classes)


# --- DS-CNN (MLPerf Tiny keyword spotting) ---------------------------------------------------------------


class DSCNN(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 64, blocks: int = 4):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, (10, 4), (2, 2), (5, 1), bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        body: list[nn.Module] = []
        for _ in range(blocks):
            body += [*conv_bn(width, width, 3, 1, groups=width), nn.ReLU()]
            body += [*conv_bn(width, width, 1), nn.ReLU()]
        self.body = nn.Sequential(*body)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.body(self.stem(x))), 1))


def dscnn(num_classes: int = 10) -> nn.Module:
    return DSCNN(num_classes)


# --- MobileNetV1, width multiplier 0.25 ----------------------------------------------------------------


class MobileNetV1(nn.Module):
    # (output channels at alpha=1, stride); 32x32 inputs, so the first stride-2 stages are kept
    CFG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
           (512, 1), (512, 1), (1024, 2), (1024, 1)]

    def __init__(self, num_classes: int = 10, alpha: float = 0.25):
        super().__init__()
        c = int(32 * alpha)
        layers: list[nn.Module] = [*conv_bn(3, c, 3, 1), nn.ReLU6()]
        for cout, s in self.CFG:
            cout = int(cout * alpha)
            layers += [*conv_bn(c, c, 3, s, groups=c), nn.ReLU6(), *conv_bn(c, cout, 1), nn.ReLU6()]
            c = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def mobilenetv1_025(num_classes: int = 10) -> nn.Module:
    return MobileNetV1(num_classes, 0.25)


# --- A tiny Vision Transformer (LayerNorm, attention heads, ReLU MLP for int8 friendliness) ---------


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, head_dim: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.qkv = nn.Linear(dim, 3 * num_heads * head_dim)
        self.proj = nn.Linear(num_heads * head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * (self.head_dim**-0.5)
        out = attn.softmax(-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dim // heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, num_classes: int = 10, img: int = 32, patch: int = 8, dim: int = 64, depth: int = 2,
                 heads: int = 4, mlp_dim: int = 128):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.pos_embed = nn.Parameter(torch.randn(1, (img // patch) ** 2, dim) * 0.02)
        self.blocks = nn.Sequential(*[TransformerBlock(dim, heads, mlp_dim) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x.mean(1))


def vit_tiny(num_classes: int = 10) -> nn.Module:
    return ViT(num_classes)


ZOO: dict[str, tuple[Callable[..., nn.Module], tuple[int, ...]]] = {
    "resnet8": (resnet8, CIFAR_SHAPE),
    "resnet18": (resnet18, CIFAR_SHAPE),
    "resnet18_narrow": (resnet18_narrow, CIFAR_SHAPE),
    "vgg11_bn": (vgg11_bn, CIFAR_SHAPE),
    "dscnn": (dscnn, KWS_SHAPE),
    "mobilenetv1_025": (mobilenetv1_025, CIFAR_SHAPE),
    "vit_tiny": (vit_tiny, CIFAR_SHAPE),
}

# The edge test zoo (compiler/zoo_edge.py): common architectures users bring, at their small (CI) sizes.
ZOO.update(zoo_edge.EDGE)

# The six reference architectures (docs/models-and-data.md); resnet18_narrow is only used by the sweep.
REFERENCE = ["resnet8", "resnet18", "vgg11_bn", "dscnn", "mobilenetv1_025", "vit_tiny"]


def names() -> list[str]:
    return list(ZOO)


def build(name: str, num_classes: int = 10) -> nn.Module:
    if name not in ZOO:
        raise EdgefoldError(f"unknown model '{name}'; choose one of: {', '.join(ZOO)}")
    torch.manual_seed(0)
    return ZOO[name][0](num_classes)


def input_shape(name: str) -> tuple[int, ...]:
    if name not in ZOO:
        raise EdgefoldError(f"unknown model '{name}'; choose one of: {', '.join(ZOO)}")
    return ZOO[name][1]
