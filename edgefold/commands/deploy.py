"""`edgefold deploy`: compress -> export -> build -> flash -> measure, in one command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from edgefold.commands.common import (
    add_deploy_args,
    choice,
    console,
    data_request,
    err_console,
    fit_request,
    keep_failed,
    parse_options,
    progress,
    recover_request,
)
from edgefold.core.artifacts import DeployResult
from edgefold.core.vocab import FAULTS

if TYPE_CHECKING:
    from edgefold.api import DeployConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy", help="compress, export, build, flash and measure on a device",
        description="Compress the model, export it (TFLite int8 for MCUs, ONNX for the Jetson), build the firmware "
                    "(or remote bundle), flash it, run the benchmark on the device and write DIR/result.json.")
    add_deploy_args(p, "device: nano33ble, esp-eye, jetson-nano, or a twin: nano33ble-qemu, esp-eye-qemu, "
                       "jetson-local (see `edgefold targets`)",
                    "run folder (compress/, build-input/, build/, result.json)")
    p.add_argument("--no-flash", action="store_true",
                   help="stop after the build: what `edgefold build` does (project, firmware, sizes)")
    p.add_argument("--offline", action="store_true",
                   help="with --no-flash: build a board's firmware only if its PlatformIO platform is installed")
    p.add_argument("--fault", type=choice("fault", FAULTS), help=argparse.SUPPRESS)  # twins: fault injection
    p.set_defaults(func=run)


def deploy_config(args: argparse.Namespace) -> DeployConfig:
    """The request of `deploy` (and of `build`, which takes the same flags)."""
    from edgefold.api import DeployConfig

    return DeployConfig(
        target=args.target, out=Path(args.out), model=args.model, factory=args.factory, weights=args.weights,
        input_shape=args.input_shape, trust_checkpoint=args.trust_checkpoint, method=args.method,
        ratio=args.ratio, repair=args.repair, backend=args.backend, port=args.port, runs=args.runs,
        warmup=args.warmup, timeout_s=args.timeout, fault=args.fault, seed=args.seed,
        target_options=parse_options(args.option), data=data_request(args), fit=fit_request(args),
        recover=recover_request(args), keep_failed=keep_failed(args), profile=args.profile)


def run(args: argparse.Namespace) -> int:
    from edgefold.api import deploy, preflight

    if args.no_flash:
        from edgefold.commands.build import run as build_only

        return build_only(args)
    cfg = deploy_config(args)
    target = preflight(cfg)
    with progress("deploy", eta=True) as status:
        result = deploy(cfg, status, status.epochs, target=target)
    print_result(result, Path(args.out) / result.FILE)
    if not args.weights:  # after the run: a failed deploy prints its error alone
        err_console.print("warning: no --weights: the model's weights are random (its accuracy means nothing)")
    return 0


def print_result(r: DeployResult, path: Path) -> None:
    from rich.table import Table

    how = "fit (per-group ratios)" if r.compress.get("fit") else f"r={r.ratio}"
    t = Table(title=f"{r.target} · {r.model} · {r.method} {how} · {r.backend}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    lat = r.latency
    if lat.get("value") is not None:
        if lat.get("kind") == "estimated":  # a model's guess: three significant digits are all it carries
            t.add_row("latency (est.)", f"{sig3(lat['value'])} {lat.get('unit', '')}")
        else:
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
    for note in r.extra.get("notes", []):
        console.print(f"note: {note}")
    t.add_row("wall time", f"{r.wall_seconds or 0:.1f} s")
    console.print(t)
    if r.extra.get("footprint"):
        console.print(before_after(r))
    if r.profile:
        for table in profile_tables(r.profile):
            console.print(table)
    console.print(f"result: {path}")


TOP_STEPS = 15


def profile_tables(rows: list[dict]) -> list:
    """--profile: the TOP_STEPS costliest kernel calls, and the totals per TFLite op (with value per MAC)."""
    from rich import box
    from rich.table import Table

    unit = rows[0]["unit"] if rows else ""
    short = {"instructions": "instr"}.get(unit, unit)  # narrow columns: an 80-column terminal shows every one
    total = sum(r["value"] for r in rows)
    top = sorted(rows, key=lambda r: r["value"], reverse=True)[:TOP_STEPS]
    shown = f"top {len(top)} of {len(rows)}" if len(rows) > len(top) else f"all {len(rows)}"
    t = Table(title=f"where the time goes: {shown} kernel calls, {unit} (one stamped inference)",
              box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    for col in ("step", "kernel", "op", "layer", "MACs", short, "share"):
        t.add_column(col, justify="left" if col in ("kernel", "op", "layer") else "right")
    for r in top:
        t.add_row(str(r["step"]), str(r["kernel"]).removeprefix("ef_"), str(r["op"]), str(r["layer"])[:32],
                  f"{r['macs']:,}", f"{r['value']:,.0f}", f"{100 * r['share']:.1f} %")
    per_op: dict[str, list[float]] = {}
    for r in rows:
        acc = per_op.setdefault(str(r["op"]), [0, 0.0, 0])
        acc[0] += 1
        acc[1] += r["value"]
        acc[2] += r["macs"]
    o = Table(title=f"per op, {unit} (total {total:,.0f})", box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    for col in ("op", "calls", short, "share", "MACs", f"{short}/MAC"):
        o.add_column(col, justify="left" if col == "op" else "right")
    for op, (n, v, macs) in sorted(per_op.items(), key=lambda kv: kv[1][1], reverse=True):
        o.add_row(op, str(int(n)), f"{v:,.0f}", f"{100 * v / total:.1f} %" if total > 0 else "-", f"{int(macs):,}",
                  f"{v / macs:.2f}" if macs > 0 else "-")
    return [t, o]


def sig3(v: float) -> str:
    """v to three significant digits, without an exponent: 217.25 -> 217, 1.2345 -> 1.23, 12345 -> 12,300."""
    import math

    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    r = float(f"{v:.3g}")
    return f"{r:,.{max(0, 2 - math.floor(math.log10(abs(r))))}f}"


def before_after(r: DeployResult):
    """The fitted model against the uncompressed one: accuracy, Flash, RAM, instructions."""
    from rich.table import Table

    fp = r.extra["footprint"]
    fit = r.compress.get("fit") or {}
    before, pred, meas = fit.get("before", {}), fp["predicted"], fp["measured"]
    t = Table(title="fit to the device: before (uncompressed) and after (deployed)")
    for col in ("", "before", "after: measured", "after: predicted"):
        t.add_column(col, justify="right")
    comp = r.compress
    acc_data = comp.get("accuracy_data") or "no labelled data"
    if comp.get("accuracy_before") is not None:
        rec = comp.get("accuracy_after_compress")
        mid = f" (compressed {rec:.2f}, recovered {comp['accuracy_after']:.2f})" if rec is not None else ""
        int8 = r.accuracy.get("int8")
        t.add_row(f"accuracy, {acc_data}", f"{comp['accuracy_before']:.2f} % float",
                  f"{int8:.2f} % int8" if int8 is not None else "-", f"{comp['accuracy_after']:.2f} % float{mid}")
    t.add_row("Flash", f"{before.get('flash', 0):,} B (predicted)", f"{meas['flash']:,} B", f"{pred['flash']:,} B")
    t.add_row("RAM (static, linker)", f"{before.get('static_ram', 0):,} B (predicted)", f"{meas['static_ram']:,} B",
              f"{pred['static_ram']:,} B")
    if meas.get("instructions") is not None:
        t.add_row("instructions / inference", f"{before.get('instructions', 0):,.0f} (predicted)",
                  f"{meas['instructions']:,.0f}", f"{pred['instructions']:,.0f}")
    return t
