"""Parse a .tflite flatbuffer (the `tflite` schema package) into plain Python: tensors with quantisation and
constant data, operators with their builtin options as a dict."""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field

import numpy as np
import tflite

from edgefold.core.errors import EdgefoldError

_OP_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
_OPT_NAMES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_") and isinstance(v, int)}
_DTYPES = {
    tflite.TensorType.FLOAT32: ("float32", np.float32),
    tflite.TensorType.INT32: ("int32", np.int32),
    tflite.TensorType.INT8: ("int8", np.int8),
    tflite.TensorType.UINT8: ("uint8", np.uint8),
    tflite.TensorType.INT64: ("int64", np.int64),
    tflite.TensorType.INT16: ("int16", np.int16),
    tflite.TensorType.BOOL: ("bool", np.bool_),
}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scales: np.ndarray | None = None  # float32 per-tensor (1) or per-channel
    zero_points: np.ndarray | None = None
    quant_dim: int = 0
    data: np.ndarray | None = None  # constant tensors only

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    @property
    def scale(self) -> float:
        return float(self.scales[0]) if self.scales is not None and len(self.scales) else 0.0

    @property
    def zero_point(self) -> int:
        return int(self.zero_points[0]) if self.zero_points is not None and len(self.zero_points) else 0

    @property
    def is_const(self) -> bool:
        return self.data is not None


@dataclass
class Op:
    index: int
    name: str
    version: int
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    model_id: str


def _options(op) -> dict:
    kind = op.BuiltinOptionsType()
    if kind == 0 or op.BuiltinOptions() is None:
        return {}
    cls = getattr(tflite, _OPT_NAMES[kind], None)
    if cls is None:
        return {}
    obj = cls()
    table = op.BuiltinOptions()
    obj.Init(table.Bytes, table.Pos)
    out = {}
    for name, fn in inspect.getmembers(obj, inspect.ismethod):
        if name.startswith(("Init", "GetRootAs", "_")) or name.endswith(("BufferHasIdentifier", "Length", "IsNone")):
            continue
        if len(inspect.signature(fn).parameters) == 0:
            try:
                out[name] = fn()
            except Exception:  # a getter for an absent vector
                continue
    return out


def read(blob: bytes) -> Graph:
    """Parse the first subgraph of a .tflite model."""
    try:
        model = tflite.Model.GetRootAsModel(blob, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
    except Exception as e:
        raise EdgefoldError(f"not a valid .tflite model: {e}") from None
    if model.SubgraphsLength() > 1:
        raise EdgefoldError("models with more than one subgraph (control flow) are not supported by the edgefold "
                            "runtime")
    sg = model.Subgraphs(0)
    tensors = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        if t.Type() not in _DTYPES:
            raise EdgefoldError(f"tensor {i} has unsupported type {t.Type()}")
        dname, np_type = _DTYPES[t.Type()]
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        ten = Tensor(i, t.Name().decode(errors="replace"), shape, dname)
        q = t.Quantization()
        if q is not None and q.ScaleLength():
            ten.scales = q.ScaleAsNumpy().astype(np.float32)
            ten.zero_points = q.ZeroPointAsNumpy().astype(np.int64)
            ten.quant_dim = int(q.QuantizedDimension())
        buf = model.Buffers(t.Buffer())
        raw = None
        if buf is not None:
            if buf.Offset() > 1:
                raw = np.frombuffer(blob, np.uint8, count=int(buf.Size()), offset=int(buf.Offset()))
            elif buf.DataLength():
                raw = buf.DataAsNumpy()
        if raw is not None and len(raw):
            ten.data = np.frombuffer(raw.tobytes(), np_type).reshape(shape if shape else ())
        tensors.append(ten)
    ops = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        oc = model.OperatorCodes(op.OpcodeIndex())
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        name = _OP_NAMES.get(code, f"BUILTIN_{code}")
        if code == tflite.BuiltinOperator.CUSTOM:
            name = f"CUSTOM({oc.CustomCode().decode(errors='replace')})"
        ops.append(Op(i, name, int(oc.Version()), [int(x) for x in op.InputsAsNumpy()],
                      [int(x) for x in op.OutputsAsNumpy()], _options(op)))
    return Graph(tensors, ops, [int(x) for x in sg.InputsAsNumpy()], [int(x) for x in sg.OutputsAsNumpy()],
                 hashlib.sha256(blob).hexdigest()[:16])
