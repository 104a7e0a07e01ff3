"""`edgefold codegen`: .tflite (full-integer) -> model.c / model.h / model.json for the edgefold micro runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefold.commands.common import add_keep_failed, console, keep_failed, progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("codegen", help="generate C (model.c, model.h) for the edgefold micro runtime")
    p.add_argument("--from", dest="src", required=True, metavar="DIR|FILE",
                   help="an export folder holding model_int8.tflite, or a .tflite file")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for model.c, model.h and model.json (what they promise: arena, MACs, I/O, ops)")
    add_keep_failed(p)
    p.add_argument("--prefix", default="ef_", metavar="NAME",
                   help="prefix of the model's symbols and macros (NAME_model_run, NAME_INPUT_BYTES; files "
                        "NAME_model.c/.h), so that several models link into one firmware; default ef_")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefold.api import codegen_to_dir
    from edgefold.compiler.codegen import RUNTIME_DIR

    with progress("codegen") as status:
        res = codegen_to_dir(Path(args.src), Path(args.out), status, keep_failed(args), args.prefix)
    console.print(f"model {res.model_id}: {len(res.ops)} ops, {res.macs:,} MACs")
    console.print(f"arena: {res.arena_bytes:,} bytes (static, planned ahead of time)")
    console.print(f"weights: {res.weights_bytes:,} bytes (const, in flash)")
    files = [Path(args.out) / f for f in [*res.files, res.FILE]]
    console.print(f"wrote {', '.join(map(str, files))}; compile with {RUNTIME_DIR}/*.c -I{RUNTIME_DIR}")
    return 0
