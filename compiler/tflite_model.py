"""The one reader of `.tflite` flatbuffers: tensors (shape, type, quantisation, constant data), operators (builtin
name, version, options, the PyTorch layer they came from), graph inputs/outputs, constant bytes, MACs and the
I/O quantisation. Export's checks, the op-coverage gate, codegen and the targets' fit check all read this.

    m = read_tflite(blob)          # EdgefoldError (one line) on anything that is not a readable model
    m.op_versions(), m.macs, m.constant_bytes, m.io(), m.input_tensors[0].scale

Only the first subgraph is read (`subgraphs` says how many there are: control flow needs more than one).
A flatbuffer is read lazily by the `tflite` package, so a truncated or corrupt file fails in the middle of
the walk (struct.error, IndexError, ...): the whole walk is guarded and every index is checked, so a caller
sees an EdgefoldError or a consistent model, never a half-read one.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tflite

from edgefold.core.errors import EdgefoldError

_OP_NAMES: dict[int, str] = {v: k for k, v in vars(tflite.BuiltinOperator).items()
                             if not k.startswith("_") and isinstance(v, int)}
_OPT_NAMES: dict[int, str] = {v: k for k, v in vars(tflite.BuiltinOptions).items()
                              if not k.startswith("_") and isinstance(v, int)}
_TYPE_NAMES: dict[int, str] = {v: k for k, v in vars(tflite.TensorType).items()
                               if not k.startswith("_") and isinstance(v, int)}
# TensorType -> numpy type of the constant data; other types (float16, int4, strings...) keep data=None
_NUMPY: dict[str, type] = {"float32": np.float32, "int32": np.int32, "int8": np.int8, "uint8": np.uint8,
                           "int64": np.int64, "int16": np.int16, "bool": np.bool_, "float16": np.float16,
                           "float64": np.float64, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
                           "complex64": np.complex64, "complex128": np.complex128}
_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # lower-case TensorType name: int8, int32, float32, float16, ...
    scales: np.ndarray | None = None  # float32, per-tensor (1) or per-channel
    zero_points: np.ndarray | None = None  # int64
    quant_dim: int = 0
    data: np.ndarray | None = None  # constant tensors whose type numpy knows, shaped
    const_bytes: int = 0  # bytes in the tensor's buffer (0: not a constant)

    @property
    def type_name(self) -> str:
        """The TensorType name as TFLite spells it (INT8, FLOAT32, ...)."""
        return self.dtype.upper()

    @property
    def size(self) -> int:
        return math.prod(self.shape) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(_NUMPY.get(self.dtype, np.int8)).itemsize

    @property
    def scale(self) -> float:
        return float(self.scales[0]) if self.scales is not None and len(self.scales) else 0.0

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if self.zero_points is not None and len(self.zero_points) else 0

    @property
    def is_const(self) -> bool:
        return self.data is not None or self.const_bytes > 0

    def quantisation(self) -> dict[str, Any]:
        """name, dtype (TFLite spelling), shape, scale and zero point lists: what check.json records per I/O."""
        return {"name": self.name, "dtype": self.type_name, "shape": list(self.shape),
                "scale": [] if self.scales is None else [float(s) for s in self.scales],
                "zero_point": [] if self.zero_points is None else [int(z) for z in self.zero_points]}


@dataclass
class Op:
    index: int
    name: str  # builtin op name (BuiltinOperator), or "CUSTOM:<code>"
    version: int
    inputs: list[int]  # tensor indices; -1 marks an omitted optional input
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)
    layer: str = ""  # the PyTorch module it came from (from the converter's tensor names), best effort


@dataclass
class TfliteModel:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    model_id: str  # first 16 hex digits of the file's sha256
    subgraphs: int = 1
    size_bytes: int = 0
    constant_bytes: int = 0  # bytes of constant tensor data (a buffer shared by several tensors counted once)

    @property
    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.inputs]

    @property
    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.outputs]

    def op_inputs(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.inputs if i >= 0]

    def op_outputs(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs if i >= 0]

    def op_versions(self) -> dict[str, int]:
        """Each op used, with the highest version any instance of it needs."""
        out: dict[str, int] = {}
        for op in self.ops:
            out[op.name] = max(out.get(op.name, 0), op.version)
        return dict(sorted(out.items()))

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the conv / depthwise / fully-connected / batch-matmul ops (the bulk of every
        CNN and ViT here; element-wise ops and pooling are not counted)."""
        return sum(self.op_macs(op) for op in self.ops)

    def op_macs(self, op: Op) -> int:
        """One op's multiply-accumulates: conv, depthwise, fully-connected and batch-matmul; 0 for the others."""
        if len(op.inputs) < 2 or not op.outputs or min(op.inputs[:2] + op.outputs[:1]) < 0:
            return 0
        out = self.tensors[op.outputs[0]].size
        x, w = self.tensors[op.inputs[0]].shape, self.tensors[op.inputs[1]].shape
        if op.name == "CONV_2D" and len(w) == 4:
            return out * w[1] * w[2] * w[3]
        if op.name == "DEPTHWISE_CONV_2D" and len(w) == 4:
            return out * w[1] * w[2]
        if op.name == "FULLY_CONNECTED" and len(w) == 2:
            return out * w[1]
        if op.name == "BATCH_MATMUL" and len(x) >= 2:
            return out * (x[-2] if op.options.get("AdjX") else x[-1])
        return 0

    def io(self) -> dict[str, dict[str, Any]]:
        """The first input's and output's quantisation (see Tensor.quantisation)."""
        return {"input": self.input_tensors[0].quantisation(), "output": self.output_tensors[0].quantisation()}

    def layout_flags(self) -> list[str]:
        """TRANSPOSE/GATHER ops that feed, or are fed by, a CONV_2D/DEPTHWISE_CONV_2D: the converter inserts them
        when the input layout is wrong, and on an MCU each costs a full copy of the activation."""
        producer = {t: op for op in self.ops for t in op.outputs if t >= 0}
        consumers: dict[int, list[Op]] = {}
        for op in self.ops:
            for t in op.inputs:
                consumers.setdefault(t, []).append(op)
        flags = []
        for op in self.ops:
            if op.name not in ("TRANSPOSE", "GATHER"):
                continue
            before = [producer[t] for t in op.inputs if t in producer]
            after = [c for t in op.outputs for c in consumers.get(t, [])]
            convs = [n for n in before + after if n.name in _CONVS]
            if convs:
                flags.append(f"{op.name} (op {op.index}, {op.layer}) next to {convs[0].name} (op {convs[0].index}, "
                             f"{convs[0].layer}): layout transpose around a convolution")
        return flags


