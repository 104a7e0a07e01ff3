"""Micro runtime footprint: RAM (planned arena vs the TFLM host interpreter's arena), Flash (runtime code without
weights, Cortex-M4) and compute (instructions per MAC under QEMU -icount shift=0).

    .venv/bin/python benchmarks/runtime_footprint.py [--models resnet8,dscnn,mobilenetv1_025] [--out DIR]

Models are the zoo's (seeded init), exported by the project's full-integer TFLite exporter with 64 digits
calibration images. QEMU figures are instruction counts, not cycles."""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console(highlight=False, width=150)
M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]


def export(name: str) -> bytes:
    from edgefold.compiler import data, zoo
    from edgefold.compiler.export.tflite import export_tflite_int8

    shape = zoo.input_shape(name)
    calib = data.calibration_batch(shape, 64)
    return export_tflite_int8(zoo.build(name).eval(), calib[:1].contiguous(), calib)


def text_bytes(obj: Path, skip: set[str] = frozenset()) -> int:
    """Flash bytes of an object's code and read-only data, without the named symbols' sections (weights)."""
    out = subprocess.run(["arm-none-eabi-size", "-A", str(obj)], capture_output=True, text=True, check=True).stdout
    total = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith((".text", ".rodata")) and parts[1].isdigit():
            sym = parts[0].split(".")[-1]
            if sym not in skip:
                total += int(parts[1])
    return total


def flash(gen: Path, res, lw) -> dict:
    """Runtime code for one model: the kernel files it calls, plus ef_model_run and its parameter blocks;
    weights, biases and requantisation tables (what TFLM keeps in the flatbuffer) are excluded."""
    from edgefold.compiler.codegen import RUNTIME_DIR

    build = gen / "m4"
    build.mkdir(exist_ok=True)
    cflags = ["-std=c99", "-O2", "-ffunction-sections", "-fdata-sections", *M4, f"-I{RUNTIME_DIR}", f"-I{gen}"]
    used_fns = {s.fn for s in lw.steps} | {"ef_copy"}
    files = {}
    for src in sorted(RUNTIME_DIR.glob("*.c")):
        obj = build / (src.stem + ".o")
        subprocess.run(["arm-none-eabi-gcc", *cflags, "-c", str(src), "-o", str(obj)], check=True)
        files[src.stem] = obj
    used_files = {f for f, o in files.items()
                  if any(re.search(rf"\b{fn}\b", (RUNTIME_DIR / f"{f}.c").read_text()) for fn in used_fns)}
    if {"conv_2d", "fully_connected"} & used_files:
        used_files.add("ef_matmul")
    all_kernels = sum(text_bytes(o) for o in files.values())
    used = sum(text_bytes(files[f]) for f in used_files)
    mobj = build / "model.o"
    subprocess.run(["arm-none-eabi-gcc", *cflags, "-c", str(gen / "model.c"), "-o", str(mobj)], check=True)
    weights = {c.name for c in lw.consts}
    model_code = text_bytes(mobj, skip=weights)
    return {"kernels_used": used, "kernels_all": all_kernels, "model_run": model_code,
            "total_used": used + model_code, "weights": res.weights_bytes}


def qemu_ipm(gen: Path, blob: bytes, res) -> tuple[int, float]:
    from edgefold.compiler.codegen import RUNTIME_DIR
    from edgefold.targets import harness, qemu
    from edgefold.targets.protocol import BenchParser

    rng = np.random.default_rng(0)
    harness.write_input_h(gen, rng.integers(-128, 128, res.input_bytes, dtype=np.int8).tobytes())
    srcs = [gen / "model.c", *sorted(RUNTIME_DIR.glob("*.c")), *harness.harness_sources("edgefold")]
    elf = qemu.build_elf(srcs, gen / "fw.elf", include_dirs=[gen, RUNTIME_DIR, harness.HARNESS_DIR],
                         defines={"EF_WARMUP": 1, "EF_RUNS": 3})
    run = qemu.run_elf(elf.elf, timeout_s=600)
    p = BenchParser(expect_model=res.model_id)
    for line in run.lines:
        p.feed(line)
    r = p.result()
    return int(r.median), r.median / res.macs


def _input_bytes(blob: bytes) -> int:
    from edgefold.compiler.tflite_model import read_tflite

    return read_tflite(blob).input_tensors[0].nbytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet8,dscnn,mobilenetv1_025")
    ap.add_argument("--out", default=None, help="keep generated code here (default: a temp folder)")
    args = ap.parse_args()
    from edgefold.compiler.check.tflm import tflm_arena_bytes
    from edgefold.compiler.codegen import generate, lower

    root = Path(args.out or tempfile.mkdtemp(prefix="ef-footprint-"))
    t = Table(title="edgefold micro runtime footprint")
    # edgefold reads the input tensor in place from the caller's buffer; TFLM's arena holds it. "+input" counts
    # it for a like-for-like RAM comparison.
    for c in ("model", "MACs", "edgefold arena B", "+input B", "TFLM host arena B", "ratio (+input)",
              "runtime code B (M4)", "instructions / inference", "instructions / MAC"):
        t.add_column(c, justify="right")
    rows = []
    for name in args.models.split(","):
        t0 = time.time()
        console.print(f"[{name}] exporting ...")
        blob = export(name)
        gen = root / name
        res = generate(blob, gen)
        _, lw, _ = lower(blob)
        tflm = tflm_arena_bytes(blob)
        fl = flash(gen, res, lw)
        insns, ipm = qemu_ipm(gen, blob, res)
        rows.append((name, res, tflm, fl, insns, ipm))
        with_in = res.arena_bytes + _input_bytes(blob)
        t.add_row(name, f"{res.macs:,}", f"{res.arena_bytes:,}", f"{with_in:,}", f"{tflm:,}",
                  f"{res.arena_bytes / tflm:.2f} ({with_in / tflm:.2f})", f"{fl['total_used']:,}", f"{insns:,}",
                  f"{ipm:.2f}")
        console.print(f"[{name}] done in {time.time() - t0:.0f} s; flash detail {fl}")
    console.print(t)


if __name__ == "__main__":
    main()
