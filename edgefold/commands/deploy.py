"""`edgefold deploy`: compress -> export -> build -> flash -> measure, in one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefold.commands.common import add_model_args, choice, console
from edgefold.core.vocab import BACKENDS, FAULTS, METHODS, REPAIRS


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
    p.add_argument("--backend", type=choice("backend", BACKENDS),
                   help="inference engine. MCUs: edgefold (ahead-of-time C runtime, default) or tflm (TensorFlow "
                        "Lite Micro); Jetson: onnxruntime (default) or tensorrt (trtexec --fp16)")
    add_device_args(p)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="run folder (compress/, build-input/, build/, result.json)")
    p.add_argument("--fault", type=choice("fault", FAULTS), help=argparse.SUPPRESS)  # twins: fault injection
    p.set_defaults(func=run)


def add_compress_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("compression")
    g.add_argument("--method", type=choice("method", METHODS), default="fold",
                   help="fold (model folding), mag1 or mag2 (L1/L2 structured pruning)")
    g.add_argument("--ratio", type=float, default=0.5, help="fraction of channels removed per coupled group, [0, 1)")
    g.add_argument("--repair", type=choice("repair", REPAIRS), default="ar",
                   help="BatchNorm repair: none, repair (data), ar (data-free), dir (deep inversion)")
    g.add_argument("--seed", type=int, default=0)


def add_device_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("device")
    g.add_argument("--port", help="serial port (MCU boards; found by USB VID:PID when omitted)")
    g.add_argument("--runs", type=int, default=10, help="timed inferences on the device")
    g.add_argument("--warmup", type=int, default=2, help="warm-up inferences before timing")
    g.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the device's report")
    g.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="target option, e.g. host=jetson.local, user=ubuntu, cpi=1.2 (repeatable)")


def parse_options(items: list[str]) -> dict[str, object]:
    from edgefold.core.errors import EdgefoldError

    opts: dict[str, object] = {}
    for it in items:
        if "=" not in it:
            raise EdgefoldError(f"--option must be KEY=VALUE, got '{it}'")
        k, v = it.split("=", 1)
        opts[k.strip().replace("-", "_")] = v
    return opts


def run(args: argparse.Namespace) -> int:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from edgefold.pipeline import DeployConfig, deploy

    cfg = DeployConfig(
        target=args.target, out=Path(args.out), model=args.model, factory=args.factory, weights=args.weights,
        input_shape=args.input_shape, trust_checkpoint=args.trust_checkpoint, method=args.method,
        ratio=args.ratio, repair=args.repair, backend=args.backend, port=args.port, runs=args.runs,
        warmup=args.warmup, timeout_s=args.timeout, fault=args.fault, seed=args.seed,
        target_options=parse_options(args.option))
    cfg.validate()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as prog:
        task = prog.add_task("deploy", total=None)
        result = deploy(cfg, progress=lambda s: prog.update(task, description=s))
    print_result(result, Path(args.out) / "result.json")
    return 0


def print_result(r: dict, path: Path) -> None:
    from rich.table import Table

    t = Table(title=f"{r['target']} · {r['model']} · {r['method']} r={r['ratio']} · {r['backend']}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    lat = r.get("latency") or {}
    if lat.get("value") is not None:
        t.add_row(f"latency ({lat.get('kind')})", f"{lat['value']:.3f} {lat.get('unit', '')}")
    if r.get("instructions") is not None:
        t.add_row("instructions / inference (measured, QEMU)", f"{int(r['instructions']):,}")
    ram = r.get("ram") or {}
    for k in ("static", "arena", "stack", "total"):
        if ram.get(k) is not None:
            t.add_row(f"RAM {k}", f"{ram[k]:,} B")
    if r.get("flash") is not None:
        t.add_row("Flash", f"{r['flash']:,} B")
    comp = r.get("compress") or {}
    if comp.get("accuracy_before") is not None:
        t.add_row("accuracy before -> after compression", f"{comp['accuracy_before']:.2f} -> "
                                                          f"{comp['accuracy_after']:.2f} %")
    acc = r.get("accuracy") or {}
    for k in ("float", "int8", "agreement"):
        if acc.get(k) is not None:
            t.add_row(f"accuracy {k} (digits test)" if k != "agreement" else "int8 top-1 agreement", f"{acc[k]:.2f} %")
    if r.get("params") is not None:
        t.add_row("params", f"{r.get('params_before', 0):,} -> {r['params']:,}")
    t.add_row("output matches host", {True: "yes", False: "NO", None: "n/a"}[r.get("output_crc_match")])
    t.add_row("wall time", f"{r.get('wall_seconds', 0):.1f} s")
    console.print(t)
    console.print(f"result: {path}")