def layer_from_tensor_name(name: str) -> str:
    """Module path from a converter tensor name.

    '…ChannelLastIOWrapper/pkg.ResNet_wrapped/…Sequential_layers/…BasicBlock_0/…Conv2d_conv1;1' -> 'layers.0.conv1'
    """
    first = name.split(";")[0]
    if "/" not in first:  # converter constants (tfl.pseudo_qconst3, arith.constant) carry no module scope
        return ""
    parts: list[str] = []
    for comp in first.split("/"):
        last = comp.rsplit(".", 1)[-1]
        if "_" not in last:
            continue
        cls, attr = last.split("_", 1)
        if cls == "ChannelLastIOWrapper" or (attr == "wrapped" and not parts):
            continue
        parts.append(attr)
    return ".".join(parts)


def op_layer(outputs: list[Tensor], inputs: list[Tensor]) -> str:
    """The layer an op came from: the first non-constant tensor (outputs first) whose name carries a module path."""
    top = False
    for t in outputs + inputs:
        if not t.is_const:
            layer = layer_from_tensor_name(t.name)
            if layer:
                return layer
            top = top or "/" in t.name or "_wrapped" in t.name
    if top:
        return "(model top level)"
    return outputs[0].name if outputs else "?"


def read_tflite_file(path: str | os.PathLike) -> TfliteModel:
    p = Path(path)
    try:
        blob = p.read_bytes()
    except OSError as e:
        raise EdgefoldError(f"cannot read {p}: {e.strerror or e}") from None
    try:
        return read_tflite(blob)
    except EdgefoldError as e:
        raise EdgefoldError(f"{p}: {e}") from None


def read_tflite(blob: bytes) -> TfliteModel:
    """Parse the first subgraph of a .tflite model (see the module docstring)."""
    blob = bytes(blob)
    if len(blob) < 8:
        raise EdgefoldError(f"not a valid .tflite model: {len(blob)} bytes")
    try:
        return _read(blob)
    except EdgefoldError:
        raise
    except Exception as e:  # noqa: BLE001 - the tflite package reads lazily: a corrupt file fails anywhere
        why = " ".join(str(e).split())[:160]
        raise EdgefoldError(f"not a valid .tflite model (corrupt or truncated flatbuffer: {type(e).__name__}"
                            f"{': ' + why if why else ''})") from None


def _bad(what: str) -> EdgefoldError:
    return EdgefoldError(f"not a valid .tflite model: {what}")


