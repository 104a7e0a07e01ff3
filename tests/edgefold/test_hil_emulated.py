"""Issue 6 in CI: the emulated matrix (examples/ci/hil-emulated.toml: nano33ble-qemu fold at r=0 and {fold, mag1} at
r=0.5 with 2 recovery epochs, and jetson-local) runs the REAL `edgefold deploy` for every cell and produces JUnit,
JSON, Markdown, HTML and plots;
a deliberately regressed baseline fails the latency gate; injected faults (QEMU killed, UART garbled or stalled)
are errors with a reason while the rest of the matrix continues, and resuming redoes no finished cell.

One matrix run is shared by all tests (module fixture); the later runs reuse its finished cells.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest
from report_checks import check_html_self_contained, png_is_non_trivial, screenshot

from edgefold.hil import supervise

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "examples" / "ci" / "hil-emulated.toml"
QEMU_CELLS = {f"nano33ble-qemu.edgefold.dscnn.{c}.ar" for c in ("fold.r0", "fold.r0.5", "mag1.r0.5")}
JETSON_CELL = "jetson-local.onnxruntime.dscnn.fold.r0.5.ar"


def descendants(pid: int) -> set[int]:
    try:
        return {c.pid for c in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def hil(*args: str | Path, env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, as CI runs it (the timeout guards against a hang: 2 recovering cells on a loaded
    2-core machine take minutes)."""
    return subprocess.run([sys.executable, "-m", "edgefold", "hil", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def env(trained, tmp_path_factory) -> dict[str, str]:
    wdir = tmp_path_factory.mktemp("weights")
    shutil.copy(trained("dscnn", 3), wdir / "dscnn.pt")
    return {**os.environ, "EDGEFOLD_WEIGHTS": str(wdir)}


@pytest.fixture(scope="module")
def ci_run(env, tmp_path_factory):
    out = tmp_path_factory.mktemp("hil")
    t0 = time.time()
    p = hil("--matrix", MATRIX, "--out", out, "--update-baseline", "--baseline", out / "baseline.json", env=env)
    return {"out": out, "proc": p, "secs": time.time() - t0, "hil": json.loads((out / "hil.json").read_text()),
            "junit": ET.parse(out / "junit.xml").getroot(), "summary": (out / "summary.md").read_text()}


def test_ci_matrix_runs_real_deploys(ci_run):
    p, doc = ci_run["proc"], ci_run["hil"]
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    cells = {c["id"]: c for c in doc["cells"]}
    assert set(cells) == QEMU_CELLS | {JETSON_CELL}
    for cid, c in cells.items():
        assert c["status"] == "passed", (cid, c["reason"])
        res = c["result"]
        assert res["schema"] == "edgefold-result/1" and res["output_crc_match"] is True
        assert res["latency"]["value"] > 0 and res["flash"] > 0 and res["ram"]["total"] > 0
        names = {g["name"] for g in c["gates"]}
        assert names >= {"output_crc", "latency"} | ({"agreement", "accuracy_drop", "accuracy_kept", "ram", "flash"}
                                                     if cid in QEMU_CELLS else set())
    for cid in QEMU_CELLS:  # the twin counts instructions; its latency is an estimate and says so
        res = cells[cid]["result"]
        assert res["instructions"] > 0 and res["latency"]["kind"] == "estimated" and res["emulated"] is True
    assert cells[JETSON_CELL]["result"]["latency"]["kind"] == "measured"
    # folding half the channels makes the model cheaper on the twin (instructions are deterministic)
    r0 = cells["nano33ble-qemu.edgefold.dscnn.fold.r0.ar"]["result"]
    r5 = cells["nano33ble-qemu.edgefold.dscnn.fold.r0.5.ar"]["result"]
    assert r5["instructions"] < r0["instructions"] and r5["flash"] < r0["flash"]

    cases = ci_run["junit"].findall(".//testcase")
    assert len(cases) == 4 and ci_run["junit"].get("failures") == "0" and ci_run["junit"].get("errors") == "0"
    assert "4 passed" in ci_run["summary"] and "(est.)" in ci_run["summary"]
    base = json.loads((ci_run["out"] / "baseline.json").read_text())
    assert len(base["cells"]) == 4
    # the compressed cells are gated on the uncompressed model's accuracy: far above chance (10 %), not just
    # int8-agrees-with-float
    for m in ("fold", "mag1"):
        res = cells[f"nano33ble-qemu.edgefold.dscnn.{m}.r0.5.ar"]["result"]
        assert res["accuracy"]["int8"] >= 0.5 * res["compress"]["accuracy_before"] > 30


def test_report_of_the_ci_run_in_chromium(ci_run, tmp_path, cli):
    rc, out, err = cli("report", ci_run["out"], "--out", tmp_path / "report")
    assert rc == 0, err
    rep = tmp_path / "report"
    for name in ("device-nano33ble-qemu.png", "device-jetson-local.png", "accuracy.png", "history-nano33ble-qemu.png"):
        png_is_non_trivial(rep / name)
    html = (rep / "report.html").read_text()
    check_html_self_contained(html)
    from edgefold import report

    cells = {c["id"]: c["result"] for c in ci_run["hil"]["cells"]}
    r = cells["nano33ble-qemu.edgefold.dscnn.fold.r0.5.ar"]
    assert f">≈{report.fmt_ms(r['latency']['value'])}<" in html  # estimated, and marked so
    assert f">{report.fmt_kb(r['flash'])}<" in html and f">{report.fmt_kb(r['ram']['total'])}<" in html
    assert "nano33ble-qemu (twin) · edgefold" in html and "jetson-local (twin) · onnxruntime" in html
    screenshot(rep / "report.html", tmp_path / "shot.png", tmp_path)
    png_is_non_trivial(tmp_path / "shot.png")


def test_regressed_baseline_fails_the_latency_gate(ci_run, env, tmp_path):
    out = ci_run["out"]
    base = json.loads((out / "baseline.json").read_text())
    for entry in base["cells"].values():  # pretend the previous build was twice as fast
        entry["latency"]["value"] /= 2
        if entry.get("instructions"):
            entry["instructions"] //= 2
    regressed = tmp_path / "regressed.json"
    regressed.write_text(json.dumps(base))
    p = hil("--matrix", MATRIX, "--out", out, "--baseline", regressed, "--junit", tmp_path / "j.xml", env=env)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "4 of 4 cells already done" in p.stderr
    fails = ET.parse(tmp_path / "j.xml").getroot().findall(".//failure")
    assert len(fails) == 4
    for f in fails:
        assert f.get("type") == "latency" and f.get("message").startswith("latency gate: regression")
    qemu_fail = next(f for f in fails if "instructions" in f.get("message"))
    assert "+100.0%" in qemu_fail.get("message")


def test_faults_are_recorded_and_resume_redoes_nothing(ci_run, env, tmp_path):
    out = ci_run["out"]
    matrix = tmp_path / "faults.toml"
    matrix.write_text(MATRIX.read_text().replace("${EDGEFOLD_WEIGHTS}", env["EDGEFOLD_WEIGHTS"]) + """
[[matrix]]
target = "nano33ble-qemu"
method = "fold"
ratio = 0.5
fault = ["kill", "garble", "stall"]
args = ["--timeout", "10"]    # the deploy's own wait for the device: a stalled UART ends in a DeviceError
""")
    before = {c["id"]: c["run_id"] for c in ci_run["hil"]["cells"]}
    p = hil("--matrix", matrix, "--out", out, env=env)
    assert p.returncode == 1, p.stdout + p.stderr
    doc = json.loads((out / "hil.json").read_text())
    cells = {c["id"]: c for c in doc["cells"]}
    assert len(cells) == 7
    faults = {cid: c for cid, c in cells.items() if ".fault-" in cid}
    assert len(faults) == 3
    for cid, c in faults.items():
        assert c["status"] == "error" and c["reason"], cid
    for cid, run_id in before.items():  # the rest continued: finished, and from the first run (not redone)
        assert cells[cid]["status"] == "passed" and cells[cid]["reused"] and cells[cid]["run_id"] == run_id
    errs = [tc for tc in ET.parse(out / "junit.xml").getroot().iter("testcase") if tc.find("error") is not None]
    assert sorted(tc.get("name") for tc in errs) == sorted(faults)
    # resume again: every cell is accounted for and none is deployed a second time
    p2 = hil("--matrix", matrix, "--out", out, env=env)
    assert p2.returncode == 1 and "7 of 7 cells already done" in p2.stderr


def test_sigterm_stops_the_matrix_and_kills_the_cell(env, tmp_path):
    """A cancelled CI job (SIGTERM): the deploy in flight and its children are killed, nothing half-done is kept."""
    out = tmp_path / "hil"
    p = subprocess.Popen([sys.executable, "-m", "edgefold", "hil", "--matrix", str(MATRIX), "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    deadline = time.time() + 120
    tree: set[int] = set()
    while time.time() < deadline:
        try:
            running = "running" in json.loads((out / "state.json").read_text())["cells"].values()
        except (OSError, ValueError):
            running = False
        tree = descendants(p.pid)
        if running and tree:  # the deploy subprocess is up (anything it starts is caught by the kill too)
            break
        time.sleep(0.2)
    time.sleep(1.0)
    tree |= descendants(p.pid)
    p.terminate()
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-2000:]
    deadline = time.monotonic() + 30  # killed processes are reaped a moment later
    while [pid for pid in tree if supervise.alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in tree if supervise.alive(pid)] == []
    doc = json.loads((out / "hil.json").read_text())
    assert doc["interrupted"] is True and doc["counts"]["pending"] >= 1
    assert not list((out / "cells").glob("*/cell.json"))  # the killed cell is not recorded as done
    junit = ET.parse(out / "junit.xml").getroot()
    assert junit.find(".//error[@type='interrupted']") is not None
