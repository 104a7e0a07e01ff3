"""`edgefold export`: ONNX / ONNX int8 / TFLite int8 (+ C array) with a fidelity and op-coverage check."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefold.commands.common import (
    add_data_args,
    add_keep_failed,
    add_model_args,
    choice,
    console,
    data_request,
    keep_failed,
    model_request,
    progress,
)
from edgefold.core.vocab import MCU_BACKENDS

FILES = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx", "onnx-int8-qdq": "model_int8.onnx",
         "tflite-int8": "model_int8.tflite", "tflite-int8-tflm": "model_int8.tflite"}
RUNTIMES = {"onnxruntime": "ort", "onnxruntime, QDQ as written": "ort qdq", "ai-edge-litert": "litert",
            "tflite-micro host": "tflm"}


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
                   help="comma-separated: onnx, onnx-int8, tflite-int8 (default: these three), and the packages "
                        "arduino-library (OUT/arduino/: library folder + zip) and c-package (OUT/c/: CMake static "
                        "library + example), each the model as C with the edgefold runtime")
    p.add_argument("--prefix", default="ef_", metavar="NAME",
                   help="packages: prefix of the model's symbols and macros (NAME_model_run, NAME_INPUT_BYTES) and "
                        "the package name (NAME_model); models with different prefixes link into one firmware; "
                        "default ef_")
    add_data_args(p, "calibration inputs (.npz, float32 N x C x H x W); default: 128 built-in digits images",
                  metavar="NPZ")
    p.add_argument("--target-backend", type=choice("target backend", MCU_BACKENDS), default="tflm",
                   help="which firmware's op set gates the .tflite: tflm or edgefold (default: tflm)")
    p.add_argument("--onnx-reduce-range", action="store_true",
                   help="ONNX int8 weights in -64..64 instead of -127..127: less precise, but onnxruntime's int8 "
                        "kernels on x86 CPUs without VNNI then cannot saturate (the check flags when they do)")
    p.add_argument("--no-check", action="store_true", help="skip the fidelity check and TFLM arena measurement")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_keep_failed(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from edgefold.api import ExportRequest, export_to_dir

    req = ExportRequest(Path(args.out), model_request(args), Path(args.from_dir) if args.from_dir else None,
                        args.format, None, args.target_backend, check=not args.no_check, data=data_request(args),
                        keep_failed=keep_failed(args), prefix=args.prefix,
                        onnx_reduce_range=args.onnx_reduce_range)
    with progress("export") as status:
        check = export_to_dir(req, status)
    t = Table(title=f"{check.model} -> {args.out}")
    t.add_column("format", no_wrap=True)
    t.add_column("runtime", no_wrap=True)
    for col in ("bytes", "agree %", "acc %", "max|err|"):
        t.add_column(col, justify="right", no_wrap=True)
    fid = check.fidelity
    if "torch" in fid:
        t.add_row("float", "pytorch", "", "100.00", _pct(fid["torch"].get("accuracy")), "0")
    shown = [g for f in check.formats for g in (f, f"{f}-qdq", f"{f}-tflm") if g == f or g in fid]
    for fmt in shown:
        f = fid.get(fmt)
        t.add_row(fmt.replace("-tflm", "").replace("-qdq", ""), RUNTIMES.get(f["runtime"], f["runtime"]) if f else "-",
                  f"{check.files.get(FILES[fmt], 0):,}", _pct(f["agreement"]) if f else "-",
                  _pct(f["accuracy"]) if f else "-", f"{f['max_abs_error']:.4f}" if f else "-")
    console.print(t)
    if check.tflm_arena_bytes:
        console.print(f"TFLM arena: {check.tflm_arena_bytes:,} bytes (64-bit host estimate)")
    if check.ops:
        ops = ", ".join(f"{k} v{v}" for k, v in check.ops.items())
        status_word = check.coverage.get("status", "?") if check.coverage else "?"
        console.print(f"ops ({check.target_backend}: {status_word}): {ops}")
    for flag in check.flags:
        console.print(f"[yellow]flag:[/] {flag}")
    console.print(f"wrote {', '.join(sorted(check.files))}, {check.FILE}")
    for fmt, path in check.extra.get("packages", {}).items():
        console.print(f"{fmt}: {path}")
    return 0


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"
