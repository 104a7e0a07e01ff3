"""Lowering of the weighted layers (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED): their parameter blocks, the
constant layouts the Cortex-M4 kernels read (channel_rq records, weight rows padded to SMLAD groups, the depthwise
zero-point run) and the choice of specialised kernel (docs/runtime.md, "Kernel shapes the M4 path specialises")."""

from __future__ import annotations

import numpy as np
import tflite
from edgefold.compiler.codegen.quant import act_range_q, conv_out_size, conv_pad, quantize_multiplier, requant_fast_ok
from edgefold.compiler.codegen.steps import Step
from edgefold.compiler.tflite_model import Op

DW_MAX_TAPS = 25  # depthwise windows the packed kernel reads through its tap table (EF_DW_MAX_TAPS)
POINTWISE_CHANNELS = (8,)  # input channels of the 1x1 convolutions with a register-resident kernel


def channel_rq_records(bias: np.ndarray | None, out_offset: int, mult: tuple[int, ...],
                       shift: tuple[int, ...]) -> np.ndarray | None:
    """ef_conv_params.channel_rq: per output channel {bias, multiplier, exponent e, 2^(e-1) + out_offset * 2^e}, for
    rq_fast layers; None where the rounding term would not fit (the kernels add it to a value below 2^30 in
    magnitude)."""
    e = -np.asarray(shift, dtype=np.int64)
    rounding = (np.int64(1) << (e - 1)) + np.int64(out_offset) * (np.int64(1) << e)
    if np.abs(rounding).max(initial=0) >= 1 << 30:
        return None
    b = np.zeros(len(mult), np.int64) if bias is None else bias.reshape(-1).astype(np.int64)
    return np.stack([b, np.asarray(mult, dtype=np.int64), e, rounding], axis=1)


