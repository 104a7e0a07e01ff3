"""The PT2E quantizer for full-integer TFLite: litert-torch's PT2EQuantizer plus the annotations it lacks.

The stock quantizer annotates a fixed set of patterns (conv/linear, conv-relu, add-relu, cat, pools, sigmoid and
softmax); every other op keeps float inputs and outputs and the converter leaves it float (residual ADD without an
activation, hard-swish, GELU, LayerNorm, attention matmuls, slices of a channel split, standalone BatchNorm...).
`EdgeQuantizer` first rewrites the few ops whose LiteRT lowering expands into float-only subgraphs into ops that
have int8 TFLite kernels, then gives every remaining float tensor an int8 observer:

- data movement (reshape, permute, slice, split, expand, max-pool) shares its input's quantisation (TFLite needs
  the same scale on both sides);
- sigmoid, softmax, tanh get TFLite's fixed output scales;
- every other op gets an observed int8 output, and an observed input where its producer has none (graph inputs,
  constants such as a positional embedding).
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx

aten = torch.ops.aten

# Ops that only move data: input and output must share one scale.
SHARE_OPS = {
    aten.view.default, aten._unsafe_view.default, aten.reshape.default, aten.view_copy.default,
    aten.permute.default, aten.permute_copy.default, aten.transpose.int, aten.t.default,
    aten.squeeze.dim, aten.squeeze.dims, aten.squeeze.default, aten.squeeze_copy.dim, aten.unsqueeze.default,
    aten.flatten.using_ints, aten.unflatten.int, aten.slice.Tensor, aten.slice_copy.Tensor, aten.select.int,
    aten.expand.default,
    aten.clone.default, aten.alias.default, aten.contiguous.default, aten.max_pool2d.default,
    aten.max_pool1d.default, aten.pixel_shuffle.default, aten.channel_shuffle.default,
}
# Ops whose output is a list, read by getitem: every piece shares the input's scale.
SPLIT_OPS = {aten.split.Tensor, aten.split_with_sizes.default, aten.chunk.default, aten.unbind.int,
             aten.split_copy.Tensor, aten.tensor_split.sections}
# TFLite's fixed output quantisation (scale, zero point) for int8.
CLAMP_OPS = {aten.hardtanh.default, aten.hardtanh_.default, aten.relu6.default}
# producers the converter fuses a following RELU6 into (the clamp then happens in the producer's requantisation)
FUSES_ACTIVATION = {
    aten.conv1d.default, aten.conv2d.default, aten.convolution.default, aten.linear.default, aten.addmm.default,
    aten.add.Tensor, aten.add_.Tensor,
}
FIXED_OUT = {
    aten.sigmoid.default: (1 / 256, -128),
    aten._softmax.default: (1 / 256, -128),
    aten.softmax.int: (1 / 256, -128),
    aten.tanh.default: (1 / 128, 0),
}


def _is_float_tensor(node: Any) -> bool:
    if not isinstance(node, fx.Node):
        return False
    val = node.meta.get("val")
    return isinstance(val, torch.Tensor) and val.is_floating_point()


def _has_output_qspec(node: fx.Node) -> bool:
    ann = node.meta.get("quantization_annotation")
    return ann is not None and ann.output_qspec is not None


def _annotated(node: fx.Node) -> bool:
    ann = node.meta.get("quantization_annotation")
    return ann is not None and bool(getattr(ann, "_annotated", False))


def _set_buffer(gm: fx.GraphModule, prefix: str, value: torch.Tensor) -> str:
    i = 0
    while hasattr(gm, f"{prefix}{i}"):
        i += 1
    gm.register_buffer(f"{prefix}{i}", value)
    return f"{prefix}{i}"


def _fake_mode(gm: fx.GraphModule) -> Any:
    from torch._guards import detect_fake_mode

    return detect_fake_mode([n.meta.get("val") for n in gm.graph.nodes if "val" in n.meta])


def _const(gm: fx.GraphModule, node: fx.Node, prefix: str, value: torch.Tensor) -> fx.Node:
    with gm.graph.inserting_before(node):
        c = gm.graph.get_attr(_set_buffer(gm, prefix, value))
    mode = _fake_mode(gm)
    c.meta["val"] = mode.from_tensor(value) if mode is not None else value
    return c


def _call(gm: fx.GraphModule, before: fx.Node, target: Any, args: tuple, like: fx.Node) -> fx.Node:
    with gm.graph.inserting_before(before):
        n = gm.graph.call_function(target, args)
    n.meta = {k: v for k, v in like.meta.items() if k in ("nn_module_stack", "stack_trace", "source_fn_stack")}
    return n


def _fake_eval(gm: fx.GraphModule) -> None:
    """Give the nodes made by the rewrites a `val` (shape and dtype: what the annotation reads)."""
    import contextlib

    mode = _fake_mode(gm)

    def val(a: Any) -> Any:
        return a.meta.get("val") if isinstance(a, fx.Node) else a

    for node in gm.graph.nodes:
        if node.op != "call_function" or "val" in node.meta:
            continue
        args = torch.utils._pytree.tree_map(val, node.args)
        kwargs = torch.utils._pytree.tree_map(val, node.kwargs)
        with mode if mode is not None else contextlib.nullcontext():
            node.meta["val"] = node.target(*args, **kwargs)


def _get_attr_value(gm: fx.GraphModule, node: Any) -> torch.Tensor | None:
    if not isinstance(node, fx.Node) or node.op != "get_attr":
        return None
    obj: Any = gm
    for part in str(node.target).split("."):
        obj = getattr(obj, part)
    return obj.detach() if isinstance(obj, torch.Tensor) else None


def decompose_for_int8(gm: fx.GraphModule) -> fx.GraphModule:
    """Rewrite ops whose LiteRT lowering has no int8 kernel into ops that do (each then gets its own observer).

    Fused attention (nn.MultiheadAttention's scaled_dot_product_attention, lowered as one float subgraph) ->
    scale, matmul, softmax, matmul; SiLU -> x * sigmoid(x) (LOGISTIC, MUL); GELU -> x * sigmoid(1.702 x) (TFLM has
    no GELU kernel; the sigmoid form is within 0.021 of the erf GELU everywhere, below an int8 step at the ranges
    these activations take, and needs three int8 ops where the tanh form needs eight); hard-sigmoid -> relu6(x + 3) / 6
    (ADD with fused RELU6, MUL); LayerNorm -> mean, subtract, square-mean, rsqrt, multiply (TFLite lowers
    LayerNorm through a float-only batch-norm); a BatchNorm not folded into a conv (DenseNet's pre-activation)
    -> x * scale + shift; PReLU -> (1 - a) * relu(x) + a * x (RELU, MUL, MUL, ADD: the converter lowers
    aten.prelu into a float-only subgraph, not TFLite's PRELU).
    """
    g = gm.graph
    changed = False
    for node in list(g.nodes):
        if node.op != "call_function":
            continue
        t = node.target
        if t in (aten.silu.default, aten.silu_.default):
            x = node.args[0]
            s = _call(gm, node, aten.sigmoid.default, (x,), node)
            m = _call(gm, node, aten.mul.Tensor, (x, s), node)
            node.replace_all_uses_with(m)
            g.erase_node(node)
            changed = True
        elif t == aten.gelu.default:
            x = node.args[0]
            k = _const(gm, node, "_ef_c", torch.tensor(1.702))
            a = _call(gm, node, aten.mul.Tensor, (x, k), node)
            s = _call(gm, node, aten.sigmoid.default, (a,), node)
            m = _call(gm, node, aten.mul.Tensor, (x, s), node)
            node.replace_all_uses_with(m)
            g.erase_node(node)
            changed = True
        elif t in (aten.hardsigmoid.default, aten.hardsigmoid_.default):
            x = node.args[0]
            three = _const(gm, node, "_ef_c", torch.tensor(3.0))
            sixth = _const(gm, node, "_ef_c", torch.tensor(1 / 6))
            a = _call(gm, node, aten.add.Tensor, (x, three), node)
            r = _call(gm, node, aten.hardtanh.default, (a, 0.0, 6.0), node)
            m = _call(gm, node, aten.mul.Tensor, (r, sixth), node)
            node.replace_all_uses_with(m)
            g.erase_node(node)
            changed = True
        elif t in (aten.layer_norm.default, aten.native_layer_norm.default):
            x, shape = node.args[0], node.args[1]
            w = node.args[2] if len(node.args) > 2 else None
            b = node.args[3] if len(node.args) > 3 else None
            eps = float(node.args[4]) if len(node.args) > 4 else 1e-5
            dims = list(range(-len(shape), 0))
            mean = _call(gm, node, aten.mean.dim, (x, dims, True), node)
            d = _call(gm, node, aten.sub.Tensor, (x, mean), node)
            sq = _call(gm, node, aten.mul.Tensor, (d, d), node)
            var = _call(gm, node, aten.mean.dim, (sq, dims, True), node)
            e = _const(gm, node, "_ef_c", torch.tensor(eps))
            ve = _call(gm, node, aten.add.Tensor, (var, e), node)
            r = _call(gm, node, aten.rsqrt.default, (ve,), node)
            y = _call(gm, node, aten.mul.Tensor, (d, r), node)
            if w is not None:
                y = _call(gm, node, aten.mul.Tensor, (y, w), node)
            if b is not None:
                y = _call(gm, node, aten.add.Tensor, (y, b), node)
            if t == aten.native_layer_norm.default:  # a tuple: only its first item is read in inference graphs
                for user in list(node.users):
                    if user.target is operator.getitem and user.args[1] == 0:
                        user.replace_all_uses_with(y)
                        g.erase_node(user)
                if node.users:
                    continue
            else:
                node.replace_all_uses_with(y)
            g.erase_node(node)
            changed = True
        elif t == aten.scaled_dot_product_attention.default:
            q, k, v = node.args[:3]
            opts = dict(zip(("attn_mask", "dropout_p", "is_causal", "scale"), node.args[3:], strict=False))
            opts.update(node.kwargs)
            if opts.get("attn_mask") is not None or opts.get("is_causal") or not _is_float_tensor(q):
                continue
            scale = opts.get("scale") or q.meta["val"].shape[-1] ** -0.5
            sc = _const(gm, node, "_ef_c", torch.tensor(float(scale)))
            qs = _call(gm, node, aten.mul.Tensor, (q, sc), node)
            kt = _call(gm, node, aten.transpose.int, (k, -2, -1), node)
            scores = _call(gm, node, aten.matmul.default, (qs, kt), node)
            p = _call(gm, node, aten._softmax.default, (scores, -1, False), node)
            o = _call(gm, node, aten.matmul.default, (p, v), node)
            node.replace_all_uses_with(o)
            g.erase_node(node)
            changed = True
        elif t == aten.prelu.default:
            x, w = node.args[0], node.args[1]
            a = _get_attr_value(gm, w)
            if a is None or not _is_float_tensor(x):
                continue
            rank = x.meta["val"].dim()
            # full-rank slopes (1, C, 1, ...): the converter moves those to NHWC with the tensor, where a
            # lower-rank constant makes it keep the ops in NCHW between two TRANSPOSEs
            shape = [1] * rank
            if a.numel() > 1:
                shape[1] = a.numel()
            a = a.reshape(shape).contiguous()
            ac = _const(gm, node, "_ef_prelu", a)
            bc = _const(gm, node, "_ef_prelu", 1 - a)
            r = _call(gm, node, aten.relu.default, (x,), node)
            pos = _call(gm, node, aten.mul.Tensor, (r, bc), node)
            lin = _call(gm, node, aten.mul.Tensor, (x, ac), node)
            y = _call(gm, node, aten.add.Tensor, (pos, lin), node)
            node.replace_all_uses_with(y)
            g.erase_node(node)
            changed = True
        elif t in (aten._native_batch_norm_legit_no_training.default, aten.batch_norm.default):
            x = node.args[0]
            if t == aten.batch_norm.default:
                w, b, mean_n, var_n, eps = node.args[1], node.args[2], node.args[3], node.args[4], node.args[7]
            else:
                w, b, mean_n, var_n, eps = node.args[1], node.args[2], node.args[3], node.args[4], node.args[6]
            vals = [_get_attr_value(gm, a) for a in (w, b, mean_n, var_n)]
            if vals[2] is None or vals[3] is None or not _is_float_tensor(x):
                continue
            c = vals[2].numel()
            wv = vals[0] if vals[0] is not None else torch.ones(c)
            bv = vals[1] if vals[1] is not None else torch.zeros(c)
            scale = wv / torch.sqrt(vals[3] + float(eps))
            shift = bv - vals[2] * scale
            rank = x.meta["val"].dim()
            view = (1, c) + (1,) * (rank - 2)  # full rank: no TRANSPOSE pair around it (see PReLU)
            sc = _const(gm, node, "_ef_bn", scale.reshape(view).contiguous())
            sh = _const(gm, node, "_ef_bn", shift.reshape(view).contiguous())
            m = _call(gm, node, aten.mul.Tensor, (x, sc), node)
            y = _call(gm, node, aten.add.Tensor, (m, sh), node)
            if t == aten.batch_norm.default:
                node.replace_all_uses_with(y)
            else:
                for user in list(node.users):
                    if user.target is operator.getitem and user.args[1] == 0:
                        user.replace_all_uses_with(y)
                        g.erase_node(user)
                if node.users:
                    continue
            g.erase_node(node)
            changed = True
    if changed:
        g.eliminate_dead_code()
        gm.recompile()
        _fake_eval(gm)
    return gm


def annotate_remaining(gm: fx.GraphModule, config: Any) -> None:
    """Give every float tensor the stock annotators left alone an int8 observer (see the module docstring)."""
    from torchao.quantization.pt2e.quantizer import (
        FixedQParamsQuantizationSpec,
        QuantizationAnnotation,
        SharedQuantizationSpec,
    )

    act = config.output_activation

    def fixed(scale: float, zp: int) -> Any:
        return FixedQParamsQuantizationSpec(dtype=act.dtype, scale=scale, zero_point=zp, quant_min=act.quant_min,
                                            quant_max=act.quant_max, qscheme=torch.per_tensor_affine)

    def needs_input_obs(src: fx.Node) -> bool:
        return _is_float_tensor(src) and not _has_output_qspec(src)

    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in CLAMP_OPS and _is_float_tensor(node):
            src = node.args[0]
            if isinstance(src, fx.Node) and src.target not in FUSES_ACTIVATION:
                # TFLM's RELU6 clamps the raw bytes and ignores the output's quantisation, so a standalone one
                # (nothing to fuse into) must keep its input's, or TFLM and LiteRT disagree
                node.meta.pop("quantization_annotation", None)
        if node.op != "call_function" or _annotated(node):
            continue
        t = node.target
        if t is operator.getitem:
            src = node.args[0]
            if isinstance(src, fx.Node) and src.target in SPLIT_OPS and _is_float_tensor(node):
                base = src.args[0]
                if isinstance(base, fx.Node):
                    edge: Any = base if _has_output_qspec(base) else (base, src)
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        output_qspec=SharedQuantizationSpec(edge), _annotated=True)
            elif _is_float_tensor(node):
                node.meta["quantization_annotation"] = QuantizationAnnotation(output_qspec=act, _annotated=True)
            continue
        if t in SPLIT_OPS:
            src = node.args[0]
            if isinstance(src, fx.Node) and needs_input_obs(src):
                # observe the input on the split's own edge, then let the pieces share it
                node.meta["quantization_annotation"] = QuantizationAnnotation(input_qspec_map={src: act},
                                                                              _annotated=True)
            continue
        if not _is_float_tensor(node):
            continue
        inputs = [a for a in torch.utils._pytree.tree_leaves((node.args, node.kwargs)) if _is_float_tensor(a)]
        if t in (aten.cat.default, aten.stack.default):
            parts = [a for a in node.args[0] if isinstance(a, fx.Node)]
            if not parts:
                continue
            first = parts[0]
            qmap: dict[fx.Node, Any] = {first: act}
            shared = SharedQuantizationSpec((first, node))
            for p in parts[1:]:
                qmap[p] = shared
            node.meta["quantization_annotation"] = QuantizationAnnotation(input_qspec_map=qmap, output_qspec=shared,
                                                                          _annotated=True)
            continue
        if t in SHARE_OPS or t in CLAMP_OPS:
            src = inputs[0] if inputs else None
            if src is None:
                continue
            if _has_output_qspec(src):
                spec: Any = SharedQuantizationSpec(src)
                node.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={src: spec}, output_qspec=spec, _annotated=True)
            else:
                node.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={src: act}, output_qspec=SharedQuantizationSpec((src, node)), _annotated=True)
            continue
        qmap = {a: act for a in inputs if needs_input_obs(a)}
        out = fixed(*FIXED_OUT[t]) if t in FIXED_OUT else act
        node.meta["quantization_annotation"] = QuantizationAnnotation(input_qspec_map=qmap, output_qspec=out,
                                                                      _annotated=True)


class UnrolledRNN(torch.nn.Module):
    """An nn.GRU / nn.LSTM (unidirectional, no projection) as per-step Linear, sigmoid and tanh ops.

    TFLite's int8 kernels have no GRU and lower an LSTM with float state, so the recurrence is unrolled over the
    (fixed) sequence length into ops that each get their own int8 scale. Same weights, same outputs.
    """

    def __init__(self, rnn: torch.nn.GRU | torch.nn.LSTM):
        super().__init__()
        self.kind = "lstm" if isinstance(rnn, torch.nn.LSTM) else "gru"
        self.batch_first, self.hidden, self.layers = rnn.batch_first, rnn.hidden_size, rnn.num_layers
        self.ih = torch.nn.ModuleList()
        self.hh = torch.nn.ModuleList()
        for k in range(rnn.num_layers):
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}")
            ih = torch.nn.Linear(w_ih.shape[1], w_ih.shape[0], bias=rnn.bias)
            hh = torch.nn.Linear(w_hh.shape[1], w_hh.shape[0], bias=rnn.bias)
            with torch.no_grad():
                ih.weight.copy_(w_ih)
                hh.weight.copy_(w_hh)
                if rnn.bias:
                    ih.bias.copy_(getattr(rnn, f"bias_ih_l{k}"))
                    hh.bias.copy_(getattr(rnn, f"bias_hh_l{k}"))
            self.ih.append(ih)
            self.hh.append(hh)

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if state is not None:
            raise NotImplementedError("an initial state given to the recurrent layer")
        seq = x.unbind(1 if self.batch_first else 0)
        finals_h, finals_c = [], []
        for k in range(self.layers):
            h: torch.Tensor | None = None
            c: torch.Tensor | None = None
            outs = []
            for xt in seq:
                gi = self.ih[k](xt)
                if self.kind == "gru":
                    gh = self.hh[k](h) if h is not None else self.hh[k].bias
                    ir, iz, inn = gi.chunk(3, -1)
                    hr, hz, hn = (gh.chunk(3, -1) if gh is not None else (0.0, 0.0, 0.0))
                    r = torch.sigmoid(ir + hr)
                    z = torch.sigmoid(iz + hz)
                    n = torch.tanh(inn + r * hn)
                    h = n - z * n if h is None else n + z * (h - n)
                else:
                    g = gi + self.hh[k](h) if h is not None else gi + (self.hh[k].bias if self.hh[k].bias is not None
                                                                      else 0.0)
                    i, f, gg, o = g.chunk(4, -1)
                    i, f, gg, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(gg), torch.sigmoid(o)
                    c = i * gg if c is None else f * c + i * gg
                    h = o * torch.tanh(c)
                outs.append(h)
            seq = tuple(outs)
            finals_h.append(seq[-1])
            if c is not None:
                finals_c.append(c)
        out = _stack_in_chunks(seq, 1 if self.batch_first else 0)
        h_n = torch.stack(finals_h, 0)
        return out, ((h_n, torch.stack(finals_c, 0)) if self.kind == "lstm" else h_n)


# TFLM's CONCATENATION takes at most 10 inputs (kMaxInputNum)
MAX_CONCAT_INPUTS = 10


def _stack_in_chunks(items: tuple[torch.Tensor, ...], dim: int) -> torch.Tensor:
    """torch.stack(items, dim) as a tree of stacks and concatenations of at most MAX_CONCAT_INPUTS inputs each."""
    parts = [torch.stack(items[i:i + MAX_CONCAT_INPUTS], dim) for i in range(0, len(items), MAX_CONCAT_INPUTS)]
    while len(parts) > 1:
        parts = [torch.cat(parts[i:i + MAX_CONCAT_INPUTS], dim) if len(parts[i:i + MAX_CONCAT_INPUTS]) > 1
                 else parts[i] for i in range(0, len(parts), MAX_CONCAT_INPUTS)]
    return parts[0]


def unroll_rnns(model: torch.nn.Module) -> torch.nn.Module:
    """Replace every nn.GRU / nn.LSTM in `model` (in place) by an UnrolledRNN; a one-line error names a recurrent
    layer that cannot be unrolled (bidirectional, projections)."""
    from edgefold.core.errors import EdgefoldError

    for name, mod in list(model.named_modules()):
        if not isinstance(mod, torch.nn.GRU | torch.nn.LSTM):
            continue
        kind = type(mod).__name__
        if mod.bidirectional or getattr(mod, "proj_size", 0):
            raise EdgefoldError(f"cannot lower {name} ({kind}) to int8 TFLite: bidirectional or projected "
                                "recurrent layers are not supported; use a unidirectional layer without proj_size")
        parent: torch.nn.Module = model
        *path, leaf = name.split(".")
        for p in path:
            parent = getattr(parent, p)
        setattr(parent, leaf, UnrolledRNN(mod))
    return model
