"""Calibration data for int8 quantisation: the built-in digits training sample, or the user's .npz."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from edgefold.core.errors import EdgefoldError

DEFAULT_SAMPLES = 128
_KEYS = ("calib", "x", "data", "inputs", "images")


def builtin_calibration(input_shape: tuple[int, ...], n: int = DEFAULT_SAMPLES) -> torch.Tensor:
    from edgefold.compiler import data

    return data.calibration_batch(tuple(input_shape), n)


def load_npz(path: str | os.PathLike, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Read calibration inputs from a .npz (array 'calib', 'x', 'data', 'inputs' or 'images', or its only array).

    The array must be floating point, N x (input shape without batch), finite, and N >= 1.
    """
    p = Path(path)
    if not p.is_file():
        raise EdgefoldError(f"calibration file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = list(z.files)
            key = next((k for k in _KEYS if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise EdgefoldError(
                    f"{p} holds arrays {keys}; name the calibration array one of {', '.join(_KEYS)}")
            arr = z[key]
    except EdgefoldError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EdgefoldError(f"{p} is not a readable .npz file: {why}") from None
    want = tuple(input_shape[1:])
    if not np.issubdtype(arr.dtype, np.floating):
        raise EdgefoldError(f"calibration array '{key}' in {p} has dtype {arr.dtype}; it must be float32")
    if arr.ndim == len(want):  # a single sample without batch dimension
        arr = arr[None]
    if tuple(arr.shape[1:]) != want:
        raise EdgefoldError(
            f"calibration array '{key}' in {p} has shape {arr.shape}; the model wants N x {'x'.join(map(str, want))} "
            "(NCHW, like the PyTorch model's input)")
    if len(arr) == 0:
        raise EdgefoldError(f"calibration array '{key}' in {p} is empty")
    if not np.isfinite(arr).all():
        raise EdgefoldError(f"calibration array '{key}' in {p} contains NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def calibration(path: str | os.PathLike | None, input_shape: tuple[int, ...],
                n: int = DEFAULT_SAMPLES) -> torch.Tensor:
    """The user's .npz if given, else the built-in sample; always contiguous float32 NCHW."""
    if path is None:
        return builtin_calibration(input_shape, n).contiguous()
    return load_npz(path, input_shape).contiguous()
