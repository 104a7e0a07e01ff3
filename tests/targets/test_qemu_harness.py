"""The benchmark harness on the nano33ble-qemu twin: a hand-written model whose output the host recomputes, the
fault hooks (kill / garble / stall) that must end in a clear DeviceError, never a hang or a wrong number."""

from __future__ import annotations

import shutil
import time
import zlib
from pathlib import Path

import pytest
from edgefold.targets import qemu
from edgefold.targets.harness import default_input

from edgefold.core.errors import DeviceError, EdgefoldError

HERE = Path(__file__).parent
pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in (qemu.GCC, qemu.QEMU)), reason="arm-none-eabi-gcc / qemu-system-arm absent"
)


def reference_output(x: bytes, n_out: int = 10) -> bytes:
    """tests/targets/c/model.c, in Python."""
    xs = [b - 256 if b > 127 else b for b in x]
    out = bytearray()
    for j in range(n_out):
        acc = sum(v * (((i * 31 + j * 17) % 255) - 127) for i, v in enumerate(xs))
        out.append((acc >> 6) & 0xFF)
    return bytes(out)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    root = tmp_path_factory.mktemp("twin")
    bi = root / "build-input"
    (bi / "codegen").mkdir(parents=True)
    for f in ("model.c", "model.h", "model.json"):
        shutil.copy(HERE / "c" / f, bi / "codegen" / f)
    t = qemu.NanoQemuTarget()
    return t.build(bi, root / "build", "edgefold", runs=4, warmup=1)


def test_harness_reports_what_the_host_computes(build):
    t = qemu.NanoQemuTarget()
    r = t.run_benchmark(build, t.flash(build), timeout_s=30)
    expected = reference_output(default_input(96))
    assert r.output == expected and r.output_crc == zlib.crc32(expected)
    assert r.unit == "instructions" and r.kind == "measured" and r.runs == 4 and len(r.per_run) == 4
    assert len(set(r.per_run)) == 1 and r.per_run[0] > 96 * 10  # deterministic, at least one insn per MAC
    assert r.arena_bytes == 512 and 0 < r.stack_bytes < 2048 and r.heap_free is None
    est = r.extra["latency_estimate"]
    assert est["kind"] == "estimated" and est["value"] == pytest.approx(r.median * qemu.DEFAULT_CPI / 64e6 * 1e3)
    assert build.flash == build.extra["sizes"]["flash"] and 0 < build.flash < qemu.FLASH_BYTES


def test_input_bin_is_used(tmp_path, build):
    bi = tmp_path / "bi"
    shutil.copytree(Path(build.artifact).parent.parent / "build-input", bi)
    x = bytes(range(96))
    (bi / "input.bin").write_bytes(x)
    t = qemu.NanoQemuTarget()
    b = t.build(bi, tmp_path / "b", "edgefold", runs=1, warmup=0)
    assert t.run_benchmark(b, t.flash(b), timeout_s=30).output == reference_output(x)
    (bi / "input.bin").write_bytes(x[:5])
    with pytest.raises(EdgefoldError, match="holds 5 bytes"):
        t.build(bi, tmp_path / "b2", "edgefold", runs=1, warmup=0)


@pytest.mark.parametrize("fault,match", [
    ("kill", "device vanished or was reset"),
    ("garble", "corrupted protocol lines"),
    ("stall", "silent for"),
])
def test_faults_give_a_clear_error_in_bounded_time(build, fault, match):
    # bounded by the idle timeout per attempt, not by the total timeout (far apart, so a loaded host cannot blur
    # the difference; a 1 s idle timeout could also fire on a healthy but descheduled emulator)
    t = qemu.NanoQemuTarget(fault=fault, idle_timeout_s=3.0, retries=1)
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=match) as e:
        t.run_benchmark(build, t.flash(build), timeout_s=600)
    assert "2 attempts" in str(e.value)
    assert time.monotonic() - t0 < 300


def test_tflm_backend_is_refused_on_the_twin(build, tmp_path):
    with pytest.raises(EdgefoldError, match="edgefold only"):
        qemu.NanoQemuTarget().build(tmp_path, tmp_path / "x", "tflm", runs=1, warmup=0)


def test_stale_firmware_is_detected(build):
    from dataclasses import replace

    t = qemu.NanoQemuTarget(retries=0)
    wrong = replace(build, extra={**build.extra, "model_id": "ffffffffffffffff"})
    with pytest.raises(DeviceError, match="stale firmware"):
        t.run_benchmark(wrong, t.flash(wrong), timeout_s=10)
