"""Lower a parsed TFLite graph to runtime calls: one Step per kernel invocation with its constant parameter
block, plus the buffers the arena planner must place (activations, kernel scratch) and legal in-place pairs."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import tflite
from edgefold.compiler.codegen.lower_weighted import WeightedLayers
from edgefold.compiler.codegen.planner import Buffer, align
from edgefold.compiler.codegen.quant import (
    act_range_f,
    act_range_q,
    conv_pad,
    downscale_to_q15,
    quantize_multiplier,
    quantize_multiplier_smaller_than_one,
    round_half_away,
)
from edgefold.compiler.codegen.steps import ConstArray, Lowered, Ref, Step
from edgefold.compiler.tflite_model import Op, Tensor, TfliteModel

from edgefold.core.errors import EdgefoldError

MAX_DIMS = 6
ALIAS_OPS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS"}


def window_delta(w: int, c: int, oh: int, ow: int, oc: int, sh: int, sw: int, pad_t: int, pad_l: int) -> int:
    """Raster-order window kernels write pixel p only after reading pixel p, and never read below the first input
    row/column of later pixels: the output may start this many bytes (aligned) below the input."""
    p = np.arange(oh * ow)
    r0 = np.maximum(p // ow * sh - pad_t, 0)
    c0 = np.maximum(p % ow * sw - pad_l, 0)
    minread = (r0 * w + c0) * c
    suffix_min = np.minimum.accumulate(minread[::-1])[::-1]
    return align(int(max(0, np.max((p + 1) * oc - suffix_min))))


class UnsupportedOp(EdgefoldError):
    """The model contains an operator (or a variant of one) the edgefold runtime does not implement."""


CTYPE = {"int8": "int8_t", "int32": "int32_t", "float32": "float"}


class Lowerer(WeightedLayers):
    def __init__(self, g: TfliteModel):
        self.g = g
        # own copies: constant folding below rewrites tensors, and the parsed model may be shared with other readers
        self.T = [replace(t) for t in g.tensors]
        self.out = Lowered()
        self.consumers: dict[int, list[int]] = {}
        for op in g.ops:
            for t in op.inputs:
                if t >= 0:
                    self.consumers.setdefault(t, []).append(op.index)
        self.fused_pads: dict[int, tuple[int, tuple[int, int, int, int]]] = {}  # conv op -> (pad input, pads)
        self.skip: set[int] = set()
        self.pad_runs: set[str] = set()
        self.const_names: dict[int, str] = {}
        self.current: Op | None = None  # the op being lowered: every step it adds is tagged with its index

    # --- helpers --------------------------------------------------------------------------------------
    def t(self, i: int) -> Tensor:
        return self.T[i]

    def const(self, t: Tensor | np.ndarray, ctype: str, name: str | None = None) -> str:
        if isinstance(t, Tensor):
            if t.index in self.const_names:
                return self.const_names[t.index]
            name = f"c{t.index}"
            vals = t.data
            self.const_names[t.index] = name
        else:
            name = name or f"k{len(self.out.consts)}"
            vals = t
        np_type = {"int8_t": np.int8, "int32_t": np.int32, "float": np.float32}[ctype]
        self.out.consts.append(ConstArray(name, ctype, np.ascontiguousarray(vals, dtype=np_type).reshape(-1)))
        return name

    def ref(self, i: int) -> Ref:
        t = self.t(i)
        ctype = CTYPE.get(t.dtype)
        if ctype is None:
            raise UnsupportedOp(f"unsupported tensor type {t.dtype} ({t.name})")
        if t.is_const:
            return Ref("const", self.const(t, ctype), ctype)
        return Ref("tensor", i, ctype)

    def where(self, op: Op) -> str:
        """The op's layer and first output tensor, for one-line errors that point at the model's source."""
        outs = [self.t(i).name for i in op.outputs if i >= 0]
        layer = op.layer or "?"
        return f"layer '{layer}', tensor {outs[0][:120] if outs else '?'}"

    def need(self, op: Op, cond: bool, what: str) -> None:
        if not cond:
            raise UnsupportedOp(f"unsupported op: {op.name} ({what}; {self.where(op)})")

    def int8_io(self, op: Op, *idx: int) -> None:
        for i in idx:
            t = self.t(i)
            self.need(op, t.dtype == "int8", f"{t.dtype} tensor '{t.name}', only int8")
            sc = np.asarray(t.scales, dtype=np.float64)
            self.need(op, sc.size > 0 and bool(np.all(np.isfinite(sc) & (sc > 0))),
                      f"tensor '{t.name}' without a valid int8 quantisation (scale)")

    def scratch(self, step_index: int, nbytes: int) -> Ref:
        key = f"s{step_index}"
        self.out.buffers[key] = Buffer(key, align(nbytes), step_index, step_index)
        return Ref("scratch", key, "int32_t")

    def add_step(self, s: Step) -> int:
        if self.current is not None:
            s.op_index = self.current.index
        self.out.steps.append(s)
        return len(self.out.steps) - 1

    # --- graph passes -----------------------------------------------------------------------------------
    def fuse_pads(self) -> None:
        """PAD (zero-point value, spatial only) feeding only a CONV/DEPTHWISE -> explicit conv padding."""
        for op in self.g.ops:
            if op.name not in ("PAD", "PADV2"):
                continue
            x, out = self.t(op.inputs[0]), self.t(op.outputs[0])
            cons = self.consumers.get(out.index, [])
            if len(cons) != 1 or out.index in self.g.outputs or x.dtype != "int8" or len(x.shape) != 4:
                continue
            nxt = self.g.ops[cons[0]]
            if nxt.name not in ("CONV_2D", "DEPTHWISE_CONV_2D") or nxt.inputs[0] != out.index:
                continue
            if x.scale != out.scale or x.zero_point != out.zero_point:
                continue
            if op.name == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
                cv = self.t(op.inputs[2])
                if not cv.is_const or int(cv.data.reshape(-1)[0]) != out.zero_point:
                    continue
            pads = self.t(op.inputs[1]).data.reshape(-1, 2).astype(np.int64)
            if pads[0].any() or pads[3].any():
                continue
            self.fused_pads[nxt.index] = (x.index, (int(pads[1, 0]), int(pads[1, 1]), int(pads[2, 0]), int(pads[2, 1])))
            self.skip.add(op.index)

    def aliases(self) -> None:
        root = self.out.storage
        for i in range(len(self.T)):
            root[i] = i
        for op in self.g.ops:
            if op.name in ALIAS_OPS:
                x, y = op.inputs[0], op.outputs[0]
                if self.t(x).is_const:
                    self.T[y].data = self.t(x).data.reshape(self.t(y).shape)  # constant folding
                    continue
                self.need(op, self.t(x).nbytes == self.t(y).nbytes, "size change")
                root[y] = root[x]
                self.skip.add(op.index)

    # --- kernels ------------------------------------------------------------------------------------------
    def drop_consts(self, names: list[str | None], tensors: list[int]) -> None:
        """Forget constant arrays a layer replaced; one made from a model tensor only if no other op reads it."""
        shared = {self.const_names.get(t) for t in tensors if t >= 0 and len(self.consumers.get(t, [])) > 1}
        gone = {n for n in names if n is not None and n not in shared}
        self.out.consts = [k for k in self.out.consts if k.name not in gone]
        self.const_names = {t: n for t, n in self.const_names.items() if n not in gone}

    def window_overlap(self, op, xi, yi, h, w, c, oh, ow, oc, sh, sw, pad_t, pad_l) -> None:
        delta = window_delta(w, c, oh, ow, oc, sh, sw, pad_t, pad_l)
        self.out.overlaps.append((self.key(yi), self.key(xi), delta))

    def key(self, i: int) -> str:
        return f"t{self.out.storage[i]}"

    def bcast(self, op: Op, a: Tensor, b: Tensor, y: Tensor) -> dict:
        nd = len(y.shape)
        self.need(op, nd <= MAX_DIMS, "rank > 6")
        shape = list(y.shape) or [1]
        nd = len(shape)

        def strides(t: Tensor) -> list[int]:
            s = [1] * (nd - len(t.shape)) + list(t.shape)
            el = [0] * nd
            acc = 1
            for d in range(nd - 1, -1, -1):
                el[d] = 0 if s[d] == 1 and shape[d] != 1 else acc
                acc *= s[d]
            return el

        same = a.shape == b.shape == y.shape
        pad = [0] * (MAX_DIMS - nd)
        return dict(ndim=nd, count=y.size, broadcast=int(not same), shape=shape + [1] * (MAX_DIMS - nd),
                    stride1=strides(a) + pad, stride2=strides(b) + pad)

    def binary(self, op: Op) -> None:
        ai, bi_ = op.inputs[0], op.inputs[1]
        a, b, y = self.t(ai), self.t(bi_), self.t(op.outputs[0])
        act = op.options.get("FusedActivationFunction", 0)
        args = [self.ref(ai), self.ref(bi_), self.ref(op.outputs[0])]
        bc = self.bcast(op, a, b, y)
        if y.dtype == "float32":
            self.need(op, a.dtype == b.dtype == "float32", "mixed types")
            code = {"ADD": 0, "SUB": 1, "MUL": 2, "SQUARED_DIFFERENCE": 3, "DIV": 4}[op.name]
            lo, hi = act_range_f(act, op.name)
            self.add_step(Step("ef_f32_binary", "ef_f32_binary_params",
                               dict(b=bc, op=code, act_min=lo, act_max=hi), args, op.name))
            self.elementwise_alias(op, bc, [ai, bi_], op.outputs[0])
            return
        self.int8_io(op, ai, bi_, op.outputs[0])
        amin, amax = act_range_q(act, y.scale, y.zero_point, op.name)
        if op.name == "ADD":
            left = 20
            twice = 2.0 * float(max(a.scales[0], b.scales[0]))
            m1, s1 = quantize_multiplier_smaller_than_one(float(a.scale) / twice)
            m2, s2 = quantize_multiplier_smaller_than_one(float(b.scale) / twice)
            mo, so = quantize_multiplier_smaller_than_one(twice / ((1 << left) * float(y.scale)))
            f = dict(b=bc, in1_offset=-a.zero_point, in2_offset=-b.zero_point, out_offset=y.zero_point,
                     left_shift=left, in1_mult=m1, in1_shift=s1, in2_mult=m2, in2_shift=s2, out_mult=mo,
                     out_shift=so, act_min=amin, act_max=amax)
            self.add_step(Step("ef_add", "ef_add_params", f, args, op.name))
            self.elementwise_alias(op, bc, [ai, bi_], op.outputs[0])
        elif op.name == "MUL":
            mo, so = quantize_multiplier(float(a.scale) * float(b.scale) / float(y.scale))
            f = dict(b=bc, in1_offset=-a.zero_point, in2_offset=-b.zero_point, out_offset=y.zero_point,
                     out_mult=mo, out_shift=so, act_min=amin, act_max=amax)
            self.add_step(Step("ef_mul", "ef_mul_params", f, args, op.name))
            self.elementwise_alias(op, bc, [ai, bi_], op.outputs[0])
        elif op.name in ("SUB", "SQUARED_DIFFERENCE"):
            self.sub(op, a, b, y, bc, amin, amax, args)
        else:
            self.need(op, False, "int8")

    def sub(self, op: Op, a: Tensor, b: Tensor, y: Tensor, bc: dict, amin: int, amax: int, args: list[Ref]) -> None:
        f32 = np.float32
        if op.name == "SUB":
            # as ADD: the pinned TFLM combines the (float) scales in double; combined in float, a few outputs in
            # 10^5 were 1 LSB off (tests/compiler/test_codegen_binary_sweep.py)
            left = 20
            twice = 2.0 * float(max(a.scales[0], b.scales[0]))
            m1, s1 = quantize_multiplier_smaller_than_one(float(a.scale) / twice)
            m2, s2 = quantize_multiplier_smaller_than_one(float(b.scale) / twice)
            mo, so = quantize_multiplier_smaller_than_one(twice / ((1 << left) * float(y.scale)))
            fn = "ef_sub"
        else:
            # squared_difference.cc: in double, output multiplier (2 max scale)^2 / (2^14 out scale)
            left = 7
            twice = 2.0 * float(max(f32(a.scale), f32(b.scale)))
            m1, s1 = quantize_multiplier_smaller_than_one(float(f32(a.scale)) / twice)
            m2, s2 = quantize_multiplier_smaller_than_one(float(f32(b.scale)) / twice)
            mo, so = quantize_multiplier(twice * twice / float(f32(1 << (2 * left)) * f32(y.scale)))
            fn = "ef_squared_difference"
            amin, amax = -128, 127
        f = dict(b=bc, in1_offset=-a.zero_point, in2_offset=-b.zero_point, out_offset=y.zero_point, left_shift=left,
                 in1_mult=m1, in1_shift=s1, in2_mult=m2, in2_shift=s2, out_mult=mo, out_shift=so, act_min=amin,
                 act_max=amax)
        self.add_step(Step(fn, "ef_add_params", f, args, op.name))
        self.elementwise_alias(op, bc, [op.inputs[0], op.inputs[1]], op.outputs[0])

    def minmax(self, op: Op) -> None:
        ai, bi_, yi = op.inputs[0], op.inputs[1], op.outputs[0]
        self.int8_io(op, ai, bi_, yi)
        bc = self.bcast(op, self.t(ai), self.t(bi_), self.t(yi))
        # TFLM compares the raw int8 values and copies one: it assumes the three tensors share a quantisation
        self.add_step(Step("ef_maximum_minimum", "ef_minmax_params", dict(b=bc, is_max=int(op.name == "MAXIMUM")),
                           [self.ref(ai), self.ref(bi_), self.ref(yi)], op.name))
        self.elementwise_alias(op, bc, [ai, bi_], yi)

    def activation(self, op: Op) -> None:
        """LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, RELU, RELU6 on int8: the constants each TFLM kernel's Prepare
        computes."""
        xi, yi = op.inputs[0], op.outputs[0]
        x, y = self.t(xi), self.t(yi)
        self.int8_io(op, xi, yi)
        self.need(op, x.size == y.size, "shape change")
        f32 = np.float32
        f = dict(count=x.size, in_zp=x.zero_point, out_zp=y.zero_point, mult=0, shift=0, mult2=0, shift2=0, radius=0,
                 act_min=-128, act_max=127)
        if op.name == "RELU":
            # activations_common.cc CalculateReluOpData: the multiplier from the float quotient of the scales
            m, s = quantize_multiplier(float(f32(x.scale) / f32(y.scale)))
            f.update(mult=m, shift=s, act_min=max(-128, y.zero_point))
        elif op.name == "RELU6":
            # Relu6Prepare: clamps in the input's quantisation, the output's is assumed equal
            self.need(op, x.scale == y.scale and x.zero_point == y.zero_point, "output quantisation differs from "
                      "the input's")
            six = round_half_away(float(f32(6.0) / f32(x.scale))) + x.zero_point
            f.update(act_min=x.zero_point, act_max=min(127, max(-128, six)))
        elif op.name in ("LOGISTIC", "TANH"):
            if op.name == "LOGISTIC":
                self.need(op, y.zero_point == -128, f"output zero point {y.zero_point}, TFLM needs -128")
            real = float(f32(x.scale)) * float(1 << 27)  # Q4.27 input
            q, shift = math.frexp(real)
            mult = round_half_away(q * (1 << 31))
            self.need(op, mult < (1 << 31), "input multiplier overflow")
            radius = math.floor(15.0 * (1 << 27) / 2.0 ** shift)
            f.update(mult=mult, shift=shift, radius=radius)
        elif op.name == "HARD_SWISH":
            hires = f32(1.0 / 128.0) * f32(x.scale)
            m_out, e_out = quantize_multiplier(float(hires / f32(y.scale)))
            m_rel, e_rel = quantize_multiplier(float(hires / f32(3.0 / 32768.0)))
            self.need(op, e_out <= 0, "output multiplier above one")
            f.update(mult=downscale_to_q15(m_out), shift=e_out, mult2=downscale_to_q15(m_rel), shift2=e_rel)
        else:  # LEAKY_RELU
            alpha = f32(op.options.get("Alpha", 0.2))
            m_id, s_id = quantize_multiplier(float(f32(x.scale) / f32(y.scale)))
            m_al, s_al = quantize_multiplier(abs(float(f32(x.scale) * alpha / f32(y.scale))))
            f.update(mult=m_id, shift=s_id, mult2=m_al, shift2=s_al, radius=int(alpha < 0))
        fn = "ef_" + op.name.lower()
        self.add_step(Step(fn, "ef_act_params", f, [self.ref(xi), self.ref(yi)], op.name))
        self.out.overlaps.append((self.key(yi), self.key(xi), 0))

    def elementwise_alias(self, op: Op, bc: dict, ins: list[int], yi: int) -> None:
        y = self.t(yi)
        for i in ins:
            t = self.t(i)
            if not t.is_const and t.shape == y.shape and t.dtype == y.dtype:
                self.out.overlaps.append((self.key(yi), self.key(i), 0))

    def pool(self, op: Op) -> None:
        xi, yi = op.inputs[0], op.outputs[0]
        x, y = self.t(xi), self.t(yi)
        self.int8_io(op, xi, yi)
        self.need(op, x.shape[0] == 1, "batch != 1")
        self.need(op, x.scale == y.scale and x.zero_point == y.zero_point, "rescaling pool")
        o = op.options
        _, h, w, c = x.shape
        _, oh, ow, _ = y.shape
        kh, kw, sh, sw = o["FilterHeight"], o["FilterWidth"], o["StrideH"], o["StrideW"]
        same = o.get("Padding", 0) == tflite.Padding.SAME
        pt = conv_pad(sh, 1, h, kh, oh) if same else 0
        pl = conv_pad(sw, 1, w, kw, ow) if same else 0
        amin, amax = act_range_q(o.get("FusedActivationFunction", 0), y.scale, y.zero_point, op.name)
        f = dict(in_h=h, in_w=w, c=c, out_h=oh, out_w=ow, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw, pad_t=pt,
                 pad_l=pl, act_min=amin, act_max=amax, act_min_f=0.0, act_max_f=0.0)
        fn = "ef_max_pool_2d" if op.name == "MAX_POOL_2D" else "ef_average_pool_2d"
        self.add_step(Step(fn, "ef_pool_params", f, [self.ref(xi), self.ref(yi)], op.name))
        self.window_overlap(op, xi, yi, h, w, c, oh, ow, c, sh, sw, pt, pl)

    def mean(self, op: Op) -> None:
        xi, ai, yi = op.inputs[0], op.inputs[1], op.outputs[0]
        x, y = self.t(xi), self.t(yi)
        self.need(op, self.t(ai).is_const, "non-constant axis")
        nd = len(x.shape)
        axes = sorted({int(a) % nd for a in self.t(ai).data.reshape(-1)})
        axes = [a for a in axes if x.shape[a] != 1] or axes[:1]  # size-1 axes do not change the reduction
        self.need(op, axes == list(range(axes[0], axes[-1] + 1)), "non-contiguous axes")
        outer = int(np.prod(x.shape[: axes[0]], dtype=np.int64))
        red = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
        inner = int(np.prod(x.shape[axes[-1] + 1:], dtype=np.int64))
        args = [self.ref(xi), self.ref(yi)]
        if x.dtype == "float32":
            self.need(op, op.name == "MEAN", "float32")
            f = dict(outer=outer, reduce=red, inner=inner, in_zp=0, out_zp=0, mult=0, shift=0)
            self.add_step(Step("ef_mean_f32", "ef_mean_params", f, args, op.name))
            return
        self.int8_io(op, xi, yi)
        mult, shift = quantize_multiplier(float(x.scale) / float(y.scale))
        if op.name == "SUM":  # QuantizedMeanOrSum with compute_sum: the multiplier is not divided by the count
            f = dict(outer=outer, reduce=red, inner=inner, in_zp=x.zero_point, out_zp=y.zero_point, mult=mult,
                     shift=shift)
            self.add_step(Step("ef_mean", "ef_mean_params", f, args, op.name))
            return
        s = red.bit_length() - 1
        s = min(s, 32, 31 + shift)
        mult = (mult << s) // red
        shift -= s
        f = dict(outer=outer, reduce=red, inner=inner, in_zp=x.zero_point, out_zp=y.zero_point, mult=mult,
                 shift=shift)
        self.add_step(Step("ef_mean", "ef_mean_params", f, args, op.name))

    def pad(self, op: Op) -> None:
        xi, yi = op.inputs[0], op.outputs[0]
        x, y = self.t(xi), self.t(yi)
        self.need(op, len(x.shape) <= 4, "rank > 4")
        pads = self.t(op.inputs[1]).data.reshape(-1, 2).astype(np.int64)
        lead = 4 - len(x.shape)
        if x.dtype == "float32":
            val = np.array([0.0], np.float32)
            if len(op.inputs) > 2 and op.inputs[2] >= 0:
                val = self.t(op.inputs[2]).data.reshape(-1)[:1].astype(np.float32)
            pv = self.const(val, "float", f"pv{op.index}")
        else:
            self.int8_io(op, xi, yi)
            val = np.array([y.zero_point], np.int8)
            if len(op.inputs) > 2 and op.inputs[2] >= 0:
                val = self.t(op.inputs[2]).data.reshape(-1)[:1].astype(np.int8)
            pv = self.const(val, "int8_t", f"pv{op.index}")
        f = dict(ndim=4, in_shape=[1] * lead + list(x.shape), pad_before=[0] * lead + [int(p) for p in pads[:, 0]],
                 pad_after=[0] * lead + [int(p) for p in pads[:, 1]], elem_size=np.dtype(x.dtype).itemsize,
                 pad_value=pv)
        self.add_step(Step("ef_pad", "ef_pad_params", f, [self.ref(xi), self.ref(yi)], op.name))

    def qdq(self, op: Op) -> None:
        xi, yi = op.inputs[0], op.outputs[0]
        x, y = self.t(xi), self.t(yi)
        args = [self.ref(xi), self.ref(yi)]
        if op.name == "DEQUANTIZE":
            self.need(op, x.dtype == "int8" and y.dtype == "float32", f"{x.dtype} -> {y.dtype}")
            self.need(op, x.scales is not None and len(x.scales) == 1, "per-channel")
            f = dict(count=x.size, scale=float(x.scales[0]), zero_point=x.zero_point, in_zp=0, mult=0, shift=0)
            self.add_step(Step("ef_dequantize", "ef_qdq_params", f, args, op.name))
        elif x.dtype == "float32":
            self.need(op, y.dtype == "int8" and len(y.scales) == 1, f"{x.dtype} -> {y.dtype}")
            f = dict(count=x.size, scale=float(y.scales[0]), zero_point=y.zero_point, in_zp=0, mult=0, shift=0)
            self.add_step(Step("ef_quantize", "ef_qdq_params", f, args, op.name))
        else:
            self.int8_io(op, xi, yi)
            m, s = quantize_multiplier(float(x.scale) / float(y.scale))
            f = dict(count=x.size, scale=0.0, zero_point=y.zero_point, in_zp=x.zero_point, mult=m, shift=s)
            self.add_step(Step("ef_requantize", "ef_qdq_params", f, args, op.name))
            self.out.overlaps.append((self.key(yi), self.key(xi), 0))

    def gather(self, op: Op) -> None:
        """TRANSPOSE, SLICE, STRIDED_SLICE: one strided gather."""
        xi, yi = op.inputs[0], op.outputs[0]
        x, y = self.t(xi), self.t(yi)
        self.need(op, x.dtype in ("int8", "float32"), x.dtype)
        if x.dtype == "int8":
            self.need(op, x.scale == y.scale and x.zero_point == y.zero_point, "rescaling")
        nd = len(x.shape)
        self.need(op, 1 <= nd <= MAX_DIMS, "rank > 6")
        ist = [int(np.prod(x.shape[d + 1:], dtype=np.int64)) for d in range(nd)]
        if op.name == "TRANSPOSE":
            perm = [int(p) for p in self.t(op.inputs[1]).data.reshape(-1)]
            self.need(op, list(y.shape) == [x.shape[p] for p in perm], "shape")
            self.gather_step(op, xi, yi, [x.shape[p] for p in perm], [ist[p] for p in perm], 0)
            return
        begin = [int(b) for b in self.t(op.inputs[1]).data.reshape(-1)]
        if op.name == "SLICE":
            size = [int(v) for v in self.t(op.inputs[2]).data.reshape(-1)]
            count = [x.shape[d] - begin[d] if size[d] < 0 else size[d] for d in range(nd)]
            self.need(op, int(np.prod(count)) == y.size, "shape")
            self.gather_step(op, xi, yi, count, ist, sum(b * s for b, s in zip(begin, ist, strict=True)))
            return
        o = op.options  # STRIDED_SLICE
        self.need(op, not o.get("EllipsisMask", 0) and not o.get("NewAxisMask", 0), "ellipsis / new-axis mask")
        end = [int(v) for v in self.t(op.inputs[2]).data.reshape(-1)]
        steps = [int(v) for v in self.t(op.inputs[3]).data.reshape(-1)] if len(op.inputs) > 3 else [1] * nd
        self.need(op, len(begin) == len(end) == len(steps) == nd and 0 not in steps, "begin/end/strides")
        bm, em, sm = o.get("BeginMask", 0), o.get("EndMask", 0), o.get("ShrinkAxisMask", 0)
        start, count, stride = 0, [], []
        for d in range(nd):
            b: int | None = None if bm >> d & 1 else begin[d]
            e: int | None = None if em >> d & 1 else (begin[d] + end[d] if o.get("Offset", False) else end[d])
            st = steps[d]
            if sm >> d & 1:  # one element at begin, the axis dropped from the output shape
                b = begin[d] + x.shape[d] if begin[d] < 0 else begin[d]
                e, st = b + 1, 1
            r = range(x.shape[d])[slice(b, e, st)]
            start += (r.start if len(r) else 0) * ist[d]
            count.append(len(r))
            stride.append(st * ist[d])
        self.need(op, int(np.prod(count)) == y.size, "shape")
        self.gather_step(op, xi, yi, count, stride, start)

    def gather_step(self, op: Op, xi: int, yi: int, out_shape: list[int], in_stride: list[int], start: int) -> None:
        x = self.t(xi)
        pad = [0] * (MAX_DIMS - len(out_shape))
        f = dict(ndim=len(out_shape), elem_size=np.dtype(x.dtype).itemsize, count=self.t(yi).size,
                 out_shape=out_shape + pad, in_stride=in_stride + pad, in_start=start)
        self.add_step(Step("ef_gather", "ef_gather_params", f, [self.ref(xi), self.ref(yi)], op.name))

    def softmax(self, op: Op) -> None:
        xi, yi = op.inputs[0], op.outputs[0]
        x, y = self.t(xi), self.t(yi)
        beta = float(np.float32(op.options.get("Beta", 1.0)))
        f = dict(outer=x.size // x.shape[-1], depth=x.shape[-1], beta=beta, mult=0, left_shift=0, diff_min=0)
        if x.dtype == "float32":
            self.need(op, y.dtype == "float32", f"{x.dtype} -> {y.dtype}")
            self.add_step(Step("ef_softmax_f32", "ef_softmax_params", f, [self.ref(xi), self.ref(yi)], op.name))
            return
        self.int8_io(op, xi, yi)
        self.need(op, y.zero_point == -128 and float(y.scale) == 1 / 256, "output not scale 1/256, zero point -128")
        # PreprocessSoftmaxScaling with 5 integer bits for the scaled differences
        real = min(beta * float(x.scale) * float(1 << 26), float((1 << 31) - 1))
        mult, left = quantize_multiplier(real)
        self.need(op, left >= 0, "input multiplier below one")
        f.update(mult=mult, left_shift=left, diff_min=-math.floor(31.0 * (1 << 26) / 2.0 ** left))
        self.add_step(Step("ef_softmax", "ef_softmax_params", f, [self.ref(xi), self.ref(yi)], op.name))

    def rsqrt(self, op: Op) -> None:
        xi, yi = op.inputs[0], op.outputs[0]
        x, y = self.t(xi), self.t(yi)
        if x.dtype == "float32":
            self.add_step(Step("ef_rsqrt_f32", "ef_unary_params", dict(count=x.size),
                               [self.ref(xi), self.ref(yi)], op.name))
            return
        self.int8_io(op, xi, yi)
        self.need(op, x.size == y.size, "shape change")
        # TFLM's Prepare: 1 / (sqrt(in_scale) * out_scale) from the float32 scales, in double
        mult, shift = quantize_multiplier(1.0 / (math.sqrt(float(np.float32(x.scale))) * float(np.float32(y.scale))))
        self.need(op, -31 <= shift - 20 <= 31, f"output multiplier shift {shift} out of range")
        f = dict(count=x.size, in_zp=x.zero_point, out_zp=y.zero_point, mult=mult, shift=shift, mult2=0, shift2=0,
                 radius=0)
        self.add_step(Step("ef_rsqrt", "ef_act_params", f, [self.ref(xi), self.ref(yi)], op.name))
        self.out.overlaps.append((self.key(yi), self.key(xi), 0))

    def batch_matmul(self, op: Op) -> None:
        li, ri, yi = op.inputs[0], op.inputs[1], op.outputs[0]
        lt, rt, y = self.t(li), self.t(ri), self.t(yi)
        o = op.options
        self.need(op, not o.get("AdjX", False), "adj_x")
        adj_y = bool(o.get("AdjY", False))
        rows, inner = lt.shape[-2], lt.shape[-1]
        cols = rt.shape[-2] if adj_y else rt.shape[-1]
        lb = int(np.prod(lt.shape[:-2], dtype=np.int64))
        rb = int(np.prod(rt.shape[:-2], dtype=np.int64))
        self.need(op, rb in (1, lb), "rhs batch broadcast")
        f = dict(batches=lb, rows=rows, inner=inner, cols=cols, lhs_batch_stride=rows * inner,
                 rhs_batch_stride=0 if rb == 1 else inner * cols, rhs_row_stride=1 if adj_y else cols,
                 rhs_col_stride=inner if adj_y else 1, lhs_offset=0, rhs_offset=0, out_offset=0, mult=0, shift=0,
                 act_min=-128, act_max=127)
        args = [self.ref(li), self.ref(ri), self.ref(yi)]
        if y.dtype == "float32":
            self.need(op, lt.dtype == rt.dtype == "float32", "mixed types")
            self.add_step(Step("ef_batch_matmul_f32", "ef_bmm_params", f, args, op.name))
            return
        self.int8_io(op, li, ri, yi)
        m, s = quantize_multiplier(float(lt.scale) * float(rt.scale) / float(y.scale))
        f.update(lhs_offset=-lt.zero_point, rhs_offset=-rt.zero_point, out_offset=y.zero_point, mult=m, shift=s)
        self.add_step(Step("ef_batch_matmul", "ef_bmm_params", f, args, op.name))

    def concatenation(self, op: Op) -> None:
        yi = op.outputs[0]
        y = self.t(yi)
        self.need(op, y.dtype in ("int8", "float32"), y.dtype)
        self.need(op, op.options.get("FusedActivationFunction", 0) == 0, "fused activation")
        nd = len(y.shape)
        axis = int(op.options.get("Axis", 0)) % nd
        es = np.dtype(y.dtype).itemsize
        rows = int(np.prod(y.shape[:axis], dtype=np.int64))
        out_row = int(np.prod(y.shape[axis:], dtype=np.int64)) * es
        off = 0
        for xi in op.inputs:
            x = self.t(xi)
            self.need(op, x.dtype == y.dtype, "mixed types")
            if y.dtype == "int8":
                self.need(op, x.scale == y.scale and x.zero_point == y.zero_point, "inputs with other quantisation")
            row = int(np.prod(x.shape[axis:], dtype=np.int64)) * es
            f = dict(rows=rows, row_bytes=row, in_stride=row, out_stride=out_row)
            dst = self.ref(yi)
            dst.offset = off
            self.add_step(Step("ef_copy_rows", "ef_rows_params", f, [self.ref(xi), dst], op.name))
            off += row

    HANDLERS = {
        "CONV_2D": WeightedLayers.conv, "DEPTHWISE_CONV_2D": WeightedLayers.conv,
        "FULLY_CONNECTED": WeightedLayers.fully_connected,
        "ADD": binary, "SUB": binary, "MUL": binary, "SQUARED_DIFFERENCE": binary, "DIV": binary,
        "MAX_POOL_2D": pool, "AVERAGE_POOL_2D": pool, "MEAN": mean, "PAD": pad, "PADV2": pad,
        "QUANTIZE": qdq, "DEQUANTIZE": qdq, "TRANSPOSE": gather, "SLICE": gather, "SOFTMAX": softmax,
        "RSQRT": rsqrt, "BATCH_MATMUL": batch_matmul, "CONCATENATION": concatenation, "SUM": mean,
        "MAXIMUM": minmax, "MINIMUM": minmax, "LOGISTIC": activation, "TANH": activation,
        "HARD_SWISH": activation, "LEAKY_RELU": activation, "RELU": activation, "RELU6": activation,
        "STRIDED_SLICE": gather,
    }

    # --- driver -----------------------------------------------------------------------------------------
    # Inputs each op must have (the handlers index them): a model that breaks this is malformed, not unsupported.
    MIN_INPUTS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "ADD": 2, "SUB": 2, "MUL": 2,
                  "SQUARED_DIFFERENCE": 2, "DIV": 2, "MEAN": 2, "SUM": 2, "PAD": 2, "PADV2": 2, "TRANSPOSE": 2,
                  "SLICE": 3, "STRIDED_SLICE": 4, "BATCH_MATMUL": 2, "MAXIMUM": 2, "MINIMUM": 2}

    def run(self, supported: dict[str, int]) -> Lowered:
        for op in self.g.ops:
            if op.name not in supported:
                raise UnsupportedOp(f"unsupported op: {op.name} ({self.where(op)}): the edgefold runtime "
                                    f"implements {', '.join(sorted(supported))}")
            if op.version > supported[op.name]:
                raise UnsupportedOp(f"unsupported op: {op.name} version {op.version} ({self.where(op)}): the "
                                    f"edgefold runtime supports up to {supported[op.name]}")
            need = self.MIN_INPUTS.get(op.name, 1)
            if len(op.inputs) < need or not op.outputs or min(op.inputs[:need]) < 0:
                raise EdgefoldError(f"malformed model: {op.name} ({self.where(op)}) has {len(op.inputs)} inputs "
                                    f"and {len(op.outputs)} outputs; it needs {need} inputs and an output")
        if len(self.g.inputs) != 1 or len(self.g.outputs) != 1:
            raise EdgefoldError("the edgefold runtime needs exactly one input and one output tensor")
        for i in (self.g.inputs[0], self.g.outputs[0]):
            if self.t(i).dtype != "int8":
                raise EdgefoldError(f"model {'input' if i in self.g.inputs else 'output'} '{self.t(i).name}' is "
                                    f"{self.t(i).dtype}; the edgefold runtime needs a full-integer (int8 in/out) model")
        self.aliases()
        self.fuse_pads()
        for op in self.g.ops:
            if op.index not in self.skip:
                self.current = op
                self.HANDLERS[op.name](self, op)
        self.current = None
        self.lifetimes()
        return self.out

    def lifetimes(self) -> None:
        s = self.out
        s.input_root = s.storage[self.g.inputs[0]]
        s.output_root = s.storage[self.g.outputs[0]]
        n = len(s.steps)
        span: dict[int, list[int]] = {}
        for si, st in enumerate(s.steps):
            for r in st.args:
                if r.kind == "tensor":
                    root = s.storage[int(r.key)]
                    a = span.setdefault(root, [si, si])
                    a[0], a[1] = min(a[0], si), max(a[1], si)
        for root, (first, last) in span.items():
            if root == s.input_root:
                continue
            if root == s.output_root:
                last = n  # copied out after the last step
            s.buffers[f"t{root}"] = Buffer(f"t{root}", align(self.t(root).nbytes), first, last)
        s.overlaps = [(o, i, d) for o, i, d in s.overlaps if o in s.buffers and i in s.buffers]
