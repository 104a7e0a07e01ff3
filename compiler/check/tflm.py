"""Run a .tflite on the TensorFlow Lite Micro host interpreter (`tflite-micro`) and measure its arena.

The host build is 64-bit, so pointer-sized bookkeeping makes its arena a little larger than on a 32-bit MCU:
the figure is an estimate of what the board firmware needs, not an exact value.
"""

from __future__ import annotations

import re

import numpy as np
from edgefold.compiler.check.capture import capture_fd2

from edgefold.core.errors import EdgefoldError

_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_MAX_ARENA = 64 << 20


def _runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise EdgefoldError(f"tflite-micro is not installed ({e}); pip install the pinned tflite-micro") from None
    return runtime


def _interpreter(blob: bytes, arena_size: int):
    """A TFLM interpreter; RuntimeError (with TFLM's own messages) if the arena is too small or an op is missing."""
    runtime = _runtime()
    with capture_fd2() as cap:
        try:
            return runtime.Interpreter.from_bytes(bytes(blob), arena_size=int(arena_size))
        except RuntimeError as e:
            err = e
        except Exception as e:  # noqa: BLE001 - the wrapper parses the flatbuffer in Python first
            raise EdgefoldError(f"TFLM cannot read the model: {type(e).__name__}: {str(e)[:200]}") from None
    detail = " ".join(line.strip() for line in cap.text.splitlines() if line.strip())[:400]
    raise RuntimeError(f"{err}{': ' + detail if detail else ''}")


def _interpreter_any_arena(blob: bytes, arena_size: int | None):
    if len(blob) < 8 or bytes(blob[4:8]) != b"TFL3":
        raise EdgefoldError("not a .tflite flatbuffer (missing the TFL3 file identifier)")
    size = arena_size or max(256 << 10, 4 * len(blob))
    while True:
        try:
            return _interpreter(blob, size)
        except RuntimeError as e:
            too_small = "allocate" in str(e).lower() or "resize buffer" in str(e).lower()
            if arena_size is None and too_small and size < _MAX_ARENA:
                size *= 4
                continue
            raise EdgefoldError(f"TFLM cannot load the model: {str(e)[:400]}") from None


def tflm_invoke(blob: bytes, inputs: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    """Run each sample of `inputs` (N x model input shape without batch, or N x 1 x ...) through TFLM.

    Inputs must already be in the model's input type (int8 for a full-integer model); returns the raw
    outputs stacked along axis 0 (int8 for a full-integer model).
    """
    it = _interpreter_any_arena(blob, arena_size)
    det = it.get_input_details(0)
    shape, dtype = tuple(int(v) for v in det["shape"]), np.dtype(det["dtype"])
    x = np.asarray(inputs)
    if x.dtype != dtype:
        raise EdgefoldError(f"TFLM model wants {dtype} inputs, got {x.dtype}")
    per_sample = shape[1:] if shape and shape[0] == 1 else shape
    if x.shape[1:] != per_sample:
        raise EdgefoldError(f"TFLM model wants inputs of shape N x {per_sample}, got {x.shape}")
    outs = []
    for i in range(len(x)):
        it.set_input(np.ascontiguousarray(x[i : i + 1]).reshape(shape), 0)
        it.invoke()
        outs.append(np.array(it.get_output(0), copy=True))
    if not outs:
        return np.zeros((0,), dtype=dtype)
    return np.concatenate(outs, axis=0)


def tflm_arena_bytes(blob: bytes) -> int:
    """The smallest tensor arena the TFLM host interpreter runs the model with (64-bit host estimate).

    Reads the RecordingMicroAllocator's total after one inference; falls back to bisection if the
    report cannot be parsed.
    """
    it = _interpreter_any_arena(blob, None)
    det = it.get_input_details(0)
    it.set_input(np.zeros(tuple(int(v) for v in det["shape"]), dtype=det["dtype"]), 0)
    it.invoke()
    with capture_fd2() as cap:
        it.print_allocations()
    m = _TOTAL.search(cap.text)
    if m:
        return int(m.group(1))
    return _bisect_arena(blob)


def _fits(blob: bytes, size: int) -> bool:
    try:
        it = _interpreter(blob, size)
    except RuntimeError:
        return False
    det = it.get_input_details(0)
    it.set_input(np.zeros(tuple(int(v) for v in det["shape"]), dtype=det["dtype"]), 0)
    it.invoke()
    return True


def _bisect_arena(blob: bytes) -> int:
    hi = 256 << 10
    while not _fits(blob, hi):
        hi *= 2
        if hi > _MAX_ARENA:
            raise EdgefoldError(f"TFLM needs more than {_MAX_ARENA} bytes of arena for this model")
    lo = 0  # invariant: lo does not fit, hi fits
    while hi - lo > 16:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _fits(blob, mid) else (mid, hi)
    return hi
