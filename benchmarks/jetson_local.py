"""Deploy zoo models to the jetson-local twin (real loopback sshd, this host's CPU) and print what it measured.

    .venv/bin/python benchmarks/jetson_local.py [--models resnet8 dscnn] [--runs 50] [--warmup 10] [--threads 1]

Latency here is ONNX Runtime on THIS host's x86 CPU, reached through the same SSH code as a Jetson Nano: it measures
the deploy path and the runner, not the Nano. Models are untrained zoo networks (weights do not change latency),
exported with the TorchScript exporter at opset 13, the newest the Nano's JetPack 4.6 software reads.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from edgefold.compiler import zoo
from edgefold.targets.jetson import JetsonLocalTarget
from edgefold.targets.sshd_twin import SshdTwin
from rich.console import Console
from rich.table import Table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet8", "dscnn"])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    console = Console(width=150)
    table = Table(title=f"jetson-local twin (this host: {platform.machine()}, {platform.processor() or 'cpu'}) "
                        f"- not Jetson numbers")
    for col in ("model", "ONNX bytes", "median ms", "min ms", "peak RSS MB", "CRC match", "build s", "flash s",
                "bench s"):
        table.add_column(col, justify="right")
    t_start = time.perf_counter()
    with SshdTwin() as twin, tempfile.TemporaryDirectory() as tmp:
        console.print(f"twin sshd up in {time.perf_counter() - t_start:.2f} s on {twin.host}:{twin.port} "
                      f"as {twin.user}")
        target = JetsonLocalTarget(twin=twin, threads=args.threads)
        for name in args.models:
            torch.manual_seed(0)
            d = Path(tmp) / name
            d.mkdir()
            x = torch.randn(*zoo.input_shape(name)).contiguous()
            torch.onnx.export(zoo.build(name).eval(), (x,), str(d / "model.onnx"), dynamo=False, opset_version=13)
            t0 = time.perf_counter()
            build = target.build(d, d / "out", "onnxruntime", args.runs, args.warmup)
            t1 = time.perf_counter()
            flashed = target.flash(build)
            t2 = time.perf_counter()
            res = target.run_benchmark(build, flashed, timeout_s=300)
            t3 = time.perf_counter()
            table.add_row(name, f"{res.extra['flash_bytes']:,}", f"{statistics.median(res.per_run):.3f}",
                          f"{min(res.per_run):.3f}", f"{res.extra['ram_bytes'] / 2**20:.1f}",
                          str(res.extra["output_crc_match"]), f"{t1 - t0:.2f}", f"{t2 - t1:.2f}", f"{t3 - t2:.2f}")
    console.print(table)
    console.print(f"runs={args.runs} warmup={args.warmup} threads={args.threads}; RAM = runner peak RSS (no tegrastats "
                  f"here); total wall {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
