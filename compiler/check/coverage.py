"""Op coverage gate: which builtin ops (and op versions) a .tflite uses, against what a target backend registers.

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
_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")
_LAYOUT_OPS = ("TRANSPOSE", "GATHER")


@dataclass
class TensorInfo:
    index: int
    name: str
    dtype: str  # TFLite TensorType name: INT8, INT32, FLOAT32, ...
    shape: list[int]
    is_const: bool = False
    scale: list[float] = field(default_factory=list)  # quantisation (empty for float tensors)
    zero_point: list[int] = field(default_factory=list)


@dataclass
class OpInfo:
    index: int
    name: str  # builtin op name (BuiltinOperator), or "CUSTOM:<code>"
    version: int
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    @property
    def layer(self) -> str:
        """The PyTorch module the op came from, read from the converter's tensor names (best effort)."""
        top = False
        for t in self.outputs + self.inputs:
            if not t.is_const:
                layer = layer_from_tensor_name(t.name)
                if layer:
                    return layer
                top = top or "/" in t.name or "_wrapped" in t.name
        if top:
            return "(model top level)"
        return self.outputs[0].name if self.outputs else "?"


@dataclass
class ModelInfo:
    ops: list[OpInfo]
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def op_versions(self) -> dict[str, int]:
        """Each op used, with the highest version any instance of it needs."""
        out: dict[str, int] = {}
        for op in self.ops:
            out[op.name] = max(out.get(op.name, 0), op.version)
        return dict(sorted(out.items()))


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


def layer_from_tensor_name(name: str) -> str:
    """Module path from a converter tensor name.

    '…ChannelLastIOWrapper/pkg.ResNet_wrapped/…Sequential_layers/…BasicBlock_0/…Conv2d_conv1;1' -> 'layers.0.conv1'
    """
    first = name.split(";")[0]
    if "/" not in first:  # converter constants (tfl.pseudo_qconst3, arith.constant) carry no module scope
        return ""
    parts = []
    for comp in first.split("/"):
        last = comp.rsplit(".", 1)[-1]
        if "_" not in last:
            continue
        cls, attr = last.split("_", 1)
        if cls == "ChannelLastIOWrapper" or (attr == "wrapped" and not parts):
            continue
        parts.append(attr)
    return ".".join(parts)


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def read_model(blob: bytes) -> ModelInfo:
    """Parse the first subgraph of a .tflite flatbuffer with the `tflite` schema package."""
    import tflite

    try:
        model = tflite.Model.GetRootAsModel(bytes(blob), 0)
        sg = model.Subgraphs(0)
    except Exception as e:  # noqa: BLE001 - a corrupt file is a user error
        raise EdgefoldError(f"not a readable .tflite flatbuffer: {type(e).__name__}: {e}") from None
    if sg is None:
        raise EdgefoldError("the .tflite has no subgraph")
    op_names, type_names = _enum_names(tflite.BuiltinOperator), _enum_names(tflite.TensorType)

    def tensor(i: int) -> TensorInfo:
        t = sg.Tensors(i)
        buf = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
        const = bool(buf is not None and (buf.DataLength() > 0 or buf.Size() > 0))
        shape = t.ShapeAsNumpy().tolist() if t.ShapeLength() else []
        q = t.Quantization()
        scale = q.ScaleAsNumpy().tolist() if q is not None and q.ScaleLength() else []
        zp = q.ZeroPointAsNumpy().tolist() if q is not None and q.ZeroPointLength() else []
        return TensorInfo(i, t.Name().decode(errors="replace"), type_names.get(t.Type(), str(t.Type())), shape, const,
                          scale, zp)

    ops = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        # Builtin codes above 127 live in BuiltinCode(); older files only fill DeprecatedBuiltinCode().
        b = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = op_names.get(b, f"BUILTIN_{b}")
        if name == "CUSTOM":
            name = f"CUSTOM:{(code.CustomCode() or b'').decode(errors='replace')}"
        ins = [tensor(op.Inputs(j)) for j in range(op.InputsLength()) if op.Inputs(j) >= 0]
        outs = [tensor(op.Outputs(j)) for j in range(op.OutputsLength()) if op.Outputs(j) >= 0]
        ops.append(OpInfo(i, name, int(code.Version()), ins, outs))
    inputs = [tensor(sg.Inputs(j)) for j in range(sg.InputsLength())]
    outputs = [tensor(sg.Outputs(j)) for j in range(sg.OutputsLength())]
    return ModelInfo(ops, inputs, outputs)


def layout_flags(info: ModelInfo) -> list[str]:
    """TRANSPOSE/GATHER ops that feed, or are fed by, a CONV_2D/DEPTHWISE_CONV_2D."""
    producer = {t.index: op for op in info.ops for t in op.outputs}
    consumers: dict[int, list[OpInfo]] = {}
    for op in info.ops:
        for t in op.inputs:
            consumers.setdefault(t.index, []).append(op)
    flags = []
    for op in info.ops:
        if op.name not in _LAYOUT_OPS:
            continue
        before = [producer[t.index] for t in op.inputs if t.index in producer]
        after = [c for t in op.outputs for c in consumers.get(t.index, [])]
        convs = [n for n in before + after if n.name in _CONVS]
        if convs:
            flags.append(f"{op.name} (op {op.index}, {op.layer}) next to {convs[0].name} (op {convs[0].index}, "
                         f"{convs[0].layer}): layout transpose around a convolution")
    return flags


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


def check_coverage(blob: bytes | ModelInfo, backend: str = "tflm") -> CoverageReport:
    """Gate a model on a backend: raise EdgefoldError naming the first op (and its layer) it cannot run."""
    info = blob if isinstance(blob, ModelInfo) else read_model(blob)
    table = backend_ops(backend)
    if table is not None:
        for op in info.ops:
            if op.name not in table:
                tensor = op.outputs[0].name[:120] if op.outputs else "?"
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
                          layout_flags(info), resolver)
