"""`edgefold export`: ONNX / ONNX int8 / TFLite int8 (+ C array) with a fidelity and op-coverage check."""

from __future__ import annotations

import argparse

from edgefold.commands.common import add_model_args, console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export to ONNX, ONNX int8 and TFLite int8, checked against PyTorch",
                       description="Export a model to ONNX (float), ONNX int8 (QDQ) and full-integer TFLite int8 "
                                   "(+ the .tflite as a C array), check every format against the float PyTorch "
                                   "model on held-out digits data (also on the TFLite Micro host interpreter), "
                                   "gate the ops on the target backend, and write check.json.")
    add_model_args(p)
    p.add_argument("--from", dest="from_dir", metavar="DIR",
                   help="folder written by `edgefold compress` (loads DIR/model.pt)")
    p.add_argument("--format", default="onnx,onnx-int8,tflite-int8",
                   help="comma-separated: onnx, onnx-int8, tflite-int8 (default: all)")
    p.add_argument("--calib", metavar="NPZ",
                   help="calibration inputs (.npz, float32 N x C x H x W); default: 128 built-in digits images")
    p.add_argument("--target-backend", choices=["tflm", "edgefold"], default="tflm",
                   help="which firmware's op set gates the .tflite (default: tflm)")
    p.add_argument("--no-check", action="store_true", help="skip the fidelity check and TFLM arena measurement")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=run)


def _load(args: argparse.Namespace):
    from pathlib import Path

    from edgefold.commands.common import resolve_model
    from edgefold.core.errors import EdgefoldError

    if not args.from_dir:
        return resolve_model(args)
    from edgefold.compiler.checkpoint import ModelSpec, check_input_shape, load_model, parse_input_shape

    if args.weights:
        raise EdgefoldError("pass either --weights or --from, not both")
    d = Path(args.from_dir)
    if not d.is_dir():
        raise EdgefoldError(f"--from folder not found: {d}")
    ckpt = d / "model.pt"
    if not ckpt.is_file():
        raise EdgefoldError(f"{d} has no model.pt: pass a folder written by `edgefold compress`")
    spec = ModelSpec(name=args.model, factory=args.factory) if (args.model or args.factory) else None
    loaded = load_model(ckpt, spec, args.trust_checkpoint)
    if args.input_shape:
        loaded.spec.input_shape = parse_input_shape(args.input_shape)
    if not loaded.spec.input_shape:
        raise EdgefoldError(f"{ckpt} does not record the input shape: pass --input-shape N,C,H,W")
    check_input_shape(loaded.model, loaded.spec.input_shape)
    return loaded


def run(args: argparse.Namespace) -> int:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from edgefold.compiler.export import export_all, parse_formats

    formats = parse_formats(args.format)  # an unknown format fails before any work
    loaded = _load(args)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True) as prog:
        task = prog.add_task(f"exporting {loaded.spec.label}")
        report = export_all(loaded.model, loaded.spec.input_shape, args.out, formats, args.calib,
                            args.target_backend, check=not args.no_check, label=loaded.spec.label,
                            on_stage=lambda s: prog.update(task, description=f"{loaded.spec.label}: {s}"))
    t = Table(title=f"{loaded.spec.label} -> {args.out}")
    t.add_column("format", no_wrap=True)
    t.add_column("runtime", no_wrap=True)
    for col in ("bytes", "agree %", "acc %", "max|err|"):
        t.add_column(col, justify="right", no_wrap=True)
    files = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx", "tflite-int8": "model_int8.tflite",
             "tflite-int8-tflm": "model_int8.tflite"}
    if "torch" in report.fidelity:
        t.add_row("float", "pytorch", "", "100.00", _pct(report.fidelity["torch"].accuracy), "0")
    shown = [*report.formats, *(["tflite-int8-tflm"] if "tflite-int8" in report.formats else [])]
    for fmt in shown:
        f = report.fidelity.get(fmt)
        runtime = {"onnxruntime": "ort", "ai-edge-litert": "litert", "tflite-micro host": "tflm"}.get(
            f.runtime, f.runtime) if f else "-"
        t.add_row(fmt.replace("-tflm", ""), runtime, f"{report.sizes.get(files[fmt], 0):,}",
                  _pct(f.agreement) if f else "-", _pct(f.accuracy) if f else "-",
                  f"{f.max_abs_error:.4f}" if f else "-")
    console.print(t)
    if report.tflm_arena_bytes:
        console.print(f"TFLM arena: {report.tflm_arena_bytes:,} bytes (64-bit host estimate)")
    if report.ops:
        ops = ", ".join(f"{k} v{v}" for k, v in report.ops.items())
        cov = report.coverage
        console.print(f"ops ({report.target_backend}: {cov.status if cov else '?'}): {ops}")
    for flag in report.flags:
        console.print(f"[yellow]flag:[/] {flag}")
    console.print(f"wrote {', '.join(sorted(report.sizes))}, check.json")
    return 0


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"
