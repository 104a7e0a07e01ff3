"""The twin with the real codegen output: a real .tflite -> edgefold codegen -> harness under QEMU; the device's
output CRC equals the TFLM host interpreter's. And a model too large for the nRF52840 is refused by the linker."""

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
