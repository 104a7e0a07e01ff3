"""`.tflite` (full-integer) -> C for the edgefold micro runtime (firmware/runtime): static arena, const weights.

    manifest = generate(tflite_bytes, out_dir)   # writes model.c, model.h and model.json (the manifest)

model.json (edgefold.core.artifacts.CodegenManifest) states what model.c / model.h promise: model id, arena and
weight bytes, MACs, I/O shapes and quantisation, ops, symbols. The targets read it instead of model.h.

SUPPORTED_OPS maps every TFLite builtin the runtime implements to the highest op version it accepts; the export
stage's coverage gate reads it.
"""

from __future__ import annotations

import os
import re
from typing import Any

from edgefold.compiler.codegen import emit, planner
from edgefold.compiler.codegen.lower import Lowered, Lowerer, UnsupportedOp
from edgefold.compiler.codegen.planner import Plan
from edgefold.compiler.tflite_model import Tensor, TfliteModel, read_tflite

from edgefold.core.artifacts import CodegenManifest, TensorIO
from edgefold.core.errors import EdgefoldError
from edgefold.core.fsutil import ensure_dir, write_text
from edgefold.core.resources import firmware_dir

SUPPORTED_OPS: dict[str, int] = {
    "CONV_2D": 6, "DEPTHWISE_CONV_2D": 7, "FULLY_CONNECTED": 12, "ADD": 5, "SUB": 3, "MUL": 7,
    "SQUARED_DIFFERENCE": 2, "DIV": 2, "MAX_POOL_2D": 3, "AVERAGE_POOL_2D": 3, "MEAN": 3, "PAD": 4, "PADV2": 4,
    "RESHAPE": 2, "SQUEEZE": 2, "EXPAND_DIMS": 2, "QUANTIZE": 3, "DEQUANTIZE": 5, "TRANSPOSE": 6, "SLICE": 6,
    "SOFTMAX": 3, "RSQRT": 3, "BATCH_MATMUL": 4, "CONCATENATION": 4, "SUM": 2, "MAXIMUM": 4, "MINIMUM": 4,
    "LOGISTIC": 3, "TANH": 3, "HARD_SWISH": 1, "LEAKY_RELU": 2, "RELU": 2, "RELU6": 2,
    "STRIDED_SLICE": 8,
}

RUNTIME_DIR = firmware_dir() / "runtime"
DEFAULT_PREFIX = "ef_"

__all__ = ["DEFAULT_PREFIX", "SUPPORTED_OPS", "RUNTIME_DIR", "UnsupportedOp", "check_prefix", "generate", "lower",
           "source_names", "step_table"]


def check_prefix(prefix: str) -> str:
    """The symbol prefix as used: a C identifier starting with a letter, ending in '_' (added when missing)."""
    p = prefix.strip()
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", p):
        raise EdgefoldError(f"--prefix must be a C identifier that starts with a letter (e.g. kws_), got {prefix!r}")
    return p if p.endswith("_") else p + "_"


def source_names(prefix: str = DEFAULT_PREFIX) -> tuple[str, str]:
    """(model.c, model.h) for the default prefix; `{prefix}model.c/.h` otherwise, so two models share a folder."""
    stem = "model" if prefix == DEFAULT_PREFIX else f"{prefix}model"
    return f"{stem}.c", f"{stem}.h"


def lower(tflite: bytes | TfliteModel) -> tuple[TfliteModel, Lowered, Plan]:
    """Parse, lower and plan: (model, lowered, plan)."""
    g = tflite if isinstance(tflite, TfliteModel) else read_tflite(tflite)
    if g.subgraphs > 1:
        raise EdgefoldError("models with more than one subgraph (control flow) are not supported by the edgefold "
                            "runtime")
    lw = Lowerer(g).run(SUPPORTED_OPS)
    plan = planner.plan(lw.buffers, lw.overlaps)
    return g, lw, plan


def step_table(g: TfliteModel, lw: Lowered) -> list[dict[str, Any]]:
    """One row per kernel call of model.c, in order: kernel (C function), op (TFLite), op_index, layer (the PyTorch
    module it came from, else its output tensor) and macs. An op lowered to several calls counts its MACs on the
    first, so the rows add up to the model's MACs."""
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for s in lw.steps:
        op = g.ops[s.op_index] if 0 <= s.op_index < len(g.ops) else None
        if op is None:
            rows.append({"kernel": s.fn, "op": s.op, "op_index": s.op_index, "layer": "?", "macs": 0})
            continue
        outs = g.op_outputs(op)
        layer = op.layer or (outs[0].name if outs else "?")
        rows.append({"kernel": s.fn, "op": op.name, "op_index": op.index, "layer": layer,
                     "macs": 0 if op.index in seen else g.op_macs(op)})
        seen.add(op.index)
    return rows


def _io(t: Tensor) -> TensorIO:
    return TensorIO(list(t.shape), t.dtype, t.nbytes, t.scale, t.zero_point)


def generate(tflite: bytes | TfliteModel, out_dir: str | os.PathLike[str], prefix: str = DEFAULT_PREFIX,
             names: tuple[str, str] | None = None) -> CodegenManifest:
    """Write model.c, model.h and model.json for the model into out_dir (each atomically). Raises UnsupportedOp
    (an EdgefoldError naming the op) when the model needs a kernel the runtime lacks; then nothing is written.
    prefix: of the public symbol (`{prefix}model_run`) and, upper-cased, the header's macros (EF_INPUT_BYTES ...);
    names: the (.c, .h) file names (default: source_names(prefix))."""
    prefix = check_prefix(prefix)
    c_name, h_name = names or source_names(prefix)
    g, lw, plan = lower(tflite)
    weights = sum(c.values.nbytes for c in lw.consts)
    c_src, h_src = emit.render(g, lw, plan, weights, prefix, h_name.removesuffix(".h"))
    manifest = CodegenManifest(model_id=g.model_id, arena_bytes=max(16, plan.arena_bytes), weights_bytes=weights,
                               macs=g.macs, input=_io(g.input_tensors[0]), output=_io(g.output_tensors[0]),
                               backend="edgefold", ops=[op.name for op in g.ops],
                               symbols={"run": f"{prefix}model_run"}, files=[c_name, h_name],
                               steps=step_table(g, lw),
                               extra={} if prefix == DEFAULT_PREFIX else {"prefix": prefix})
    out = ensure_dir(out_dir)
    write_text(out / c_name, c_src)
    write_text(out / h_name, h_src)
    manifest.write(out / CodegenManifest.FILE)
    return manifest
