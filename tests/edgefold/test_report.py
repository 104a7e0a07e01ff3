"""`edgefold report`: Table 2 layout, measured vs estimated marks, self-contained HTML checked in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_checks import check_html_self_contained, png_is_non_trivial, screenshot

from edgefold import report


def result(target: str, method: str, ratio: float, ms: float, kind: str, ram: int, flash: int, int8: float,
           emulated: bool, model: str = "resnet8") -> dict:
    """An edgefold-result/1 document as `edgefold deploy` writes it (input data for the report)."""
    return {"schema": "edgefold-result/1", "target": target, "device": target, "emulated": emulated,
            "backend": "edgefold", "model": model, "method": method, "ratio": ratio, "repair": "ar",
            "latency": {"value": ms, "unit": "ms", "kind": kind, "runs": 2, "per_run": [ms, ms]},
            "instructions": 123456 if emulated else None,
            "ram": {"static": 1000, "arena": ram - 2000, "stack": 1000, "total": ram}, "flash": flash,
            "output_crc_match": True, "accuracy": {"float": int8 + 0.5, "int8": int8, "agreement": 99.0},
            "params": 1, "macs": 1, "wall_seconds": 1.0, "estimate": None}


@pytest.fixture
def results(tmp_path) -> Path:
    root = tmp_path / "runs"
    docs = [result("nano33ble-qemu", "fold", 0.0, 6831.0, "estimated", 60928, 3_565_158, 90.1, True),
            result("nano33ble-qemu", "fold", 0.5, 4218.4, "estimated", 49152, 1_992_294, 80.2, True),
            result("nano33ble-qemu", "mag1", 0.5, 4000.0, "estimated", 49152, 1_992_294, 60.3, True),
            result("esp-eye", "fold", 0.5, 1532.0, "measured", 49152, 1_992_294, 80.2, False),
            result("jetson-local", "fold", 0.5, 1.25, "measured", 1 << 20, 2_000_000, 80.2, True)]
    docs[-1]["backend"], docs[-1]["accuracy"]["int8"] = "onnxruntime", None  # the Jetson runs the float ONNX
    for i, d in enumerate(docs):
        p = root / f"d{i}"
        p.mkdir(parents=True)
        (p / "result.json").write_text(json.dumps(d))
    return root


def test_table2_layout_and_marks(results, tmp_path):
    rows = report.collect([results])
    assert len(rows) == 5
    tables = report.device_tables(rows)
    fold = next(t for t in tables if "fold" in t["title"])
    assert fold["ratios"] == [0.0, 0.5]
    devs = [r[0] for r in fold["rows"] if r[0]]
    assert devs == ["esp-eye · edgefold", "jetson-local (twin) · onnxruntime", "nano33ble-qemu (twin) · edgefold"]
    md = report.markdown(rows, {}, "t")
    assert "| nano33ble-qemu (twin) · edgefold | runtime (ms) | ≈6,831 | ≈4,218 |" in md  # estimated: marked
    assert "| esp-eye · edgefold | runtime (ms) | – | 1,532 |" in md  # measured: unmarked; absent ratio: dash
    assert "| Flash (KB) | 3,481.6 | 1,945.6 |" in md
    assert "| resnet8 | mag1 | ar | – | 60.3 (60.8 / 99.0) |" in md


def test_hil_json_and_deploy_dirs_together(results, tmp_path):
    """hil.json cells with results count (fault cells and errors do not); a later input replaces an earlier row."""
    hil_dir = tmp_path / "hil"
    hil_dir.mkdir()
    newer = result("nano33ble-qemu", "fold", 0.5, 4000.0, "estimated", 49152, 1_992_294, 81.0, True)
    cells = [{"id": "a", "status": "passed", "params": {"fault": None}, "result": newer},
             {"id": "b", "status": "error", "params": {"fault": "kill"}, "result": None},
             {"id": "c", "status": "failed", "params": {"fault": "garble"}, "result": newer}]
    (hil_dir / "hil.json").write_text(json.dumps({"schema": "edgefold-hil/1", "cells": cells}))
    rows = report.collect([results, hil_dir])
    assert len(rows) == 5
    r = next(r for r in rows if r.target == "nano33ble-qemu" and r.method == "fold" and r.ratio == 0.5)
    assert r.runtime_ms == 4000.0 and r.status == "passed" and r.source.endswith("hil.json#a")


def test_report_errors(tmp_path, cli):
    rc, _, err = cli("report", tmp_path / "missing")
    assert rc != 0 and "not found" in err
    (tmp_path / "empty").mkdir()
    rc, _, err = cli("report", tmp_path / "empty")
    assert rc != 0 and "no results" in err and "Traceback" not in err


def test_html_report_in_headless_chromium(results, tmp_path, cli):
    out = tmp_path / "rep"
    rc, o, err = cli("report", results, "--out", out, "--title", "edgefold test report")
    assert rc == 0, err
    for name in ("report.md", "report.html", "report.json", "accuracy.png", "device-nano33ble-qemu.png",
                 "device-esp-eye.png", "device-jetson-local.png"):
        assert (out / name).stat().st_size > 0, name
    for name in ("accuracy.png", "device-esp-eye.png"):
        png_is_non_trivial(out / name)
    html = (out / "report.html").read_text()
    check_html_self_contained(html)
    for value in ("≈6,831", "≈4,218", "1,532", "1.25", "3,481.6", "48.0", "1,024.0",
                  "nano33ble-qemu (twin) · edgefold"):
        assert f">{value}<" in html, value
    assert html.count("data:image/png;base64,") == 4
    shot = tmp_path / "shot.png"
    screenshot(out / "report.html", shot, tmp_path)
    png_is_non_trivial(shot)