def _read(blob: bytes) -> TfliteModel:
    model = tflite.Model.GetRootAsModel(blob, 0)
    n_sub = model.SubgraphsLength()
    if n_sub < 1:
        raise _bad("no subgraph")
    sg = model.Subgraphs(0)
    n_buf, n_codes, n_t = model.BuffersLength(), model.OperatorCodesLength(), sg.TensorsLength()
    tensors = [_tensor(model, sg, i, n_buf, blob) for i in range(n_t)]
    consts_seen: set[int] = set()
    const_total = 0
    for i in range(n_t):
        b = sg.Tensors(i).Buffer()
        if tensors[i].const_bytes and b not in consts_seen:
            consts_seen.add(b)
            const_total += tensors[i].const_bytes

    def indices(arr: np.ndarray, what: str, optional: bool) -> list[int]:
        out = [int(x) for x in arr]
        for x in out:
            if not (-1 if optional else 0) <= x < n_t:
                raise _bad(f"{what} refers to tensor {x}, the subgraph has {n_t}")
        return out

    ops = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        ci = op.OpcodeIndex()
        if ci >= n_codes:
            raise _bad(f"operator {i} uses operator code {ci}, the model has {n_codes}")
        oc = model.OperatorCodes(ci)
        # Builtin codes above 127 live in BuiltinCode(); older files only fill DeprecatedBuiltinCode().
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        name = _OP_NAMES.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            name = f"CUSTOM:{(oc.CustomCode() or b'').decode(errors='replace')}"
        ins = indices(op.InputsAsNumpy() if op.InputsLength() else np.zeros(0), f"operator {i} input", True)
        outs = indices(op.OutputsAsNumpy() if op.OutputsLength() else np.zeros(0), f"operator {i} output", True)
        layer = op_layer([tensors[t] for t in outs if t >= 0], [tensors[t] for t in ins if t >= 0])
        ops.append(Op(i, name, int(oc.Version()), ins, outs, _options(op), layer))
    g_in = indices(sg.InputsAsNumpy() if sg.InputsLength() else np.zeros(0), "subgraph input", False)
    g_out = indices(sg.OutputsAsNumpy() if sg.OutputsLength() else np.zeros(0), "subgraph output", False)
    if not g_in or not g_out:
        raise _bad("the subgraph has no input or no output tensor")
    return TfliteModel(tensors, ops, g_in, g_out, hashlib.sha256(blob).hexdigest()[:16], n_sub, len(blob),
                       const_total)


def _tensor(model: Any, sg: Any, i: int, n_buf: int, blob: bytes) -> Tensor:
    t = sg.Tensors(i)
    dtype = _TYPE_NAMES.get(t.Type(), f"type{t.Type()}").lower()
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    ten = Tensor(i, (t.Name() or b"").decode(errors="replace"), shape, dtype)
    if any(d < 0 for d in shape):  # unknown sizes live in shape_signature; shape itself is concrete
        raise _bad(f"tensor {i} ({ten.name[:60]}) has a negative dimension in its shape {list(shape)}")
    q = t.Quantization()
    if q is not None and q.ScaleLength():
        ten.scales = q.ScaleAsNumpy().astype(np.float32)
        ten.zero_points = (q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength()
                           else np.zeros(len(ten.scales), np.int64))
        ten.quant_dim = int(q.QuantizedDimension())
        # what every consumer divides by or indexes with: checked once here
        if not (np.all(np.isfinite(ten.scales)) and np.all(ten.scales > 0)):
            raise _bad(f"tensor {i} ({ten.name[:60]}) has a quantisation scale that is not a positive number")
        if len(ten.zero_points) != len(ten.scales):
            raise _bad(f"tensor {i} ({ten.name[:60]}) has {len(ten.scales)} scales but "
                       f"{len(ten.zero_points)} zero points")
        if len(ten.scales) > 1 and not (0 <= ten.quant_dim < len(shape)
                                        and shape[ten.quant_dim] == len(ten.scales)):
            raise _bad(f"tensor {i} ({ten.name[:60]}) has {len(ten.scales)} per-channel scales on dimension "
                       f"{ten.quant_dim} of shape {list(shape)}")
    b = t.Buffer()
    if b >= n_buf:
        raise _bad(f"tensor {i} refers to buffer {b}, the model has {n_buf}")
    buf = model.Buffers(b)
    raw: bytes | None = None
    if buf.Offset() > 1:  # large models keep constant data after the flatbuffer, at an offset into the file
        off, size = int(buf.Offset()), int(buf.Size())
        if off + size > len(blob):
            raise _bad(f"tensor {i}'s data lies beyond the end of the file (truncated?)")
        raw = blob[off:off + size]
    elif buf.DataLength():
        raw = buf.DataAsNumpy().tobytes()
    if raw:
        ten.const_bytes = len(raw)
        np_type = _NUMPY.get(dtype)
        if np_type is not None:
            want = math.prod(shape) * np.dtype(np_type).itemsize if shape else np.dtype(np_type).itemsize
            if any(d < 0 for d in shape) or len(raw) != want:
                raise _bad(f"tensor {i} ({ten.name[:60]}) holds {len(raw)} bytes of data, its shape "
                           f"{list(shape)} of {dtype} needs {want}")
            ten.data = np.frombuffer(raw, np_type).reshape(shape)
    return ten


def _options(op: Any) -> dict[str, Any]:
    """The operator's builtin options as {getter name: value}."""
    kind = op.BuiltinOptionsType()
    table = op.BuiltinOptions() if kind else None
    cls = getattr(tflite, _OPT_NAMES.get(kind, ""), None)
    if table is None or cls is None:
        return {}
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    out = {}
    for name, fn in inspect.getmembers(obj, inspect.ismethod):
        if name.startswith(("Init", "GetRootAs", "_")) or name.endswith(("BufferHasIdentifier", "Length", "IsNone")):
            continue
        if len(inspect.signature(fn).parameters) == 0:
            try:
                out[name] = fn()
            except Exception:  # noqa: BLE001 - a getter for an absent vector
                continue
    return out
