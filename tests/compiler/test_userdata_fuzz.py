"""Fuzz the .npy / .npz reader (compiler/userdata.py): any bytes under either name load, or fail with one line of
EdgefoldError, never another exception."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from edgefold.compiler.userdata import Dataset, load_arrays
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefold.core.errors import EdgefoldError

SHAPE = (1, 1, 2, 3)
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _npz(compressed: bool, **arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


X = np.arange(12, dtype=np.float32).reshape(2, 1, 2, 3)
Y = np.array([0, 1], dtype=np.int64)
SEEDS = {
    ".npy": [_npy(X), _npy(X.astype(np.float64)), _npy(Y)],
    ".npz": [_npz(False, x=X, y=Y), _npz(True, x=X, y=Y), _npz(False, x=X)],
}


def _load_or_one_line(blob: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"data{suffix}"
        p.write_bytes(blob)
        for labels in (False, True):
            try:
                got = load_arrays(p, SHAPE, need_labels=labels and suffix == ".npz", num_classes=10)
            except EdgefoldError as e:
                assert str(e) and "\n" not in str(e), repr(str(e))
            else:
                assert isinstance(got, Dataset) and tuple(got.x.shape[1:]) == SHAPE[1:]


@FUZZ
@given(suffix=st.sampled_from([".npy", ".npz"]), data=st.data())
def test_mutated_files_load_or_fail_with_one_line(suffix, data):
    blob = bytearray(data.draw(st.sampled_from(SEEDS[suffix])))
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=8))
    for pos, value in edits:
        blob[pos] = value
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(blob))))
    _load_or_one_line(bytes(blob if cut is None else blob[:cut]), suffix)


@FUZZ
@given(suffix=st.sampled_from([".npy", ".npz"]), blob=st.binary(max_size=300))
def test_garbage_fails_with_one_line(suffix, blob):
    _load_or_one_line(blob, suffix)


@FUZZ
@given(suffix=st.sampled_from([".npy", ".npz"]),
       header=st.text(alphabet=st.characters(codec="latin-1"), max_size=120), body=st.binary(max_size=64))
def test_any_npy_header_fails_with_one_line(suffix, header, body):
    """The .npy header is a Python literal numpy parses: any text there (huge shapes, odd dtypes, bad syntax)."""
    raw = header.encode("latin-1")
    blob = b"\x93NUMPY\x01\x00" + len(raw).to_bytes(2, "little") + raw + body
    if suffix == ".npz":
        buf = io.BytesIO()
        import zipfile

        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("x.npy", blob)
        blob = buf.getvalue()
    _load_or_one_line(blob, suffix)
