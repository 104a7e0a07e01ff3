"""Small real models for the export/check tests (digits at 8x8, trained in a couple of seconds)."""

from __future__ import annotations

import torch
from torch import nn

TINY_SHAPE = (1, 1, 8, 8)


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class SinNet(TinyNet):
    """TinyNet with a sin(): fine for ONNX, but no int8 pattern exists for it (stays float in TFLite)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.sin(self.features(x))), 1))


def trained_tiny(epochs: int = 6) -> nn.Module:
    from edgefold.compiler.train import TrainConfig, train

    torch.manual_seed(0)
    model = TinyNet()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only contend on a busy machine
    try:
        train(model, TINY_SHAPE, TrainConfig(epochs=epochs, lr=1e-2))
    finally:
        torch.set_num_threads(threads)
    return model.eval()
