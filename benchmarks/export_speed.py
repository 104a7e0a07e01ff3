"""Export speed: resnet8 to ONNX, ONNX int8 and TFLite int8 (+ C array), written to disk; median of 3.

Goal (issue 3): <= 10 s on 2 cores, excluding first import. The first-use costs (imports, the LiteRT converter's
and torch.export's one-time set-up) are paid by a warm-up export of the same model that is not timed. The
fidelity check (4 runtimes over 360 images) and the TFLM arena measurement are timed separately.

    .venv/bin/python benchmarks/export_speed.py [--runs 3] [--no-append]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 10.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    import litert_torch  # noqa: F401 - the heavy imports export_all makes lazily, timed here on purpose
    import onnxruntime.quantization  # noqa: F401
    from edgefold.compiler import zoo
    from edgefold.compiler.export import export_all

    import_s = time.perf_counter() - t0
    model = zoo.build("resnet8").eval()
    shape = zoo.input_shape("resnet8")
    stages: dict[str, list[float]] = {}
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        export_all(model, shape, Path(tmp) / "warm", check=False)
        warm_s = time.perf_counter() - t0
        for i in range(args.runs):
            t0 = time.perf_counter()
            rep = export_all(model, shape, Path(tmp) / f"run{i}", check=False)
            totals.append(time.perf_counter() - t0)
            for k, v in rep.seconds.items():
                stages.setdefault(k, []).append(v)
            print(f"run {i + 1}: {totals[-1]:.2f} s  " + "  ".join(f"{k} {v:.2f}" for k, v in rep.seconds.items()))
        t0 = time.perf_counter()
        rep = export_all(model, shape, Path(tmp) / "checked", check=True)
        checked_s = time.perf_counter() - t0
    med = statistics.median(totals)
    load = os.getloadavg()[0]
    per_stage = ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in stages.items())
    verdict = "met" if med <= GOAL_S else f"MISSED by {med - GOAL_S:.1f} s"
    print(f"import {import_s:.1f} s, warm-up export {warm_s:.1f} s (not counted)")
    print(f"resnet8 -> onnx, onnx-int8, tflite-int8 + C array: median {med:.2f} s of {args.runs} "
          f"(min {min(totals):.2f}, max {max(totals):.2f}); goal <= {GOAL_S:.0f} s: {verdict}")
    print(f"median per stage: {per_stage}")
    print(f"with fidelity check + TFLM arena: {checked_s:.1f} s (check {rep.seconds.get('fidelity', 0):.1f} s, "
          f"arena {rep.seconds.get('tflm_arena', 0):.2f} s); load average {load:.1f}")
    if not args.no_append:
        cmd = " ".join(["python", "benchmarks/export_speed.py", *(argv if argv is not None else sys.argv[1:])])
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
            fh.write(
                f"\n## Export speed\n\nCommand: `.venv/bin/{cmd}` ({time.strftime('%Y-%m-%d')}, torch 2 threads, "
                f"{os.cpu_count()} cores shared with other jobs, 1-min load average {load:.1f} at the end).\n\n"
                "| what | seconds |\n|---|---|\n"
                f"| first import (litert-torch, onnxruntime, edgefold export) | {import_s:.1f} |\n"
                f"| warm-up export (first use of exporters/converter, not counted) | {warm_s:.1f} |\n"
                f"| resnet8 -> all formats + C array, median of {args.runs} (min-max) | {med:.2f} "
                f"({min(totals):.2f}-{max(totals):.2f}) |\n"
                + "".join(f"| &nbsp; stage {k} (median) | {statistics.median(v):.2f} |\n" for k, v in stages.items())
                + f"| export + fidelity check (4 runtimes x 360 images) + TFLM arena | {checked_s:.1f} |\n\n"
                f"Goal <= {GOAL_S:.0f} s (export, excluding first import): {verdict}.\n")
    return 0 if med <= GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
