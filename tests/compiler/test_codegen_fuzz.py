"""Fuzz `codegen` past the reader: a mutated .tflite that still parses must be lowered to C or refused with one line
of EdgefoldError (shapes, indices, quantisation that contradict each other), never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path

from edgefold.compiler.codegen import generate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefold.core.errors import EdgefoldError

TINY = Path(__file__).resolve().parents[1] / "targets" / "data" / "tiny_int8.tflite"
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@FUZZ
@given(data=st.data())
def test_mutated_model_is_generated_or_refused_with_one_line(data):
    blob = bytearray(TINY.read_bytes())
    for pos, value in data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)),
                                         min_size=1, max_size=6)):
        blob[pos] = value
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(blob))))
    with tempfile.TemporaryDirectory() as d:
        try:
            generate(bytes(blob if cut is None else blob[:cut]), d)
        except EdgefoldError as e:
            assert str(e) and "\n" not in str(e), repr(str(e))
