"""`edgefold codegen`: .tflite (full-integer) -> model.c / model.h for the edgefold micro runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefold.commands.common import console
from edgefold.core.errors import EdgefoldError

MODEL_FILE = "model_int8.tflite"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("codegen", help="generate C (model.c, model.h) for the edgefold micro runtime")
    p.add_argument("--from", dest="src", required=True, metavar="DIR|FILE",
                   help=f"an export folder holding {MODEL_FILE}, or a .tflite file")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for model.c and model.h")
    p.set_defaults(func=run)


def _blob(src: str) -> bytes:
    path = Path(src)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise EdgefoldError(f"{path} not found (run `edgefold export` first, or pass a .tflite file)")
    return path.read_bytes()


def run(args: argparse.Namespace) -> int:
    from edgefold.compiler.codegen import RUNTIME_DIR, generate

    res = generate(_blob(args.src), args.out)
    console.print(f"model {res.model_id}: {len(res.ops)} ops, {res.macs:,} MACs")
    console.print(f"arena: {res.arena_bytes:,} bytes (static, planned ahead of time)")
    console.print(f"weights: {res.weights_bytes:,} bytes (const, in flash)")
    console.print(f"wrote {', '.join(str(f) for f in res.files)}; compile with {RUNTIME_DIR}/*.c -I{RUNTIME_DIR}")
    return 0
