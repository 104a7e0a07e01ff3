"""Built-in real data: scikit-learn's `load_digits` (1,797 8x8 handwritten digits), nothing downloaded.

Images are resized to whatever input shape a model wants (32x32x3 for CIFAR-shaped models, 49x10x1 for
the keyword-spotting DS-CNN; N,C,L and N,T,F inputs get the image resized to the last two dimensions, N,D inputs
get it resized to a near-square grid of D pixels and flattened), so every zoo model trains and is evaluated on the
same real data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

NUM_CLASSES = 10
SPLIT_SEED = 0
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # float32, N x (the model's input shape without its batch), roughly zero-mean
    y: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.y)


def _raw() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)


def split_indices() -> tuple[np.ndarray, np.ndarray]:
    """The fixed, stratified train/test split (1,437 / 360)."""
    from sklearn.model_selection import train_test_split

    _, y = _raw()
    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    return np.sort(train), np.sort(test)


def _grid(d: int) -> tuple[int, int]:
    """The most square h x w with h * w == d (h <= w)."""
    h = max(i for i in range(1, int(d**0.5) + 1) if d % i == 0)
    return h, d // h


def to_shape(images: np.ndarray, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Resize N x 8 x 8 images in [0, 1] to `input_shape` (bilinear) and centre: N,C,H,W replicates channels,
    N,C,L / N,T,F resizes to the last two dimensions, N,D resizes to a near-square grid and flattens."""
    if len(input_shape) == 4:
        _, c, h, w = input_shape
    elif len(input_shape) == 3:
        c, (h, w) = 1, input_shape[1:]
    else:
        c, (h, w) = 1, _grid(input_shape[1])
    x = torch.from_numpy(images)[:, None]
    if (h, w) != (8, 8):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    x = (x - 0.5) / 0.5
    if len(input_shape) == 3:
        return x[:, 0].contiguous()
    if len(input_shape) == 2:
        return x.reshape(len(x), h * w).contiguous()
    return x.repeat(1, c, 1, 1).contiguous()


def load(input_shape: tuple[int, ...], split: str = "train") -> Split:
    """Digits resized to `input_shape` (batch dim ignored); split is 'train', 'test' or 'all'."""
    if len(input_shape) not in (2, 3, 4) or any(int(d) < 1 for d in input_shape[1:]):
        raise ValueError(f"built-in data needs an N,C,H,W, N,C,L (N,T,F) or N,D input shape, got {input_shape}")
    images, labels = _raw()
    train, test = split_indices()
    idx = {"train": train, "test": test, "all": np.arange(len(labels))}[split]
    return Split(to_shape(images[idx], input_shape), torch.from_numpy(labels[idx]))


def calibration_batch(input_shape: tuple[int, ...], n: int = 128, seed: int = 0) -> torch.Tensor:
    """A fixed sample of training images, used for BN repair and int8 calibration."""
    tr = load(input_shape, "train")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(tr), generator=g)[:n]
    return tr.x[idx].contiguous()


@torch.no_grad()
def accuracy(model: torch.nn.Module, split: Split, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(split), batch_size):
        out = model(split.x[i : i + batch_size])
        correct += int((out.argmax(1) == split.y[i : i + batch_size]).sum())
    model.train(was_training)
    return 100.0 * correct / max(1, len(split))
