"""Fuzz the checkpoint loader (compiler/checkpoint.py): any bytes load, or fail with one line of EdgefoldError,
never another exception."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import torch
from edgefold.compiler import zoo
from edgefold.compiler.checkpoint import ModelSpec, load_model, save_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefold.core.errors import EdgefoldError

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
SPEC = ModelSpec(name="dscnn", input_shape=zoo.input_shape("dscnn"))


def _seeds() -> list[bytes]:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.pt"
        save_model(p, zoo.build("dscnn"), SPEC)
        ours = p.read_bytes()
    buf = io.BytesIO()
    torch.save(zoo.build("dscnn").state_dict(), buf)
    return [ours, buf.getvalue()]


SEEDS = _seeds()


def _load_or_one_line(blob: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "w.pt"
        p.write_bytes(blob)
        for spec in (None, SPEC):
            try:
                load_model(p, spec)
            except EdgefoldError as e:
                assert str(e) and "\n" not in str(e), repr(str(e))


@FUZZ
@given(data=st.data())
def test_mutated_checkpoint_loads_or_fails_with_one_line(data):
    blob = bytearray(data.draw(st.sampled_from(SEEDS)))
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=8))
    for pos, value in edits:
        blob[pos] = value
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(blob))))
    _load_or_one_line(bytes(blob if cut is None else blob[:cut]))


@FUZZ
@given(st.binary(max_size=300))
def test_garbage_fails_with_one_line(blob):
    _load_or_one_line(blob)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=8), st.floats())
values = st.recursive(scalars | st.builds(torch.zeros, st.integers(0, 3)),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                   max_size=3), max_leaves=8)


@FUZZ
@given(spec=st.one_of(values, st.fixed_dictionaries({}, optional={"name": values, "factory": values,
                                                                    "input_shape": values, "num_classes": values})),
       state_dict=values, plan=values, meta=values)
def test_malformed_edgefold_checkpoint_fails_with_one_line(spec, state_dict, plan, meta):
    """A well-formed torch file whose edgefold fields hold anything (weights_only allows these types)."""
    buf = io.BytesIO()
    torch.save({"format": "edgefold-model/1", "spec": spec, "state_dict": state_dict, "plan": plan, "meta": meta},
               buf)
    _load_or_one_line(buf.getvalue())
