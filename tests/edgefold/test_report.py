"""`edgefold report`: Table 2 layout, measured vs estimated marks, self-contained HTML checked in headless Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from report_checks import (
    check_html_self_contained,
    check_images_load,
    dump_dom,
    parse_dom,
    png_is_non_trivial,
    screenshot,
)

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


# ------------------------------------------------------------------------------- hil runs: gates, baseline, history

FAKE = [sys.executable, str(Path(__file__).with_name("fake_deploy.py"))]  # stand-in deploy (see its docstring)
MATRIX = """
[gates]
agreement_min = 90
latency_regression = "10%"
[[matrix]]
model = "dscnn"
method = ["fold", "mag1"]
ratio = [0, 0.5]
target = "nano33ble-qemu"
[[matrix]]
model = "dscnn"
ratio = 0.5
target = "jetson-local"
[matrix.gates]
latency_regression = false
"""


@pytest.fixture
def three_runs(tmp_path, monkeypatch):
    """Three `edgefold hil` runs in a git work tree sharing one history file: the first writes the baseline, the
    second matches it, the third regresses by 20 % (the latency gate fails)."""
    from edgefold import hil

    for k in ("FAKE_DEPLOY_CALLS", "FAKE_DEPLOY_SLEEP", "FAKE_DEPLOY_SLOW_FACTOR", "FAKE_DEPLOY_BAD_RESULT"):
        monkeypatch.delenv(k, raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    (repo / "m.toml").write_text(MATRIX)
    subprocess.run(git + ["add", "m.toml"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "matrix"], cwd=repo, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    monkeypatch.chdir(repo)
    m = hil.load_matrix(repo / "m.toml")
    hist, base = repo / "history.jsonl", repo / "baseline.json"
    runs = [hil.run_matrix(m, repo / "run1", baseline=base, update_baseline=True, deploy_base=FAKE, history=hist),
            hil.run_matrix(m, repo / "run2", baseline=base, deploy_base=FAKE, history=hist)]
    monkeypatch.setenv("FAKE_DEPLOY_SLOW_FACTOR", "1.2")
    runs.append(hil.run_matrix(m, repo / "run3", baseline=base, deploy_base=FAKE, history=hist))
    assert [r.ok for r in runs] == [True, True, False]
    return {"repo": repo, "history": hist, "commit": commit, "runs": runs}


def test_history_records_every_run(three_runs):
    lines = [json.loads(x) for x in three_runs["history"].read_text().splitlines()]
    assert [x["run_id"] for x in lines] == [r.run_id for r in three_runs["runs"]]
    for x in lines:
        assert x["schema"] == "edgefold-hil-history/1" and x["provenance"]["commit"] == three_runs["commit"]
        assert x["provenance"]["edgefold_version"] and x["provenance"]["date"].endswith("Z")
    assert lines[0]["gates_off"] and not lines[1]["gates_off"]  # run 1 wrote the baseline: its latency gate was off
    assert lines[2]["cells"]["nano33ble-qemu.edgefold.dscnn.fold.r0.none"]["gates"]["latency"] == "FAIL"
    assert lines[2]["counts"]["failed"] == 3 and lines[2]["counts"]["passed"] == 1  # jetson: no latency gate


def test_single_points_and_overlapping_lines_read_at_a_glance(three_runs):
    from edgefold.core.provenance import short_commit

    rows = report.collect([three_runs["repo"] / "run3"])
    fig = report.device_figure(rows, "jetson-local")  # one ratio, one point per panel
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        assert lo < 0 and hi > 0.5 and hi - lo > 0.5  # 0 % .. 50 %, not 0.48 .. 0.52
        assert ax.get_ylim()[0] == 0 and ax.texts  # from zero, and the single point carries its value
    assert fig.legends and fig.legends[0].get_texts()
    fig = report.device_figure(rows, "nano33ble-qemu")  # fold and mag1 have the same RAM and Flash at r=0.5
    ram = fig.axes[1].get_lines()
    assert len(ram) == 2 and {ln.get_marker() for ln in ram} == {"o", "s"} and len({ln.get_linestyle()
                                                                                      for ln in ram}) == 2
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == ["dscnn fold [edgefold] (est.)",
                                                                       "dscnn mag1 [edgefold] (est.)"]
    acc = report.accuracy_figure(rows)
    assert acc.axes[0].get_legend() is not None and acc.axes[0].get_ylim() == (0, 105)
    assert short_commit({"commit": three_runs["commit"], "dirty": False}) == three_runs["commit"][:12]


def test_html_report_with_history_in_headless_chromium(three_runs, tmp_path, cli):
    repo, out = three_runs["repo"], tmp_path / "rep"
    rc, _, err = cli("report", repo / "run3", "--out", out, "--history", three_runs["history"])
    assert rc == 0, err
    png_is_non_trivial(out / "history-nano33ble-qemu.png")
    html = (out / "report.html").read_text()
    check_html_self_contained(html)
    dom_text = dump_dom(out / "report.html", tmp_path)
    dom = parse_dom(dom_text)
    for section in ("provenance", "runs", "gates", "baseline", "history", "tables", "plots"):
        assert section in dom.ids, section
    check_images_load(dom)
    assert len(dom.imgs) == 5  # device x2, accuracy, history x2
    run3 = three_runs["runs"][2]
    commit = three_runs["commit"][:12]
    from edgefold.core.provenance import edgefold_version

    assert run3.run_id in dom_text and commit in dom_text and f"edgefold {edgefold_version()}" in dom_text
    assert dom_text.count(f"<code>{commit}</code>") >= 4  # the run, and the three runs of the history
    assert 'class="v-FAIL"' in dom_text and 'class="v-ok"' in dom_text  # latency FAIL, the others ok
    assert "+20.0%" in dom_text and "instructions" in dom_text  # deltas vs the baseline on the twin's counts
    assert "3 runs recorded in history.jsonl" in dom_text
    md = (out / "report.md").read_text()
    assert "## Gate verdicts" in md and "## Baseline deltas" in md and "## History" in md
    shot = tmp_path / "shot.png"
    screenshot(out / "report.html", shot, tmp_path)
    png_is_non_trivial(shot)


def test_report_says_when_the_latency_gate_was_off(three_runs, tmp_path, cli):
    """Run 1 wrote the baseline: the report of that run shows the gate as off, in the verdicts and the deltas."""
    out = tmp_path / "rep"
    rc, _, err = cli("report", three_runs["repo"] / "run1", "--out", out)
    assert rc == 0, err
    dom = dump_dom(out / "report.html", tmp_path)
    assert 'class="v-off"' in dom  # the jetson cell has no latency gate: 3 of 4
    assert "latency gate OFF for 3 of 4 measured cells (the baseline is being updated" in dom
    assert "+0.0%" in dom  # the baseline it wrote, compared with itself: found relative to where hil ran
