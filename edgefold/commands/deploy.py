"""`edgefold deploy`: compress -> export -> build -> flash -> measure, in one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefold.commands.common import (
    add_compress_args,
    add_device_args,
    add_model_args,
    choice,
    console,
    parse_options,
    progress,
)
from edgefold.core.artifacts import DeployResult
from edgefold.core.vocab import FAULTS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy", help="compress, export, build, flash and measure on a device",
        description="Compress the model, export it (TFLite int8 for MCUs, ONNX for the Jetson), build the firmware "
                    "(or remote bundle), flash it, run the benchmark on the device and write DIR/result.json.")
    p.add_argument("--target", required=True, help="device: nano33ble, esp-eye, jetson-nano, or a twin: "
                                                   "nano33ble-qemu, esp-eye-qemu, jetson-local "
                                                   "(see `edgefold targets`)")
    add_model_args(p)
    add_compress_args(p)
    add_device_args(p, backend=True)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="run folder (compress/, build-input/, build/, result.json)")
    p.add_argument("--fault", type=choice("fault", FAULTS), help=argparse.SUPPRESS)  # twins: fault injection
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefold.api import DeployConfig, deploy

    cfg = DeployConfig(
        target=args.target, out=Path(args.out), model=args.model, factory=args.factory, weights=args.weights,
        input_shape=args.input_shape, trust_checkpoint=args.trust_checkpoint, method=args.method,
        ratio=args.ratio, repair=args.repair, backend=args.backend, port=args.port, runs=args.runs,
        warmup=args.warmup, timeout_s=args.timeout, fault=args.fault, seed=args.seed,
        target_options=parse_options(args.option))
    cfg.validate()
    with progress("deploy") as status:
        result = deploy(cfg, status)
    print_result(result, Path(args.out) / result.FILE)
    return 0


def print_result(r: DeployResult, path: Path) -> None:
    from rich.table import Table

    t = Table(title=f"{r.target} · {r.model} · {r.method} r={r.ratio} · {r.backend}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    lat = r.latency
    if lat.get("value") is not None:
        t.add_row(f"latency ({lat.get('kind')})", f"{lat['value']:.3f} {lat.get('unit', '')}")
    if r.instructions is not None:
        t.add_row("instructions / inference (measured, QEMU)", f"{int(r.instructions):,}")
    for k in ("static", "arena", "stack", "total"):
        if r.ram.get(k) is not None:
            t.add_row(f"RAM {k}", f"{r.ram[k]:,} B")
    if r.flash is not None:
        t.add_row("Flash", f"{r.flash:,} B")
    comp = r.compress
    if comp.get("accuracy_before") is not None and comp.get("accuracy_after") is not None:
        t.add_row("accuracy before -> after compression", f"{comp['accuracy_before']:.2f} -> "
                                                          f"{comp['accuracy_after']:.2f} %")
    for k in ("float", "int8", "agreement"):
        if r.accuracy.get(k) is not None:
            t.add_row(f"accuracy {k} (digits test)" if k != "agreement" else "int8 top-1 agreement",
                      f"{r.accuracy[k]:.2f} %")
    if r.params is not None:
        t.add_row("params", f"{r.params_before or 0:,} -> {r.params:,}")
    t.add_row("output matches host", {True: "yes", False: "NO", None: "n/a"}[r.output_crc_match])
    t.add_row("wall time", f"{r.wall_seconds or 0:.1f} s")
    console.print(t)
    console.print(f"result: {path}")
