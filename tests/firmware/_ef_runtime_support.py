"""Shared by the runtime/codegen tests: exported zoo models (cached per session), quantised digits inputs,
host builds of the generated C, and the TFLM reference."""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

BUILD_DIR = Path(os.environ.get("EF_TEST_BUILD_DIR") or tempfile.mkdtemp(prefix="ef-runtime-tests-"))
if "EF_TEST_BUILD_DIR" not in os.environ:  # a private temp folder: gone with the test session
    atexit.register(shutil.rmtree, BUILD_DIR, True)
CALIB_N = 64


def export(model: torch.nn.Module, shape: tuple[int, ...], calib: torch.Tensor | None = None) -> bytes:
    """The project's int8 TFLite exporter; models it rejects as not full-integer (float islands, e.g. the ViT's
    LayerNorm) go through the same conversion without that gate: the runtime covers mixed graphs too."""
    from edgefold.compiler import data
    from edgefold.compiler.export.tflite import convert_int8, export_tflite_int8

    from edgefold.core.errors import EdgefoldError

    calib = data.calibration_batch(shape, CALIB_N) if calib is None else calib
    try:
        return export_tflite_int8(model, calib[:1].contiguous(), calib)
    except EdgefoldError as e:
        if not re.search(r"stays? float", str(e)):
            raise
        return convert_int8(model, calib[:1].contiguous(), calib)


@functools.cache
def zoo_blob(name: str, fold_ratio: float | None = None) -> bytes:
    from edgefold.compiler import data, zoo

    shape = zoo.input_shape(name)
    model = zoo.build(name).eval()
    if fold_ratio:
        from edgefold.compiler.compress import compress

        calib = data.calibration_batch(shape, CALIB_N)
        model, _ = compress(model, calib[:1].contiguous(), method="fold", ratio=fold_ratio, repair="repair",
                            calib_data=calib)
    return export(model, shape)


def io_params(blob: bytes) -> tuple[float, int, tuple[int, ...]]:
    from edgefold.compiler.tflite_model import read_tflite

    t = read_tflite(blob).input_tensors[0]
    return t.scale, t.zero_point, t.shape


def digits_inputs(blob: bytes, n: int) -> np.ndarray:
    """The first n digits test images, NHWC, quantised with the model's input scale / zero point."""
    from edgefold.compiler import data

    scale, zp, shape = io_params(blob)
    nchw = (1, shape[3], shape[1], shape[2])
    x = data.load(nchw, "test").x[:n].permute(0, 2, 3, 1).numpy()
    return np.clip(np.round(x / scale) + zp, -128, 127).astype(np.int8)


def host_model(blob: bytes, variant: str = "packed"):
    """Generate C for blob and load its host build (runtime objects compiled once per session)."""
    import hashlib

    from edgefold.compiler.codegen import generate
    from edgefold.compiler.codegen.host import build_model

    d = BUILD_DIR / ("gen-" + hashlib.sha256(blob).hexdigest()[:16])
    if not (d / "model.c").exists():
        generate(blob, d)
    return build_model(d, BUILD_DIR, variant)


def tflm(blob: bytes, x: np.ndarray) -> np.ndarray:
    from edgefold.compiler.check.tflm import tflm_invoke

    return np.asarray(tflm_invoke(blob, x)).reshape(len(x), -1)


def run_on_qemu(blob: bytes, x: np.ndarray, tag: str):
    """Build the harness + runtime + model for the Cortex-M4 twin (nano33ble-qemu memory map), run it once on one
    input; returns (parsed EF1 result, codegen manifest, ElfBuild with the linked sizes). The linker refuses a
    model the nRF52840 cannot hold."""
    from edgefold.compiler.codegen import RUNTIME_DIR, generate
    from edgefold.targets import harness, qemu
    from edgefold.targets.protocol import BenchParser

    d = BUILD_DIR / f"qemu-{tag}"
    res = generate(blob, d)
    harness.write_input_h(d, x.astype(np.int8).tobytes())
    srcs = [d / "model.c", *sorted(RUNTIME_DIR.glob("*.c")), *harness.harness_sources("edgefold")]
    elf = qemu.build_elf(srcs, d / "fw.elf", include_dirs=[d, RUNTIME_DIR, harness.HARNESS_DIR],
                         defines={"EF_WARMUP": 0, "EF_RUNS": 1})
    run = qemu.run_elf(elf.elf, timeout_s=300)
    p = BenchParser(expect_model=res.model_id)
    for line in run.lines:
        p.feed(line)
    return p.result(), res, elf
