"""The same generated model, built for the Cortex-M4 (arm-none-eabi-gcc, DSP/SMLAD kernels) and run under QEMU
(mps2-an386, nRF52840 memory map, -icount shift=0), produces the same output bytes as the host build."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _ef_runtime_support import BUILD_DIR, digits_inputs, host_model, zoo_blob

pytestmark = pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
                                reason="arm-none-eabi-gcc / qemu-system-arm not installed")


def run_on_qemu(blob: bytes, x: np.ndarray, tag: str):
    """Build the harness + runtime + model for the M4 twin, run it once, return (parsed result, codegen result)."""
    from edgefold.compiler.codegen import RUNTIME_DIR, generate
    from edgefold.targets import harness, qemu
    from edgefold.targets.protocol import BenchParser

    d = BUILD_DIR / f"qemu-{tag}"
    res = generate(blob, d)
    harness.write_input_h(d, x.astype(np.int8).tobytes())
    srcs = [d / "model.c", *sorted(RUNTIME_DIR.glob("*.c")), *harness.harness_sources("edgefold")]
    elf = qemu.build_elf(srcs, d / "fw.elf", include_dirs=[d, RUNTIME_DIR, harness.HARNESS_DIR],
                         defines={"EF_WARMUP": 0, "EF_RUNS": 1})
    run = qemu.run_elf(elf.elf, timeout_s=120)
    p = BenchParser(expect_model=res.model_id)
    for line in run.lines:
        p.feed(line)
    return p.result(), res


# resnet8: the SMLAD int8 kernels; vit_tiny: its float islands too (expf/sqrtf from newlib, no FMA contraction)
@pytest.mark.parametrize("name", ["resnet8", "vit_tiny"])
def test_qemu_matches_host(name: str) -> None:
    blob = zoo_blob(name)
    x = digits_inputs(blob, 1)
    bench, res = run_on_qemu(blob, x[0], name)
    host = host_model(blob, "packed").run(x)[0]
    assert bench.output is not None and len(bench.output) == host.size
    assert bench.output == host.tobytes(), f"M4 {bench.output.hex()} != host {host.tobytes().hex()}"
    assert bench.unit == "instructions" and bench.median > res.macs  # at least one instruction per MAC
