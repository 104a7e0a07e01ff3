"""The runtime columns of the edge test zoo (issue #13): per model (small size, untrained weights: the runtime's
instruction count does not depend on weight values), full-integer int8 export, edgefold codegen bit-exact with the
TFLM host interpreter on 20 random inputs, and the Cortex-M4 twin (nano33ble-qemu: nRF52840 memory map, DSP
kernels, QEMU -icount): instructions per inference, instructions per MAC, planned arena, Flash of the linked image.

    .venv/bin/python benchmarks/edge_zoo_runtime.py [--model mobilenetv2,squeezenet11] [--out DIR]

A stage that fails is reported with its one-line reason and the row stops there.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from edgefold.compiler import data, zoo, zoo_edge
from edgefold.compiler.check.tflm import tflm_invoke
from edgefold.compiler.codegen import generate
from edgefold.compiler.codegen.host import build_model
from edgefold.compiler.export.tflite import export_tflite_int8
from edgefold.compiler.tflite_model import read_tflite
from edgefold.targets.harness import default_input
from edgefold.targets.qemu import NanoQemuTarget

from edgefold.core.errors import EdgefoldError

N_INPUTS = 20


def row(name: str, root: Path) -> dict:
    r: dict = {"model": name}
    shape = zoo.input_shape(name)
    calib = data.calibration_batch(shape, 64)
    t0 = time.time()
    try:
        blob = export_tflite_int8(zoo.build(name).eval(), calib[:1].contiguous(), calib)
    except EdgefoldError as e:
        return {**r, "stop": f"export: {str(e)[:160]}"}
    r["export_s"] = time.time() - t0
    g = read_tflite(blob)
    r["macs"] = g.macs
    return {**r, **runtime_columns(blob, root / name, root / "host")}


def runtime_columns(blob: bytes, work: Path, host_dir: Path) -> dict:
    """Codegen (arena), bit-exactness with the TFLM host interpreter on 20 random inputs, and one inference on the
    nano33ble-qemu twin (instructions, Flash, output = TFLM's); a failing stage gives 'stop' and ends the row."""
    r: dict = {}
    g = read_tflite(blob)
    bi = work / "build-input"
    bi.mkdir(parents=True, exist_ok=True)
    (bi / "model_int8.tflite").write_bytes(blob)
    try:
        manifest = generate(blob, bi / "codegen")
    except EdgefoldError as e:
        return {**r, "stop": f"codegen: {str(e)[:160]}"}
    r["arena"] = manifest.arena_bytes
    in_shape = g.input_tensors[0].shape
    x = np.random.default_rng(0).integers(-128, 128, size=(N_INPUTS, *in_shape[1:]), dtype=np.int8)
    ref = np.asarray(tflm_invoke(blob, x)).reshape(N_INPUTS, -1)
    ours = build_model(bi / "codegen", host_dir, "packed").run(x)
    r["bitexact"] = bool(np.array_equal(ours, ref))
    t = NanoQemuTarget()
    try:
        b = t.build(bi, work / "build", "edgefold", runs=1, warmup=0)
    except EdgefoldError as e:
        return {**r, "stop": f"twin build: {str(e)[:160]}"}
    res = t.run_benchmark(b, t.flash(b), timeout_s=600)
    xin = np.frombuffer(default_input(g.input_tensors[0].nbytes), np.int8).reshape(1, *in_shape[1:])
    host = np.asarray(tflm_invoke(blob, xin)).tobytes()
    r.update(twin_match=res.output == host, instructions=res.median, flash=b.flash)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=",".join(sorted(zoo_edge.EDGE)), help="comma-separated zoo models")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    root = Path(a.out or tempfile.mkdtemp(prefix="ef-edge-zoo-"))
    print("| model | MACs | export int8 (s) | codegen bit-exact (20 inputs) | twin output = TFLM | instructions "
          "| insns/MAC | arena (B) | Flash (B) | stopped at |")
    print("|---|---:|---:|---|---|---:|---:|---:|---:|---|")
    for name in a.model.split(","):
        r = row(name, root)

        def f(k: str, fmt: str = "{:,}", r: dict = r) -> str:
            return fmt.format(r[k]) if k in r else "–"

        ipm = f"{r['instructions'] / r['macs']:.2f}" if "instructions" in r and r.get("macs") else "–"
        yn = {True: "yes", False: "NO"}
        print(f"| {name} | {f('macs')} | {f('export_s', '{:.0f}')} | {yn.get(r.get('bitexact'), '–')} | "
              f"{yn.get(r.get('twin_match'), '–')} | {f('instructions', '{:,.0f}')} | {ipm} | {f('arena')} | "
              f"{f('flash')} | {r.get('stop', '')} |", flush=True)


if __name__ == "__main__":
    main()
