"""The twin with the real codegen output: a real .tflite -> edgefold codegen -> harness under QEMU; the device's
output CRC equals the TFLM host interpreter's. A --profile build times every kernel call. And a model too large for
the nRF52840 is refused by the linker."""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from edgefold.targets import qemu
from edgefold.targets.fit import DoesNotFit
from edgefold.targets.harness import default_input

HERE = Path(__file__).parent
TINY = HERE / "data" / "tiny_int8.tflite"
pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in (qemu.GCC, qemu.QEMU)), reason="arm-none-eabi-gcc / qemu-system-arm absent"
)


def test_codegen_model_on_the_twin_matches_host_tflm(tmp_path):
    codegen = pytest.importorskip("edgefold.compiler.codegen")
    from edgefold.compiler.check.tflm import tflm_invoke

    bi = tmp_path / "build-input"
    bi.mkdir()
    blob = TINY.read_bytes()
    (bi / "model_int8.tflite").write_bytes(blob)
    cg = codegen.generate(blob, bi / "codegen")
    t = qemu.NanoQemuTarget()
    assert t.fit_check(bi, "edgefold").fits
    b = t.build(bi, tmp_path / "build", "edgefold", runs=2, warmup=1)
    r = t.run_benchmark(b, t.flash(b), timeout_s=60)
    x = np.frombuffer(default_input(64), dtype=np.int8).reshape(1, 8, 8, 1)
    host = tflm_invoke(blob, x).tobytes()
    assert r.output == host and r.output_crc == zlib.crc32(host)
    assert r.model_id == cg.model_id and r.arena_bytes == cg.arena_bytes
    assert r.per_run[0] > 0 and r.extra["macs"] == cg.macs


def _xtensa_twin():
    from edgefold.targets.qemu import esp_eye as xt

    if not all(shutil.which(t) for t in (xt.GCC, xt.QEMU)):
        pytest.skip("gcc-xtensa-lx106 / qemu-system-xtensa absent")
    return xt.EspEyeQemuTarget()


@pytest.mark.parametrize("twin", ["nano33ble-qemu", "esp-eye-qemu"])
def test_profile_build_stamps_each_kernel_call(tmp_path, twin):
    codegen = pytest.importorskip("edgefold.compiler.codegen")

    t = qemu.NanoQemuTarget() if twin == "nano33ble-qemu" else _xtensa_twin()
    assert t.per_step_profile
    bi = tmp_path / "build-input"
    bi.mkdir()
    blob = TINY.read_bytes()
    (bi / "model_int8.tflite").write_bytes(blob)
    cg = codegen.generate(blob, bi / "codegen")
    assert [s["op"] for s in cg.steps] == ["DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert sum(s["macs"] for s in cg.steps) == cg.macs
    assert f"#define EF_MODEL_STEPS {len(cg.steps)}" in (bi / "codegen" / "model.h").read_text()
    b = t.build(bi, tmp_path / "build", "edgefold", runs=2, warmup=1, profile=True)
    r = t.run_benchmark(b, t.flash(b), timeout_s=60)
    p = r.extra["profile"]
    n, stamp, res = len(cg.steps), p["stamp_cost"], t.insns_per_tick
    assert p["unit"] == "instructions" and p["steps"] == n and len(p["values"]) == n  # one STEP per kernel call
    assert all(v > 0 for v in p["values"])
    assert 0 < stamp < 500
    # the steps add up to the stamped inference, less one stamp each and the tail (output copy, return)
    assert 0 <= p["total"] - sum(p["raw"]) <= 300
    assert abs(p["total"] - sum(p["values"]) - n * stamp) <= 300
    # and the stamped inference costs the timed one plus about a stamp per kernel call
    assert 0 < p["total"] - r.median <= n * stamp + 2 * res
    assert r.output_crc is not None  # the profile run computed the timed runs' output (PROF crc checked)


def test_too_big_for_the_nrf52840_is_refused_by_the_linker(tmp_path):
    bi = tmp_path / "build-input"
    (bi / "codegen").mkdir(parents=True)
    shutil.copy(TINY, bi / "model_int8.tflite")
    shutil.copy(HERE / "c" / "model.h", bi / "codegen" / "model.h")
    shutil.copy(HERE / "c" / "model.json", bi / "codegen" / "model.json")
    src = (HERE / "c" / "model.c").read_text()
    # 1.1 MB of "weights" the model really reads: more than the 983,040 bytes after the bootloader
    src = src.replace("static int32_t arena", "static const int8_t big[1100000] = {1};\nstatic int32_t arena")
    src = src.replace("arena[j] = acc;", "arena[j] = acc + big[(j * 99991) % 1100000];")
    (bi / "codegen" / "model.c").write_text(src)
    with pytest.raises(DoesNotFit, match=r"Flash overflowed by [\d,]+ bytes.*nano33ble-qemu has 960 KB Flash") as e:
        qemu.NanoQemuTarget().build(bi, tmp_path / "build", "edgefold", runs=1, warmup=0)
    assert not e.value.report.fits
