"""Build tiny .tflite flatbuffers by hand (the `tflite` schema package's builders), for codegen tests that need a
specific graph without running the exporter."""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import tflite

BINARY_OPTIONS = {tflite.BuiltinOperator.ADD: "AddOptions", tflite.BuiltinOperator.SUB: "SubOptions",
                  tflite.BuiltinOperator.MUL: "MulOptions"}
TYPES = {"int8": tflite.TensorType.INT8, "int32": tflite.TensorType.INT32, "float32": tflite.TensorType.FLOAT32}


@dataclass
class T:
    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: list[float] | None = None
    zp: list[int] | None = None
    data: np.ndarray | None = None
    qdim: int = 0


@dataclass
class Op:
    code: int
    inputs: list[int]
    outputs: list[int]
    fc_options: bool = False
    version: int = 1
    extra: dict = field(default_factory=dict)


def build(tensors: list[T], ops: list[Op], inputs: list[int], outputs: list[int]) -> bytes:
    b = flatbuffers.Builder(1024)
    # buffers: 0 is the empty sentinel, then one per constant tensor
    buf_data = [None] + [t.data for t in tensors if t.data is not None]
    buf_offs = []
    for d in buf_data:
        vec = b.CreateNumpyVector(np.frombuffer(np.ascontiguousarray(d).tobytes(), np.uint8)) if d is not None else None
        tflite.BufferStart(b)
        if vec is not None:
            tflite.BufferAddData(b, vec)
        buf_offs.append(tflite.BufferEnd(b))
    t_offs, nb = [], 1
    for i, t in enumerate(tensors):
        name = b.CreateString(f"t{i}")
        shape = b.CreateNumpyVector(np.array(t.shape, np.int32))
        q = None
        if t.scale is not None:
            sc = b.CreateNumpyVector(np.array(t.scale, np.float32))
            zp = b.CreateNumpyVector(np.array(t.zp or [0] * len(t.scale), np.int64))
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, sc)
            tflite.QuantizationParametersAddZeroPoint(b, zp)
            tflite.QuantizationParametersAddQuantizedDimension(b, t.qdim)
            q = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, TYPES[t.dtype])
        tflite.TensorAddName(b, name)
        if t.data is not None:
            tflite.TensorAddBuffer(b, nb)
            nb += 1
        else:
            tflite.TensorAddBuffer(b, 0)
        if q is not None:
            tflite.TensorAddQuantization(b, q)
        t_offs.append(tflite.TensorEnd(b))
    codes = sorted({(o.code, o.version) for o in ops})
    code_offs = []
    for c, v in codes:
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddBuiltinCode(b, c)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(c, 127))
        tflite.OperatorCodeAddVersion(b, v)
        code_offs.append(tflite.OperatorCodeEnd(b))
    op_offs = []
    for o in ops:
        ins = b.CreateNumpyVector(np.array(o.inputs, np.int32))
        outs = b.CreateNumpyVector(np.array(o.outputs, np.int32))
        opt, opt_type = None, None
        if o.fc_options:
            tflite.FullyConnectedOptionsStart(b)
            opt, opt_type = tflite.FullyConnectedOptionsEnd(b), tflite.BuiltinOptions.FullyConnectedOptions
        elif o.code in BINARY_OPTIONS:  # TFLM's ADD / SUB / MUL read their (fused activation) options
            name = BINARY_OPTIONS[o.code]
            getattr(tflite, f"{name}Start")(b)
            opt, opt_type = getattr(tflite, f"{name}End")(b), getattr(tflite.BuiltinOptions, name)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index((o.code, o.version)))
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if opt is not None:
            tflite.OperatorAddBuiltinOptionsType(b, opt_type)
            tflite.OperatorAddBuiltinOptions(b, opt)
        op_offs.append(tflite.OperatorEnd(b))

    def vec(start, items):
        start(b, len(items))
        for it in reversed(items):
            b.PrependUOffsetTRelative(it)
        return b.EndVector()

    tv = vec(tflite.SubGraphStartTensorsVector, t_offs)
    ov = vec(tflite.SubGraphStartOperatorsVector, op_offs)
    iv = b.CreateNumpyVector(np.array(inputs, np.int32))
    outv = b.CreateNumpyVector(np.array(outputs, np.int32))
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tv)
    tflite.SubGraphAddOperators(b, ov)
    tflite.SubGraphAddInputs(b, iv)
    tflite.SubGraphAddOutputs(b, outv)
    sg = tflite.SubGraphEnd(b)
    sgv = vec(tflite.ModelStartSubgraphsVector, [sg])
    cv = vec(tflite.ModelStartOperatorCodesVector, code_offs)
    bv = vec(tflite.ModelStartBuffersVector, buf_offs)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddSubgraphs(b, sgv)
    tflite.ModelAddOperatorCodes(b, cv)
    tflite.ModelAddBuffers(b, bv)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def fc_model(fin: int = 8, fout: int = 4, seed: int = 0) -> bytes:
    """int8 FULLY_CONNECTED: input [1, fin] -> output [1, fout], per-tensor weights, int32 bias."""
    r = np.random.default_rng(seed)
    w = r.integers(-127, 128, (fout, fin)).astype(np.int8)
    bias = r.integers(-500, 500, fout).astype(np.int32)
    tensors = [T((1, fin), scale=[0.05], zp=[3]), T((fout, fin), scale=[0.01], zp=[0], data=w),
               T((fout,), "int32", scale=[0.0005], zp=[0], data=bias), T((1, fout), scale=[0.1], zp=[-5])]
    return build(tensors, [Op(tflite.BuiltinOperator.FULLY_CONNECTED, [0, 1, 2], [3], fc_options=True)], [0], [3])


def unary_model(code: int, n: int = 16) -> bytes:
    """One int8 element-wise op (e.g. TANH) on a [1, n] tensor."""
    tensors = [T((1, n), scale=[0.05], zp=[0]), T((1, n), scale=[1 / 128], zp=[0])]
    return build(tensors, [Op(code, [0], [1])], [0], [1])


def all_pairs_model(code: int, scales: tuple[float, float, float], zero_points: tuple[int, int, int]) -> bytes:
    """One int8 binary op (ADD, SUB, MUL) on every pair of int8 values: the input [1, 256, 1] (feed -128..127)
    against a constant [1, 1, 256] holding -128..127, broadcast to a [1, 256, 256] output."""
    (s1, s2, so), (z1, z2, zo) = scales, zero_points
    tensors = [T((1, 256, 1), scale=[s1], zp=[z1]),
               T((1, 1, 256), scale=[s2], zp=[z2], data=np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256)),
               T((1, 256, 256), scale=[so], zp=[zo])]
    return build(tensors, [Op(code, [0, 1], [2])], [0], [2])
