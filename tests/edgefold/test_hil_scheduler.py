"""HIL scheduler, gates and outputs, driven by tests/edgefold/fake_deploy.py (a stand-in for `edgefold deploy`
that answers in milliseconds). The real deploy against the emulated twins is exercised in test_hil_emulated.py."""

from __future__ import annotations

import json
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest
from edgefold.targets import usb

from edgefold import hil
from edgefold.core.errors import EdgefoldError
from edgefold.hil import gates, state, supervise

FAKE = [sys.executable, str(Path(__file__).with_name("fake_deploy.py"))]



def _gone(pids, within_s: float = 30.0) -> list[int]:
    """The pids still alive after waiting for them to exit (a killed process is not gone the same instant)."""
    deadline = time.monotonic() + within_s
    while (left := [p for p in pids if supervise.alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left

def write_matrix(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "m.toml"
    p.write_text(text)
    return p


def calls(path: Path) -> list[list[str]]:
    return [ln.split() for ln in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def fake_env(tmp_path, monkeypatch):
    log = tmp_path / "calls.txt"
    monkeypatch.setenv("FAKE_DEPLOY_CALLS", str(log))
    monkeypatch.delenv("FAKE_DEPLOY_SLEEP", raising=False)
    monkeypatch.delenv("FAKE_DEPLOY_SLOW_FACTOR", raising=False)
    monkeypatch.delenv("FAKE_DEPLOY_BAD_RESULT", raising=False)
    monkeypatch.delenv("FAKE_DEPLOY_VANISH", raising=False)
    return log


BASIC = """
[defaults]
runs = 2
timeout = 30

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
target = ["jetson-local", "nano33ble"]
"""


# ------------------------------------------------------------------------------------------ matrix parsing


def test_matrix_expands_axes_and_defaults(tmp_path):
    m = hil.load_matrix(write_matrix(tmp_path, BASIC))
    ids = [c.id for c in m.cells]
    assert len(ids) == 5 and len(set(ids)) == 5  # fold x mag1 at r=0 is one deployment: mag1's is dropped
    assert "nano33ble-qemu.edgefold.dscnn.mag1.r0.none" not in ids
    assert len(m.notices) == 1 and "mag1.r0.none dropped: the same deployment as nano33ble-qemu.edgefold.dscnn." \
        "fold.r0.none" in m.notices[0]
    assert "nano33ble-qemu.edgefold.dscnn.mag1.r0.5.none" in ids
    assert "jetson-local.onnxruntime.dscnn.fold.r0.none" in ids
    c = m.cells[0]
    assert c.runs == 2 and c.timeout_s == 30 and c.gates.agreement_min == 90 and c.gates.latency_regression == 0.10
    assert {"2341:805a", "2341:005a"} <= set(m.devices["nano33ble"].usb) and m.devices["nano33ble"].kind == "serial"
    assert m.devices["jetson-local"].kind == "twin"


@pytest.mark.parametrize("text, needle", [
    ('[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"\nmethod="prune"', "method 'prune'"),
    ('[[matrix]]\nmodel="dscnn"\ntarget="mars-rover"', "unknown target 'mars-rover'"),
    ('[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"\nratio=1.5', "ratio must be"),
    ('[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"\ncolour="red"', "unknown key 'colour'"),
    ('[[matrix]]\nmodel="dscnn"\ntarget="nano33ble"\nfault="kill"', "only for emulated targets"),
    ('[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"\n[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"',
     "already defined"),
    ('[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"\n[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"\n'
     'method="mag1"\n[matrix.gates]\nram_max="1K"', "the same deployment as"),
    ('[gates]\nspeed=3\n[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"', "unknown gate 'speed'"),
    ('[gates]\naccuracy_kept_min=50\n[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"', "share of the float"),
    ('[gates]\nram_max="lots"\n[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"', "size like 256K"),
    ('[[matrix]]\ntarget="nano33ble-qemu"', "'model' is required"),
    ('[[matrix]\nmodel=', "m.toml"),
    ('[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"\nweights="${HIL_UNSET_X}/a.pt"', "HIL_UNSET_X, which"),
    ('[[matrix]]\nmodel="dscnn"\ntarget="jetson-local"\nbackend="tflm"', "backend for jetson-local"),
    ('[devices.nano33ble]\nusb=["2341"]\n[[matrix]]\nmodel="dscnn"\ntarget="nano33ble"', "VID:PID"),
])
def test_matrix_errors_are_one_line(tmp_path, text, needle):
    with pytest.raises(EdgefoldError) as e:
        hil.load_matrix(write_matrix(tmp_path, text))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_identical_cells_only_at_ratio_0_without_fit_or_recovery(tmp_path):
    text = '[[matrix]]\nmodel="dscnn"\nmethod=["fold", "mag1"]\nratio=[0, 0.25]\nrepair=["none", "repair"]\n' \
           'target="nano33ble-qemu"\n'
    m = hil.load_matrix(write_matrix(tmp_path, text))
    assert len(m.cells) == 6 and len(m.notices) == 2  # r=0 x {none, repair}: repair re-estimates BatchNorm
    m = hil.load_matrix(write_matrix(tmp_path, text + 'args=["--recover", "--recover-epochs", "1"]\n'))
    assert len(m.cells) == 8 and not m.notices  # recovery trains each method's model: not the same deployment


def test_accuracy_kept_gate_fails_a_chance_level_model():
    cell = hil.Cell("dscnn", "mag1", 0.5, "ar", "nano33ble-qemu", "edgefold",
                    gates=hil.Gates.parse({"accuracy_kept_min": "90%", "latency_regression": False}, "t",
                                          base=hil.Gates(output_crc=False)))
    res = {"latency": {"value": 1.0, "unit": "ms"}, "compress": {"accuracy_before": 91.1},
           "accuracy": {"float": 9.9, "int8": 9.7, "agreement": 100.0}}
    g = hil.evaluate_gates(cell, res, None)
    assert [x.name for x in g] == ["accuracy_kept"] and not g[0].ok
    assert "int8 9.70% keeps 10.6% of the uncompressed float model's 91.10% (< 90%)" in g[0].message
    res["accuracy"]["int8"] = 90.0
    assert hil.evaluate_gates(cell, res, None)[0].ok
    del res["compress"]
    assert "not reported" in hil.evaluate_gates(cell, res, None)[0].message


def test_sizes_and_fractions():
    assert hil.parse_bytes("256K", "x") == 262144 and hil.parse_bytes("1M", "x") == 1048576
    assert hil.parse_bytes("983,040", "x") == 983040 and hil.parse_bytes(4096, "x") == 4096
    assert hil.parse_fraction("10%", "x") == pytest.approx(0.10) and hil.parse_fraction(0.25, "x") == 0.25


# ------------------------------------------------------------------------------------------ devices


def test_devices_by_vid_pid_and_port(tmp_path):
    dev = hil.DeviceConfig("nano33ble", "serial", ["2341:805a", "2341:005a"])
    boot = [usb.SerialDevice("/dev/ttyACM3", "2341:005a"), usb.SerialDevice("/dev/ttyUSB0", "10c4:ea60")]
    lane = hil.resolve_lane(dev, boot)
    assert lane.absent is None and lane.port == "/dev/ttyACM3"  # the bootloader PID counts as present
    esp = hil.resolve_lane(hil.DeviceConfig("esp-eye", "serial", ["10c4:ea60"]), boot)
    assert esp.port == "/dev/ttyUSB0"
    gone = hil.resolve_lane(dev, [])
    assert gone.absent and "2341:805a" in gone.absent
    named = hil.resolve_lane(hil.DeviceConfig("nano33ble", "serial", [], port=str(tmp_path / "ttyNOPE")), boot)
    assert named.absent and "not present" in named.absent
    ssh = hil.resolve_lane(hil.DeviceConfig("jetson-nano", "ssh"), [])
    assert ssh.absent and "no host configured" in ssh.absent
    closed = hil.resolve_lane(hil.DeviceConfig("jetson-nano", "ssh", options={"host": "127.0.0.1", "port": "1"}), [])
    assert closed.absent and "127.0.0.1:1 unreachable" in closed.absent


# ------------------------------------------------------------------------------------------ runs


def test_run_skips_absent_device_and_writes_outputs(tmp_path, fake_env):
    m = hil.load_matrix(write_matrix(tmp_path, BASIC))
    run = hil.run_matrix(m, tmp_path / "out", deploy_base=FAKE, ports=[])
    c = run.counts()
    assert c == {"passed": 4, "failed": 0, "error": 0, "skipped": 1, "pending": 0}
    assert not any("nano33ble " in " ".join(x) for x in calls(fake_env))  # the absent board was never deployed
    skipped = [o for o in run.outcomes if o.status == "skipped"][0]
    assert skipped.cell.target == "nano33ble" and "no device with USB id" in skipped.reason

    out = tmp_path / "out"
    doc = json.loads((out / "hil.json").read_text())
    assert doc["schema"] == "edgefold-hil/1" and len(doc["cells"]) == 5
    assert len(doc["notices"]) == 1 and "dropped" in doc["notices"][0]
    passed = [x for x in doc["cells"] if x["status"] == "passed"]
    assert all(x["result"]["latency"]["value"] > 0 for x in passed)
    root = ET.parse(out / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 5 and root.get("skipped") == "1" and root.get("failures") == "0"
    sk = [tc for tc in cases if tc.find("skipped") is not None]
    assert len(sk) == 1 and "USB id" in sk[0].find("skipped").get("message")
    md = (out / "summary.md").read_text()
    assert "4 passed" in md and "1 skipped" in md and "`jetson-local.onnxruntime.dscnn.fold.r0.none`" in md
    state = json.loads((out / "state.json").read_text())
    assert state["interrupted"] is False and state["cells"]["nano33ble.edgefold.dscnn.fold.r0.none"] == "skipped"


def test_lanes_parallel_cells_on_one_device_sequential(tmp_path, fake_env, monkeypatch):
    monkeypatch.setenv("FAKE_DEPLOY_SLEEP", "0.6")
    m = hil.load_matrix(write_matrix(tmp_path, """
[[matrix]]
model = "dscnn"
ratio = [0, 0.5]
target = ["nano33ble-qemu", "jetson-local"]
"""))
    hil.run_matrix(m, tmp_path / "out", deploy_base=FAKE)
    spans: dict[tuple, list[float]] = {}
    for _kind, t, target, *rest in calls(fake_env):
        spans.setdefault((target, *rest), []).append(float(t))
    by_target: dict[str, list[tuple[float, float]]] = {}
    for (target, *_), (s, e) in spans.items():
        by_target.setdefault(target, []).append((s, e))
    for iv in by_target.values():  # one device: never two deploys at once
        iv.sort()
        assert iv[0][1] <= iv[1][0]
    a, b = by_target["nano33ble-qemu"], by_target["jetson-local"]
    assert any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)  # two devices: they did overlap


def test_faults_are_errors_and_the_rest_continues(tmp_path, fake_env):
    m = hil.load_matrix(write_matrix(tmp_path, """
[[matrix]]
model = "dscnn"
target = "nano33ble-qemu"
ratio = [0, 0.5]

[[matrix]]
model = "dscnn"
target = "nano33ble-qemu"
ratio = 0.25
fault = ["kill", "garble", "stall"]
timeout = 3
"""))
    t0 = time.time()
    run = hil.run_matrix(m, tmp_path / "out", deploy_base=FAKE)
    assert time.time() - t0 < 300  # the stalled cell is killed at its 3 s timeout; its child would sleep 600 s
    st = {o.cell.id: o for o in run.outcomes}
    assert run.counts()["passed"] == 2 and run.counts()["error"] == 3 and not run.ok
    assert "emulator exited" in st["nano33ble-qemu.edgefold.dscnn.fold.r0.25.none.fault-kill"].reason
    assert "exited 4" in st["nano33ble-qemu.edgefold.dscnn.fold.r0.25.none.fault-garble"].reason
    stall = st["nano33ble-qemu.edgefold.dscnn.fold.r0.25.none.fault-stall"]
    assert "timed out after 3 s" in stall.reason
    child = int((tmp_path / "out/cells" / stall.cell.id / "deploy/child.pid").read_text())
    assert _gone([child]) == [], "the stalled deploy's child survived the group kill"
    root = ET.parse(tmp_path / "out/junit.xml").getroot()
    errs = [tc for tc in root.iter("testcase") if tc.find("error") is not None]
    assert len(errs) == 3 and all(tc.find("error").get("message") for tc in errs)


def test_interrupted_run_resumes_without_redoing_cells(tmp_path, fake_env, monkeypatch):
    monkeypatch.setenv("FAKE_DEPLOY_SLEEP", "0.4")
    m = hil.load_matrix(write_matrix(tmp_path, """
[[matrix]]
model = "dscnn"
ratio = [0, 0.25, 0.5, 0.7]
target = "nano33ble-qemu"
"""))
    out = tmp_path / "out"
    stop = threading.Event()

    def interrupt_after_first():
        while not list((out / "cells").glob("*/cell.json")):
            time.sleep(0.05)
        stop.set()

    threading.Thread(target=interrupt_after_first, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        hil.run_matrix(m, out, deploy_base=FAKE, stop=stop)
    done_first = {p.parent.name for p in (out / "cells").glob("*/cell.json")}
    assert 1 <= len(done_first) < 4
    doc = json.loads((out / "hil.json").read_text())
    assert doc["interrupted"] is True and doc["counts"]["pending"] >= 1
    assert json.loads((out / "state.json").read_text())["interrupted"] is True
    n_first = len([c for c in calls(fake_env) if c[0] == "start"])

    run = hil.run_matrix(m, out, deploy_base=FAKE)
    assert run.ok and run.counts()["passed"] == 4
    assert {o.cell.id for o in run.outcomes if o.reused} == done_first
    starts = [c for c in calls(fake_env) if c[0] == "start"]
    assert len(starts) - n_first == 4 - len(done_first)  # finished cells were not deployed again
    # a third run deploys nothing at all
    hil.run_matrix(m, out, deploy_base=FAKE)
    assert len([c for c in calls(fake_env) if c[0] == "start"]) == len(starts)


def test_board_lost_mid_run(tmp_path, fake_env, monkeypatch):
    """A named port that vanishes during a cell: that cell errs as 'device lost', the next one on the board too
    (without deploying), other devices carry on; the lost cells are retried when the run is resumed."""
    port = tmp_path / "ttyACM9"
    port.write_text("")
    m = hil.load_matrix(write_matrix(tmp_path, f"""
[devices.nano33ble]
port = "{port}"
[[matrix]]
model = "dscnn"
ratio = [0, 0.5]
target = ["nano33ble", "nano33ble-qemu"]
"""))
    monkeypatch.setenv("FAKE_DEPLOY_VANISH", "1")
    run = hil.run_matrix(m, tmp_path / "out", deploy_base=FAKE, ports=[])
    st = {o.cell.id: o for o in run.outcomes}
    first, second = st["nano33ble.edgefold.dscnn.fold.r0.none"], st["nano33ble.edgefold.dscnn.fold.r0.5.none"]
    assert first.status == "error" and first.reason.startswith("device lost during the cell") and "vanished" in \
        first.reason
    assert second.status == "error" and "device lost before this cell" in second.reason
    assert len([c for c in calls(fake_env) if c[0] == "start" and c[2] == "nano33ble"]) == 1
    assert st["nano33ble-qemu.edgefold.dscnn.fold.r0.5.none"].status == "passed"  # the other device carried on
    # board back: the never-run cell is deployed on resume, the recorded error is kept (no --retry-errors)
    monkeypatch.delenv("FAKE_DEPLOY_VANISH")
    port.write_text("")
    run2 = hil.run_matrix(m, tmp_path / "out", deploy_base=FAKE, ports=[])
    st2 = {o.cell.id: o for o in run2.outcomes}
    assert st2["nano33ble.edgefold.dscnn.fold.r0.5.none"].status == "passed"
    assert st2[first.cell.id].status == "error" and st2[first.cell.id].reused


def test_one_run_per_output_folder(tmp_path, fake_env):
    m = hil.load_matrix(write_matrix(tmp_path, '[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"\n'))
    (tmp_path / "out").mkdir()
    with state.exclusive(tmp_path / "out"), pytest.raises(EdgefoldError, match="another `edgefold hil` is running"):
        hil.run_matrix(m, tmp_path / "out", deploy_base=FAKE)
    assert hil.run_matrix(m, tmp_path / "out", deploy_base=FAKE).ok  # released with the first run


def test_resume_redoes_a_cell_whose_options_changed(tmp_path, fake_env):
    text = '[[matrix]]\nmodel = "dscnn"\ntarget = "nano33ble-qemu"\nruns = {}\n'
    out = tmp_path / "out"
    hil.run_matrix(hil.load_matrix(write_matrix(tmp_path, text.format(2))), out, deploy_base=FAKE)
    hil.run_matrix(hil.load_matrix(write_matrix(tmp_path, text.format(3))), out, deploy_base=FAKE)
    assert len([c for c in calls(fake_env) if c[0] == "start"]) == 2


# ------------------------------------------------------------------------------------------ gates


def test_latency_regression_gate_and_baseline_update(tmp_path, fake_env, monkeypatch):
    mpath = write_matrix(tmp_path, """
[gates]
latency_regression = "10%"
agreement_min = 90
[[matrix]]
model = "dscnn"
ratio = [0, 0.5]
target = "nano33ble-qemu"
""")
    m = hil.load_matrix(mpath)
    base = tmp_path / "baseline.json"
    run = hil.run_matrix(m, tmp_path / "a", baseline=base, update_baseline=True, deploy_base=FAKE)
    assert run.ok
    doc = json.loads(base.read_text())
    assert doc["schema"] == "edgefold-hil-baseline/1" and len(doc["cells"]) == 2
    assert doc["cells"]["nano33ble-qemu.edgefold.dscnn.fold.r0.none"]["instructions"] == 1_000_000

    same = hil.run_matrix(m, tmp_path / "b", baseline=base, deploy_base=FAKE)
    assert same.ok and all(g.ok for o in same.outcomes for g in o.gates)

    monkeypatch.setenv("FAKE_DEPLOY_SLOW_FACTOR", "1.2")  # 20% more instructions: over the +10% limit
    slow = hil.run_matrix(m, tmp_path / "c", baseline=base, deploy_base=FAKE, junit=tmp_path / "c.xml")
    assert not slow.ok and slow.counts()["failed"] == 2
    fails = ET.parse(tmp_path / "c.xml").getroot().findall(".//failure")
    assert len(fails) == 2 and all(f.get("type") == "latency" and "latency gate" in f.get("message") for f in fails)
    assert "+20.0%" in fails[0].get("message")
    assert "latency gate" in (tmp_path / "c/summary.md").read_text()


def test_bad_result_and_missing_baseline(tmp_path, fake_env, monkeypatch):
    m = hil.load_matrix(write_matrix(tmp_path, '[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"\n'))
    with pytest.raises(EdgefoldError, match="--update-baseline"):
        hil.run_matrix(m, tmp_path / "out", baseline=tmp_path / "none.json", deploy_base=FAKE)
    monkeypatch.setenv("FAKE_DEPLOY_BAD_RESULT", "1")
    run = hil.run_matrix(m, tmp_path / "out", deploy_base=FAKE)
    assert run.outcomes[0].status == "error" and "schema" in run.outcomes[0].reason


def test_budget_agreement_and_crc_gates():
    cell = hil.Cell("dscnn", "fold", 0.5, "none", "nano33ble-qemu", "edgefold",
                    gates=hil.Gates(agreement_min=99.5, accuracy_min=50, accuracy_drop_max=0.1, ram_max=1000,
                                    flash_max=10**6, latency_regression=None))
    res = {"latency": {"value": 1.0, "unit": "ms"}, "ram": {"total": 2000}, "flash": 5000, "output_crc_match": False,
           "accuracy": {"float": 90.0, "int8": 89.0, "agreement": 98.0}}
    g = {x.name: x for x in hil.evaluate_gates(cell, res, None)}
    assert not g["agreement"].ok and "98.00% < 99.5%" in g["agreement"].message
    assert g["accuracy"].ok and not g["accuracy_drop"].ok
    assert not g["ram"].ok and "ram gate" in g["ram"].message and g["flash"].ok
    assert not g["output_crc"].ok
    res["accuracy"] = None  # a gate that cannot be checked does not pass
    assert not {x.name: x for x in hil.evaluate_gates(cell, res, None)}["agreement"].ok


def test_latency_gate_units():
    r = {"latency": {"value": 1200.0, "unit": "us"}, "instructions": None}
    assert gates.latency_gate(r, {"latency": {"value": 1.0, "unit": "ms"}}, 0.1).ok is False
    assert gates.latency_gate(r, {"latency": {"value": 1.1, "unit": "ms"}}, 0.1).ok is True
    assert gates.latency_gate(r, None, 0.1).applied is False


def test_cli_dry_run_and_errors(tmp_path, cli):
    m = write_matrix(tmp_path, BASIC)
    rc, out, err = cli("hil", "--matrix", m, "--out", tmp_path / "o", "--dry-run")
    assert rc == 0 and "nano33ble-qemu.edgefold.dscnn.fold.r0.none" in out and "skip (" in out
    boards_only = write_matrix(tmp_path, '[[matrix]]\nmodel="dscnn"\ntarget=["nano33ble", "esp-eye"]\n')
    if not usb.list_devices():  # no board attached here: all skipped, and that is not a green run
        rc, out, err = cli("hil", "--matrix", boards_only, "--out", tmp_path / "o2")
        assert rc == 1 and "every cell was skipped" in err
        root = ET.parse(tmp_path / "o2/junit.xml").getroot()
        assert root.get("skipped") == "2" and root.get("tests") == "2"
    rc, out, err = cli("hil", "--matrix", tmp_path / "nope.toml", "--out", tmp_path / "o")
    assert rc != 0 and "not found" in err and "Traceback" not in err


def test_no_stray_processes_left(tmp_path, fake_env):
    """After a timeout kill nothing of the cell's tree is left running (checked with psutil)."""
    m = hil.load_matrix(write_matrix(tmp_path, '[[matrix]]\nmodel="dscnn"\ntarget="nano33ble-qemu"\n'
                                               'fault="stall"\ntimeout=2\n'))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    hil.run_matrix(m, tmp_path / "out", deploy_base=FAKE)
    assert _gone({p.pid for p in psutil.Process().children(recursive=True)} - before) == []


def test_no_baseline_says_the_latency_gate_is_off(tmp_path, fake_env, monkeypatch, cli):
    """Without --baseline the run can pass, but every output says the latency gate was OFF, never 'ok'."""
    import functools

    m = write_matrix(tmp_path, '[[matrix]]\nmodel="dscnn"\nratio=[0, 0.5]\ntarget="nano33ble-qemu"\n')
    monkeypatch.setattr(hil, "run_matrix", functools.partial(hil.run_matrix, deploy_base=FAKE))
    rc, out, err = cli("hil", "--matrix", m, "--out", tmp_path / "o")
    assert rc == 0, err
    assert "latency gate OFF for 2 of 2 measured cells (no baseline for this cell)" in out
    assert "--update-baseline --baseline FILE" in out
    doc = json.loads((tmp_path / "o/hil.json").read_text())
    assert doc["gates_off"] and all(
        next(g for g in c["gates"] if g["name"] == "latency")["verdict"] == "off" for c in doc["cells"])
    junit = ET.parse(tmp_path / "o/junit.xml").getroot()
    assert junit.find(".//property[@name='gate_off.0']").get("value").startswith("latency gate OFF for 2 of 2")
    assert "gate latency: off: no baseline" in junit.find(".//system-out").text
    md = (tmp_path / "o/summary.md").read_text()
    assert "> ⚠️ latency gate OFF for 2 of 2" in md and "latency gate off: no baseline for this cell" in md
    # with a baseline the gate is on, and nothing says otherwise
    rc, out, err = cli("hil", "--matrix", m, "--out", tmp_path / "b", "--update-baseline",
                       "--baseline", tmp_path / "base.json")
    assert rc == 0 and "OFF" in out and "being updated" in out  # the run that writes it does not compare
    rc, out, err = cli("hil", "--matrix", m, "--out", tmp_path / "c", "--baseline", tmp_path / "base.json")
    assert rc == 0 and "OFF" not in out
    doc = json.loads((tmp_path / "c/hil.json").read_text())
    assert doc["gates_off"] == [] and {g["verdict"] for c in doc["cells"] for g in c["gates"]} == {"ok"}
