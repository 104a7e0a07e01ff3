"""The user's data: one loader for `.npz` (array `x`, optional labels `y`) and `.npy` (inputs only), and the rule
that decides which data a command uses.

    plan = resolve_data(data="train.npz", eval_data="test.npz", input_shape=(1, 3, 32, 32), num_outputs=12,
                        zoo_model=False)
    plan.inputs   # Dataset for calibration, BatchNorm repair, recovery and sensitivity (unlabelled use)
    plan.eval     # labelled Dataset for accuracy, or None

The rule: `--data FILE` gives the inputs, `--eval-data FILE` (with `y`) the accuracy. The built-in digits (scikit-
learn's, resized to the model's input) are used for zoo models (they are trained on them) or when asked with
`--data digits`, never silently for a user's model; and a model is scored on digit labels only when it has 10
outputs (the digit classes). Every problem with a file is one line naming the file and what is wrong.
"""

from __future__ import annotations

import os
import tokenize
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edgefold.core.errors import EdgefoldError

DIGITS = "digits"
DIGITS_CLASSES = 10


@dataclass(frozen=True)
class Dataset:
    x: torch.Tensor  # float32, N x input_shape[1:], contiguous
    y: torch.Tensor | None  # int64 (N,), or None for unlabelled inputs
    source: str  # the file, or "digits train" / "digits test"

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def builtin(self) -> bool:
        return self.source.startswith(DIGITS)


@dataclass
class DataPlan:
    inputs: Dataset | None  # unlabelled use: calibration, repair, recovery, sensitivity
    eval: Dataset | None  # accuracy (labels for the model's own outputs)
    notes: list[str] = field(default_factory=list)  # why something is missing, for the report

    def require_inputs(self, why: str) -> Dataset:
        if self.inputs is None:
            raise EdgefoldError(f"{why} needs input data: pass --data FILE (.npz with 'x', or .npy), or --data digits "
                                "for the built-in digits")
        return self.inputs


def _shape_text(shape: tuple[int, ...]) -> str:
    return ",".join(str(int(v)) for v in shape)


# What numpy's .npy/.npz readers raise on a corrupt file: the .npy header is a Python literal (ast, tokenize),
# an .npz is a zip of .npy files (zipfile, zlib).
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, SyntaxError, tokenize.TokenError,
                TypeError, KeyError, IndexError, OverflowError, MemoryError, NotImplementedError, RecursionError)


def _check_npy_size(fp: object, available: int, name: str) -> None:
    """Refuse a .npy whose header declares more data than the file holds, before numpy allocates it."""
    fmt = np.lib.format
    version = fmt.read_magic(fp)
    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = read(fp, max_header_size=10000)
    if dtype.hasobject:
        raise ValueError(f"{name}: holds Python objects (pickled), not numbers")
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    have = available - fp.tell()  # type: ignore[attr-defined]
    if need > have:
        raise ValueError(f"{name}: header declares shape {_shape_text(shape)} {dtype} ({need} bytes) but the file "
                         f"holds {max(have, 0)} bytes (truncated?)")


def _read(path: Path, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".npy"):
        raise EdgefoldError(f"{what} {path}: expected a .npz (array 'x', optional 'y') or a .npy (inputs), "
                            f"got '{path.suffix or 'no extension'}'")
    if not path.is_file():
        raise EdgefoldError(f"{what} {path}: file not found")
    try:
        if suffix == ".npy":
            if zipfile.is_zipfile(path):
                raise EdgefoldError(f"{what} {path}: is a .npz archive saved under a .npy name: rename it to .npz")
            with open(path, "rb") as f:
                _check_npy_size(f, path.stat().st_size, path.name)
            return np.load(path, allow_pickle=False), None
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename in ("x.npy", "y.npy"):
                    with zf.open(info) as member:
                        _check_npy_size(member, info.file_size, info.filename)
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise EdgefoldError(f"{what} {path}: not a .npz archive (a .npy saved under a .npz name?)")
            if "x" not in z.files:
                raise EdgefoldError(f"{what} {path}: no array 'x' (found: {', '.join(z.files) or 'none'})")
            return z["x"], (z["y"] if "y" in z.files else None)
    except EdgefoldError:
        raise
    except _READ_ERRORS as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise EdgefoldError(f"{what} {path}: not a readable {suffix} file: {first}") from None


