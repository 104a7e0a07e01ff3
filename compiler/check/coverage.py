"""Op coverage gate: which builtin ops (and op versions) a .tflite uses (read by edgefold.compiler.tflite_model),
against what a target backend registers.

Backends:
  "tflm"      the TensorFlow Lite Micro builtin kernels the board firmware's MicroMutableOpResolver can register
              (TFLM looks kernels up by builtin code only, so any op version is accepted).
  "edgefold"  the edgefold micro runtime: `edgefold.compiler.codegen.SUPPORTED_OPS` (op name -> max version);
              while codegen is not installed its coverage is "unknown" and nothing is gated.
It also flags TRANSPOSE/GATHER next to a convolution: the converter inserts them when the input layout is wrong,
and on an MCU they cost a full copy of the activation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgefold.compiler.tflite_model import TfliteModel, read_tflite

from edgefold.core.errors import EdgefoldError

# TFLM builtin op -> MicroMutableOpResolver method that registers its kernel (int8 reference kernels exist
# for all of these). Firmware generators can emit exactly the Add* calls a model needs.
TFLM_OPS: dict[str, str] = {
    "ADD": "AddAdd",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "EXPAND_DIMS": "AddExpandDims",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "HARD_SWISH": "AddHardSwish",
    "LEAKY_RELU": "AddLeakyRelu",
    "LOGISTIC": "AddLogistic",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MUL": "AddMul",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "QUANTIZE": "AddQuantize",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "RSQRT": "AddRsqrt",
    "SHAPE": "AddShape",
    "SOFTMAX": "AddSoftmax",
    "SPLIT": "AddSplit",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNPACK": "AddUnpack",
}

BACKENDS = ("tflm", "edgefold")


@dataclass
class CoverageReport:
    backend: str
    ops: dict[str, int]
    status: str  # "covered" | "unknown" (backend's op table not available)
    flags: list[str] = field(default_factory=list)
    resolver: list[str] = field(default_factory=list)  # TFLM: MicroMutableOpResolver calls this model needs

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "ops": self.ops, "status": self.status, "flags": self.flags,
                "resolver": self.resolver}


def backend_ops(backend: str) -> dict[str, int | None] | None:
    """The ops a backend registers (op -> max version, None = any), or None if not known yet."""
    if backend == "tflm":
        return dict.fromkeys(TFLM_OPS)
    if backend == "edgefold":
        try:
            from edgefold.compiler.codegen import SUPPORTED_OPS
        except ImportError:
            return None
        return dict(SUPPORTED_OPS)
    raise EdgefoldError(f"unknown target backend '{backend}'; choose one of: {', '.join(BACKENDS)}")


def check_coverage(blob: bytes | TfliteModel, backend: str = "tflm") -> CoverageReport:
    """Gate a model on a backend: raise EdgefoldError naming the first op (and its layer) it cannot run."""
    info = blob if isinstance(blob, TfliteModel) else read_tflite(blob)
    table = backend_ops(backend)
    if table is not None:
        for op in info.ops:
            if op.name not in table:
                outs = info.op_outputs(op)
                tensor = outs[0].name[:120] if outs else "?"
                raise EdgefoldError(f"op {op.name} v{op.version} (from layer '{op.layer}', tensor {tensor}) "
                                    f"is not supported by the {backend} backend")
            max_v = table[op.name]
            if max_v is not None and op.version > max_v:
                raise EdgefoldError(
                    f"op {op.name} version {op.version} (from layer '{op.layer}') is newer than the {backend} "
                    f"backend supports (up to v{max_v})"
                )
    resolver = sorted({TFLM_OPS[n] for n in info.op_versions() if n in TFLM_OPS}) if backend == "tflm" else []
    return CoverageReport(backend, info.op_versions(), "covered" if table is not None else "unknown",
                          info.layout_flags(), resolver)
