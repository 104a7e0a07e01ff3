"""Fuzz the HIL matrix loader (edgefold/hil/matrix.py): any file loads, or fails with one line of EdgefoldError,
never another exception. Documents are random TOML built from the matrix's own keys (so the checks after parsing
are reached), mutated valid matrices and raw bytes."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgefold import hil
from edgefold.core.errors import EdgefoldError

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
VALID = """[defaults]
runs = 2
timeout = 30
[gates]
agreement_min = 90
ram_max = "256K"
[devices.nano33ble]
usb = ["2341:805a"]
options = {cpi = "1.2"}
[[matrix]]
model = "dscnn"
method = ["fold", "mag1"]
ratio = [0.0, 0.5]
target = ["nano33ble-qemu", "jetson-local"]
"""
KEYS = ["defaults", "gates", "devices", "matrix", "model", "method", "ratio", "repair", "target", "backend", "runs",
        "timeout", "fault", "weights", "args", "usb", "port", "options", "agreement_min", "accuracy_min",
        "accuracy_drop_max", "latency_regression", "ram_max", "flash_max", "output_crc", "nano33ble",
        "nano33ble-qemu", "jetson-local"]
WORDS = ["dscnn", "resnet8", "fold", "mag1", "none", "repair", "nano33ble-qemu", "nano33ble", "jetson-local",
         "edgefold", "tflm", "kill", "2341:805a", "256K", "1.2.3", "10%", "%", "${HOME}", "${NOPE_X}", "", ".."]


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(_toml(i) for i in v) + "]"
    assert isinstance(v, dict)
    return "{" + ", ".join(f"{_toml(k)} = {_toml(i)}" for k, i in v.items()) + "}"


keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=6))
scalars = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(),
                    st.sampled_from(WORDS), st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=12)


def _load_or_one_line(text: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.toml"
        p.write_bytes(text)
        try:
            hil.load_matrix(p)
        except EdgefoldError as e:
            assert str(e) and "\n" not in str(e), repr(str(e))


@FUZZ
@given(doc=st.dictionaries(keys, values, max_size=5))
@example(doc={"gates": {"ram_max": "1.2.3"}, "matrix": {"model": "dscnn", "target": "nano33ble-qemu"}})
@example(doc={"gates": {"flash_max": "._"}, "matrix": {"model": "dscnn", "target": "nano33ble-qemu"}})
@example(doc={"defaults": {"timeout": math.inf}, "matrix": {"model": "dscnn", "target": "nano33ble-qemu"}})
@example(doc={"devices": {"nano33ble": "x"}, "matrix": {"model": "dscnn", "target": "nano33ble"}})
def test_random_documents_load_or_fail_with_one_line(doc):
    _load_or_one_line("\n".join(f"{_toml(k)} = {_toml(v)}" for k, v in doc.items()).encode())


@FUZZ
@given(data=st.data())
def test_mutated_matrix_loads_or_fails_with_one_line(data):
    blob = bytearray(VALID.encode())
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=6))
    for pos, value in edits:
        blob[pos] = value
    _load_or_one_line(bytes(blob))


@FUZZ
@given(st.binary(max_size=200))
def test_raw_bytes_fail_with_one_line(blob):
    _load_or_one_line(blob)


def test_directory_and_unreadable_paths_are_one_line(tmp_path):
    for bad in (tmp_path, tmp_path / "missing.toml"):
        try:
            hil.load_matrix(bad)
        except EdgefoldError as e:
            assert "\n" not in str(e)