class WeightedLayers:
    """The Lowerer's handlers for the weighted layers (mixed into lower.Lowerer, whose tensor, constant and step
    helpers they use)."""

    def conv(self, op: Op) -> None:
        dw = op.name == "DEPTHWISE_CONV_2D"
        xi, wi = op.inputs[0], op.inputs[1]
        bi = op.inputs[2] if len(op.inputs) > 2 else -1
        pads = (0, 0, 0, 0)
        if op.index in self.fused_pads:
            xi, pads = self.fused_pads[op.index]
        x, w, y = self.t(xi), self.t(wi), self.t(op.outputs[0])
        self.int8_io(op, xi, wi, op.outputs[0])
        self.need(op, w.is_const, "non-constant weights")
        self.need(op, len(x.shape) == 4 and x.shape[0] == 1, "batch != 1")
        self.need(op, not np.any(w.zero_points), "asymmetric weights")
        o = op.options
        _, h, wd, c = x.shape
        _, oh, ow, oc = y.shape
        kh, kw = w.shape[1], w.shape[2]
        sh, sw = o.get("StrideH", 1), o.get("StrideW", 1)
        dh, dwl = o.get("DilationHFactor", 1) or 1, o.get("DilationWFactor", 1) or 1
        same = o.get("Padding", 0) == tflite.Padding.SAME
        hp, wp = h + pads[0] + pads[1], wd + pads[2] + pads[3]
        self.need(op, (conv_out_size(same, hp, kh, sh, dh), conv_out_size(same, wp, kw, sw, dwl)) == (oh, ow),
                  "unexpected output shape")
        pad_t = pads[0] + (conv_pad(sh, dh, hp, kh, oh) if same else 0)
        pad_l = pads[2] + (conv_pad(sw, dwl, wp, kw, ow) if same else 0)
        self.need(op, oc > 0 and np.asarray(w.scales).size in (1, oc), "weight scales that do not match the "
                  "output channels")
        scales = np.broadcast_to(w.scales.astype(np.float64), (oc,))
        mult, shift = zip(*(quantize_multiplier(float(x.scale) * float(s) / float(y.scale)) for s in scales),
                          strict=True)
        amin, amax = act_range_q(o.get("FusedActivationFunction", 0), y.scale, y.zero_point, op.name)
        bias = self.const(self.t(bi), "int32_t") if bi >= 0 else None
        if bi >= 0:
            self.need(op, self.t(bi).dtype == "int32", "non-int32 bias")
        as_conv = dw and c == 1
        if as_conv:
            # one input channel: a depthwise conv is an ordinary conv (1HWO -> OHWI), which has the SMLAD kernel
            dw = False
            weights = self.const(w.data.transpose(3, 1, 2, 0), "int8_t", f"wt{op.index}")
        else:
            weights = self.const(w, "int8_t")
        fields = dict(in_h=h, in_w=wd, in_c=c, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw, stride_h=sh,
                      stride_w=sw, dil_h=dh, dil_w=dwl, pad_t=pad_t, pad_l=pad_l, in_offset=-x.zero_point,
                      out_offset=y.zero_point, act_min=amin, act_max=amax,
                      depth_mult=(oc // c) if dw else 1, weights=weights, bias=bias,
                      mult=self.const(np.array(mult), "int32_t", f"m{op.index}"),
                      shift=self.const(np.array(shift), "int32_t", f"sh{op.index}"))
        bias_q = self.t(bi).data if bi >= 0 else None
        axis = 3 if op.name == "DEPTHWISE_CONV_2D" else 0  # 1HWO / OHWI
        fields["rq_fast"] = int(requant_fast_ok(w.data, axis, bias_q, -x.zero_point, mult, shift))
        groups = 1 if dw or as_conv else c // w.shape[3]
        k = kh * kw * (1 if dw else c // groups)
        step = len(self.out.steps)
        args = [self.ref(xi), self.ref(op.outputs[0])]
        if dw:
            self.need(op, oc % c == 0, "channel multiplier")
            fn = "ef_depthwise_conv_2d"
            if oc == c:  # the packed kernel's interior pixels fold the input offset into the bias
                full = w.data.reshape(-1, oc).astype(np.int64).sum(0) * -x.zero_point
                if bias_q is not None:
                    full = full + bias_q.reshape(-1).astype(np.int64)
                if np.abs(full).max(initial=0) < (1 << 31):
                    fields["bias_full"] = self.const(full, "int32_t", f"bf{op.index}")
                    if kh * kw <= DW_MAX_TAPS:
                        fields["pad_run"] = self.pad_run(x.zero_point, c)
                self.channel_rq(op, fields, bias_q, y.zero_point, mult, shift, oh * ow)
        else:
            self.need(op, as_conv or (c % w.shape[3] == 0 and oc % groups == 0), "filter depth does not divide the "
                      "input channels")
            fields["groups"] = groups
            fn = "ef_conv_2d"
            row = kw * (c // groups)
            if row % 4:  # rows padded to whole 4-element SMLAD groups: no scalar tail in the packed kernel
                fields["k_row"] = -(-row // 4) * 4
                ohwi = w.data.transpose(3, 1, 2, 0) if as_conv else w.data
                padded = np.zeros((oc, kh, fields["k_row"]), np.int8)
                padded[:, :, :row] = ohwi.reshape(oc, kh, row)
                self.drop_consts([fields["weights"]], [wi])
                fields["weights"] = self.const(padded, "int8_t", f"wp{op.index}")
                k = kh * fields["k_row"]
            self.channel_rq(op, fields, bias_q, y.zero_point, mult, shift, oh * ow)
            pointwise = (kh, kw, sh, sw, pad_t, pad_l, groups, oh, ow) == (1, 1, 1, 1, 0, 0, 1, h, wd)
            if pointwise and c in POINTWISE_CHANNELS and "channel_rq" in fields:
                fields["pointwise"] = c
            args.append(self.scratch(step, 2 * 2 * k))
        self.add_step(Step(fn, "ef_conv_params", fields, args, op.name))
        if groups == 1:  # a grouped conv writes a pixel's first groups before reading its last ones
            self.window_overlap(op, xi, op.outputs[0], h, wd, c, oh, ow, oc, sh, sw, pad_t, pad_l)

    def pad_run(self, zero_point: int, c: int) -> str:
        """c bytes of an input zero point: what the packed depthwise kernel reads for taps in the padding (one
        array per zero point and length, shared by the layers that need it)."""
        name = f"zp{zero_point + 128}_{c}"
        if name not in self.pad_runs:
            self.pad_runs.add(name)
            self.const(np.full(c, zero_point), "int8_t", name)
        return name

    def channel_rq(self, op: Op, fields: dict, bias: np.ndarray | None, out_offset: int, mult: tuple[int, ...],
                   shift: tuple[int, ...], uses: int) -> None:
        """Per-channel records in place of bias / mult / shift, for the kernels' fast paths (rq_fast layers).
        Not for layers that requantise each channel once (`uses` = outputs per channel < 2: RNN gates, batch-1
        classifiers): there the records' 4-16 extra bytes per channel buy a few instructions once."""
        records = channel_rq_records(bias, out_offset, mult, shift) if fields["rq_fast"] and uses >= 2 else None
        if records is None:
            return
        fields["channel_rq"] = self.const(records, "int32_t", f"rq{op.index}")
        bias_input = op.inputs[2] if len(op.inputs) > 2 else -1
        self.drop_consts([fields["mult"], fields["shift"], fields["bias"]], [bias_input])
        fields["bias"] = fields["mult"] = fields["shift"] = None

    def fully_connected(self, op: Op) -> None:
        xi, wi = op.inputs[0], op.inputs[1]
        bi = op.inputs[2] if len(op.inputs) > 2 else -1
        x, w, y = self.t(xi), self.t(wi), self.t(op.outputs[0])
        self.int8_io(op, xi, wi, op.outputs[0])
        self.need(op, w.is_const, "non-constant weights")
        self.need(op, op.options.get("WeightsFormat", 0) == 0, "shuffled weights")
        oc, ic = w.shape
        batches = x.size // ic
        per_channel = len(w.scales) > 1
        scales = w.scales.astype(np.float64) if per_channel else w.scales[:1].astype(np.float64)
        mult, shift = zip(*(quantize_multiplier(float(x.scale) * float(s) / float(y.scale)) for s in scales),
                          strict=True)
        amin, amax = act_range_q(op.options.get("FusedActivationFunction", 0), y.scale, y.zero_point, op.name)
        bias, bias_q = None, None
        if bi >= 0:
            self.need(op, self.t(bi).dtype == "int32", "non-int32 bias")
            bias, bias_q = self.const(self.t(bi), "int32_t"), self.t(bi).data
        fields = dict(batches=batches, in_c=ic, out_c=oc, in_offset=-x.zero_point, filter_offset=-w.zero_point,
                      out_offset=y.zero_point, act_min=amin, act_max=amax, per_channel=int(per_channel),
                      weights=self.const(w, "int8_t"), bias=bias,
                      mult=self.const(np.array(mult), "int32_t", f"m{op.index}"),
                      shift=self.const(np.array(shift), "int32_t", f"sh{op.index}"),
                      rq_fast=int(not np.any(w.zero_points) and requant_fast_ok(
                          w.data, 0, bias_q, -x.zero_point, mult, shift)))
        self.channel_rq(op, fields, bias_q, y.zero_point, mult * (oc if not per_channel else 1),
                        shift * (oc if not per_channel else 1), batches)
        step = len(self.out.steps)
        args = [self.ref(xi), self.ref(op.outputs[0]), self.scratch(step, 2 * 2 * ic)]
        self.add_step(Step("ef_fully_connected", "ef_fc_params", fields, args, op.name))

