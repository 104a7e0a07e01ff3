"""TFLite's host-side quantisation arithmetic (QuantizeMultiplier, activation ranges, padding), in Python with
the same double/float rounding as the C++ reference so the emitted constants are bit-identical."""

from __future__ import annotations

import math

import numpy as np
import tflite

from edgefold.core.errors import EdgefoldError

ACT = tflite.ActivationFunctionType


def round_half_away(x: float) -> int:
    """std::round / TfLiteRound."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def quantize_multiplier(m: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier (double-rounding build): m = q * 2^shift, q in Q0.31."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def quantize_multiplier_smaller_than_one(m: float) -> tuple[int, int]:
    q, s = quantize_multiplier(m)
    if s > 0:
        raise EdgefoldError(f"multiplier {m} is not smaller than one")
    return q, s


def downscale_to_q15(m: int) -> int:
    """tflite::DownScaleInt32ToInt16Multiplier: a Q0.31 multiplier rounded to Q0.15."""
    if m >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (m + (1 << 15)) >> 16


def requant_fast_ok(weights: np.ndarray, channel_axis: int, bias: np.ndarray | None, in_offset: int,
                    mult: tuple[int, ...], shift: tuple[int, ...]) -> bool:
    """Whether the runtime's 5-instruction requantisation (ef_mbqm_fast) is exact for every output channel: each
    multiplier positive, each shift <= -1, and every accumulator sum_k w (x + in_offset) + bias below 2^30 in
    magnitude for any int8 input x (the kernel doubles it before SMMULR)."""
    if not all(m > 0 for m in mult) or not all(s <= -1 for s in shift):
        return False
    x_max = max(abs(-128 + in_offset), abs(127 + in_offset))
    w = np.moveaxis(np.abs(weights.astype(np.int64)), channel_axis, 0)
    acc = w.reshape(w.shape[0], -1).sum(1) * x_max
    if bias is not None:
        acc = acc + np.abs(bias.astype(np.int64)).reshape(-1)
    return bool(np.max(acc, initial=0) < (1 << 30))


def act_range_q(act: int, scale: float, zp: int, op: str) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8: quantize(x) = zp + round(float(x) / float(scale))."""
    def q(x: float) -> int:
        return zp + round_half_away(float(np.float32(x) / np.float32(scale)))

    lo, hi = -128, 127
    if act == ACT.NONE:
        return lo, hi
    if act == ACT.RELU:
        return max(lo, q(0.0)), hi
    if act == ACT.RELU6:
        return max(lo, q(0.0)), min(hi, q(6.0))
    if act == ACT.RELU_N1_TO_1:
        return max(lo, q(-1.0)), min(hi, q(1.0))
    raise EdgefoldError(f"unsupported op: {op} with fused activation {act}")


FLT_MAX = float(np.finfo(np.float32).max)


def act_range_f(act: int, op: str) -> tuple[float, float]:
    if act == ACT.NONE:
        return -FLT_MAX, FLT_MAX
    if act == ACT.RELU:
        return 0.0, FLT_MAX
    if act == ACT.RELU6:
        return 0.0, 6.0
    if act == ACT.RELU_N1_TO_1:
        return -1.0, 1.0
    raise EdgefoldError(f"unsupported op: {op} with fused activation {act}")


def conv_out_size(same: bool, size: int, k: int, stride: int, dil: int) -> int:
    eff = (k - 1) * dil + 1
    return (size + stride - 1) // stride if same else (size + stride - eff) // stride


def conv_pad(stride: int, dil: int, size: int, k: int, out: int) -> int:
    eff = (k - 1) * dil + 1
    return max((out - 1) * stride + eff - size, 0) // 2
