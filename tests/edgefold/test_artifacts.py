"""The hand-off records: JSON round trips, schema/version checks, one-line errors on bad or foreign files."""

from __future__ import annotations

import json

import pytest

from edgefold.core.artifacts import (
    BuildInput,
    CodegenManifest,
    CompressSummary,
    DeployResult,
    ExportSummary,
    TensorIO,
)
from edgefold.core.errors import EdgefoldError

COMPRESS = CompressSummary(method="fold", ratio=0.5, repair="ar", params_before=1000, params_after=260,
                           macs_before=9000, macs_after=2400, seconds=0.25, seed=3, param_ratio=0.26,
                           mac_ratio=0.2667, timings={"graph": 0.1}, accuracy_before=98.0, accuracy_after=91.5,
                           accuracy_data="digits test (360 images)",
                           model={"name": "resnet8", "input_shape": [1, 3, 32, 32]}, label="resnet8",
                           groups=[{"name": "conv1", "n": 16, "k": 8}], files={"model": "model.pt"})
EXPORT = ExportSummary(model="resnet8", input_shape=[1, 3, 32, 32],
                       formats={"tflite-int8": {"file": "model_int8.tflite", "bytes": 1234}}, target_backend="tflm",
                       fidelity={"torch": {"accuracy": 98.0},
                                 "tflite-int8-tflm": {"accuracy": 97.5, "agreement": 99.0}},
                       tflm_arena_bytes=20480, ops={"CONV_2D": 3}, coverage={"status": "covered"}, flags=[])
MANIFEST = CodegenManifest(model_id="0123456789abcdef", arena_bytes=512, weights_bytes=100, macs=960,
                           input=TensorIO([1, 96], "int8", 96, 0.05, 3), output=TensorIO([1, 10], "int8", 10),
                           ops=["FULLY_CONNECTED"], symbols={"run": "ef_model_run"}, files=["model.c", "model.h"])
RESULT = DeployResult(target="nano33ble-qemu", latency={"value": 12.5, "unit": "ms", "kind": "estimated"},
                      device="QEMU", emulated=True, backend="edgefold", model="resnet8", method="fold", ratio=0.5,
                      repair="ar", instructions=1e6, ram={"static": 1, "arena": 2, "stack": 3, "total": 4},
                      flash=5, output_crc_match=True, accuracy={"int8": 97.0}, compress=COMPRESS.brief(),
                      seconds={"build": 1.5}, wall_seconds=9.0)


@pytest.mark.parametrize("record", [COMPRESS, EXPORT, MANIFEST, RESULT], ids=lambda r: type(r).__name__)
def test_round_trip(record, tmp_path):
    again = type(record).from_json(record.to_json())
    assert again == record
    path = record.write(tmp_path / type(record).FILE)
    assert type(record).read(path) == record
    assert json.loads(path.read_text())["schema"] == record.SCHEMA


def test_unknown_keys_survive_and_legacy_files_read():
    doc = RESULT.to_dict() | {"from_a_newer_stage": {"x": 1}}
    r = DeployResult.from_dict(doc)
    assert r.extra == {"from_a_newer_stage": {"x": 1}} and r.to_dict() == doc
    legacy = {k: v for k, v in EXPORT.to_dict().items() if k != "schema"}  # check.json from before the schema field
    assert ExportSummary.from_dict(legacy).tflm_arena_bytes == 20480
    assert COMPRESS.brief()["model"] == "resnet8" and "groups" not in COMPRESS.brief()


@pytest.mark.parametrize("text,match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not an edgefold-result/1 file"),
    ('{"schema": "something-else/9"}', "schema 'something-else/9'"),
    ('{"schema": "edgefold-result/7", "target": "x", "latency": {}}', "not a version this edgefold reads"),
    ('{"schema": "edgefold-result/1", "latency": {}}', "without 'target'"),
    ('{"schema": "edgefold-result/1", "target": 3, "latency": {}}', "'target' must be a string"),
    ('{"schema": "edgefold-result/1", "target": "x", "latency": {}, "flash": "big"}', "'flash' must be an integer"),
    ('{"schema": "edgefold-result/1", "target": "x", "latency": {}, "emulated": 1}', "true or false"),
])
def test_bad_or_foreign_file_is_one_line(tmp_path, text, match):
    p = tmp_path / "result.json"
    p.write_text(text)
    with pytest.raises(EdgefoldError, match=match) as e:
        DeployResult.read(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_nested_and_foreign_records():
    doc = MANIFEST.to_dict()
    doc["input"] = {"shape": [1, 96], "dtype": "int8"}
    with pytest.raises(EdgefoldError, match="no 'bytes'"):
        CodegenManifest.from_dict(doc)
    with pytest.raises(EdgefoldError, match="not an edgefold-codegen/1 file"):
        CodegenManifest.from_dict(EXPORT.to_dict())
    with pytest.raises(EdgefoldError, match="not an edgefold-compress/1 file"):
        CompressSummary.from_dict({"ratio": 0.5})  # no schema and not a legacy compress.json either


def test_build_input_reads_what_the_folder_holds(tmp_path):
    bi = tmp_path / "build-input"
    (bi / "codegen").mkdir(parents=True)
    (bi / "model_int8.tflite").write_bytes(b"x")
    (bi / "input.bin").write_bytes(b"\0" * 96)
    EXPORT.write(bi / "check.json")
    MANIFEST.write(bi / "codegen" / "model.json")
    b = BuildInput.open(bi)
    assert b.files == {"tflite": "model_int8.tflite", "check": "check.json", "codegen": "codegen/model.json",
                       "input": "input.bin"}
    assert b.export == EXPORT and b.codegen == MANIFEST and b.model == "resnet8" and b.ratio == 0.0
    assert b.need("input", "") == bi / "input.bin" and b.file("onnx") is None
    with pytest.raises(EdgefoldError, match=r"no model\.onnx \(export for a Linux target\)"):
        b.need("onnx", "export for a Linux target")
    BuildInput(files=dict(b.files), model="resnet8", kind="mcu", backend="edgefold", ratio=0.25).write(
        bi / BuildInput.FILE)
    (bi / "input.bin").unlink()
    again = BuildInput.open(bi)
    assert again.ratio == 0.25 and again.kind == "mcu" and "input" not in again.files
    assert "path" not in again.to_dict() and "export" not in again.to_dict()
    (bi / "check.json").write_text('{"schema": "edgefold-result/1"}')
    with pytest.raises(EdgefoldError, match="check.json: not an edgefold-export/1 file"):
        BuildInput.open(bi)