def load_arrays(path: str | os.PathLike, input_shape: tuple[int, ...], *, what: str = "--data",
                need_labels: bool = False, num_classes: int | None = None, min_samples: int = 1) -> Dataset:
    """Read and check a user data file against the model's input shape (and its number of classes for labels)."""
    p = Path(path)
    x, y = _read(p, what)
    want = tuple(int(v) for v in input_shape[1:])
    if x.dtype.kind != "f":
        raise EdgefoldError(f"{what} {p}: inputs 'x' must be floating point (scaled as the model expects), "
                            f"got {x.dtype}")
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
        raise EdgefoldError(f"{what} {p}: inputs 'x' have shape {_shape_text(x.shape)}; the model needs "
                            f"N,{_shape_text(want)}")
    if x.shape[0] < min_samples:
        raise EdgefoldError(f"{what} {p}: needs at least {min_samples} samples, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise EdgefoldError(f"{what} {p}: inputs 'x' contain NaN or infinite values")
    labels = None
    if y is not None:
        if y.dtype.kind not in "iu":
            raise EdgefoldError(f"{what} {p}: labels 'y' must be integers (class indices), got {y.dtype}")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise EdgefoldError(f"{what} {p}: labels 'y' have shape {_shape_text(y.shape)}; expected "
                                f"{x.shape[0]} (one per sample)")
        if y.size and int(y.min()) < 0:
            raise EdgefoldError(f"{what} {p}: labels 'y' must be >= 0, found {int(y.min())}")
        if num_classes is not None and y.size and int(y.max()) >= num_classes:
            raise EdgefoldError(f"{what} {p}: labels 'y' go up to {int(y.max())} but the model has {num_classes} "
                                "outputs")
        labels = torch.from_numpy(y.astype(np.int64))
    elif need_labels:
        raise EdgefoldError(f"{what} {p}: accuracy needs labels: save them as array 'y' in a .npz next to 'x'")
    return Dataset(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), labels, str(p))


def digits(input_shape: tuple[int, ...], split: str) -> Dataset:
    """The built-in digits resized to the model's input (N,C,H,W only)."""
    from edgefold.compiler import data

    if len(input_shape) != 4:
        raise EdgefoldError(f"the built-in digits are images: they need an N,C,H,W model input, not "
                            f"{_shape_text(input_shape)}; pass --data FILE")
    s = data.load(tuple(input_shape), split)
    return Dataset(s.x.contiguous(), s.y, f"{DIGITS} {split}")


def num_outputs(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int | None:
    """Class count of a classifier (output N x C), else None (the output is not a score vector)."""
    with torch.no_grad():
        out = model.eval()(torch.zeros((1, *input_shape[1:])))
    if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[1] > 1:
        return int(out.shape[1])
    return None


def resolve_data(data: str | None, eval_data: str | None, input_shape: tuple[int, ...], outputs: int | None,
                 zoo_model: bool) -> DataPlan:
    """Which inputs and which labelled data a command uses (see the module docstring for the rule)."""
    notes: list[str] = []
    inputs: Dataset | None = None
    ev: Dataset | None = None
    use_digits = data == DIGITS or (data is None and zoo_model)
    if use_digits:
        inputs = digits(input_shape, "train")
    elif data is not None:
        inputs = load_arrays(data, input_shape, what="--data", num_classes=outputs)
    else:
        notes.append("no --data: a user model gets no built-in data (pass --data FILE or --data digits)")
    if eval_data is not None:
        if outputs is None:
            raise EdgefoldError("--eval-data: the model's output is not a class-score vector (N x C), so there is "
                                "no accuracy to measure")
        ev = load_arrays(eval_data, input_shape, what="--eval-data", need_labels=True, num_classes=outputs)
    elif (use_digits or zoo_model) and outputs == DIGITS_CLASSES:  # zoo models are digit classifiers
        ev = digits(input_shape, "test")
    elif use_digits or zoo_model:
        notes.append(f"accuracy not scored: the model has {outputs or 'no class'} outputs, the digits have "
                     f"{DIGITS_CLASSES} classes")
    else:
        notes.append("accuracy not scored: pass --eval-data FILE.npz with 'x' and labels 'y'")
    return DataPlan(inputs, ev, notes)
