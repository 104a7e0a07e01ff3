"""`.tflite` (full-integer) -> C for the edgefold micro runtime (firmware/runtime): static arena, const weights.

    result = generate(tflite_bytes, out_dir)   # writes model.c, model.h

SUPPORTED_OPS maps every TFLite builtin the runtime implements to the highest op version it accepts; the export
stage's coverage gate reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgefold.compiler.codegen import emit, planner, reader
from edgefold.compiler.codegen.lower import Lowerer, UnsupportedOp

from edgefold.core.fsutil import ensure_dir, write_text
from edgefold.core.resources import firmware_dir

SUPPORTED_OPS: dict[str, int] = {
    "CONV_2D": 6, "DEPTHWISE_CONV_2D": 7, "FULLY_CONNECTED": 12, "ADD": 5, "SUB": 3, "MUL": 7,
    "SQUARED_DIFFERENCE": 2, "DIV": 2, "MAX_POOL_2D": 3, "AVERAGE_POOL_2D": 3, "MEAN": 3, "PAD": 4, "PADV2": 4,
    "RESHAPE": 2, "SQUEEZE": 2, "EXPAND_DIMS": 2, "QUANTIZE": 3, "DEQUANTIZE": 5, "TRANSPOSE": 6, "SLICE": 6,
    "SOFTMAX": 3, "RSQRT": 3, "BATCH_MATMUL": 4, "CONCATENATION": 4,
}

RUNTIME_DIR = firmware_dir() / "runtime"

__all__ = ["SUPPORTED_OPS", "RUNTIME_DIR", "CodegenResult", "UnsupportedOp", "generate", "lower"]


@dataclass
class CodegenResult:
    arena_bytes: int
    weights_bytes: int
    ops: list[str]
    macs: int
    model_id: str = ""
    files: tuple[Path, ...] = ()


def lower(tflite_bytes: bytes):
    """Parse, lower and plan: (graph, lowered, plan)."""
    g = reader.read(tflite_bytes)
    lw = Lowerer(g).run(SUPPORTED_OPS)
    plan = planner.plan(lw.buffers, lw.overlaps)
    return g, lw, plan


def generate(tflite_bytes: bytes, out_dir: str | Path) -> CodegenResult:
    """Write model.c and model.h for `tflite_bytes` into out_dir (atomically). Raises UnsupportedOp (an
    EdgefoldError naming the op) when the model needs a kernel the runtime lacks."""
    g, lw, plan = lower(tflite_bytes)
    weights = sum(c.values.nbytes for c in lw.consts)
    c_src, h_src = emit.render(g, lw, plan, weights)
    out = ensure_dir(out_dir)
    files = (write_text(out / "model.c", c_src), write_text(out / "model.h", h_src))
    return CodegenResult(max(16, plan.arena_bytes), weights, [op.name for op in g.ops], lw.macs, g.model_id, files)
