"""The same generated model, built for the Cortex-M4 (arm-none-eabi-gcc, DSP/SMLAD kernels) and run under QEMU
(mps2-an386, nRF52840 memory map, -icount shift=0), produces the same output bytes as the host build."""

from __future__ import annotations

import shutil

import pytest
from _ef_runtime_support import digits_inputs, host_model, run_on_qemu, zoo_blob

pytestmark = pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
                                reason="arm-none-eabi-gcc / qemu-system-arm not installed")


# resnet8: the SMLAD int8 kernels; vit_tiny: its float islands too (expf/sqrtf from newlib, no FMA contraction)
@pytest.mark.parametrize("name", ["resnet8", "vit_tiny"])
def test_qemu_matches_host(name: str) -> None:
    blob = zoo_blob(name)
    x = digits_inputs(blob, 1)
    bench, res, _ = run_on_qemu(blob, x[0], name)
    host = host_model(blob, "packed").run(x)[0]
    assert bench.output is not None and len(bench.output) == host.size
    assert bench.output == host.tobytes(), f"M4 {bench.output.hex()} != host {host.tobytes().hex()}"
    assert bench.unit == "instructions" and bench.median > res.macs  # at least one instruction per MAC
