"""Footprint model: what a model with k_g channels kept per coupled group costs on a microcontroller, before export.

    fm = FootprintModel.trace(model, example_inputs, groups)      # once, on the uncompressed model
    fp = fm.predict(keep, costs)                                   # any per-group channel counts, microseconds

It mirrors what the build uses, so the prediction can be checked against the linker:

* Flash = int8 weights + per-output-channel constants (int32 bias, requantisation multiplier and shift: 12 bytes a
  channel) + the runtime code of the kernels the model calls + a parameter block per step + the board's base firmware
  (harness, board layer, libc): `Costs` from the target.
* RAM = the arena of the codegen's own static planner (compiler/codegen/planner.py, run here on the traced activation
  buffers: conv/pool outputs may overlap their input as the codegen allows, element-wise outputs alias a dying input,
  convolutions and fully-connected layers get their im2col scratch) + the harness statics + the stack reserve.
* MACs, parameters, and instructions from the target's linear cost model (per-MAC by kernel, per output element,
  per step).

BatchNorm folds into the convolution before it, activations fuse, reshapes alias: the traced steps are the kernels the
int8 graph runs. A tensor's size scales with its channel group: numel · k_g / n_g (flattened features too).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from edgefold.core.errors import EdgefoldError

ALIAS = {"batch_norm", "relu", "relu6", "hardtanh", "dropout", "flatten", "view", "reshape", "_unsafe_view",
         "identity", "clone", "contiguous", "squeeze", "unsqueeze", "alias", "detach",
         "_native_batch_norm_legit_no_training"}
# per output channel: the channel_rq record {bias, multiplier, exponent, rounding} of the runtime's fast
# requantisation (layers where it is exact: nearly all; the others carry bias + multiplier + shift, 12 B)
PER_CHANNEL_CONST = 16
# depthwise: an int32 bias with the input offset folded in, and a zero-point byte per channel for the padding taps
DWCONV_FOLDED_BIAS = 4 + 1
ALIGN = 16


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Costs:
    """A target's cost model: bytes of the firmware around the model, and instructions per unit of work."""

    flash_base: int  # harness + board layer + libc, without any model kernel
    kernel_code: dict[str, int]  # runtime code per kernel kind the model calls ("conv", "dwconv", "fc", "add", ...)
    step_bytes: int  # parameter block + call per step in the generated model.c
    ram_static: int  # statics besides the arena
    stack: int  # RAM kept free for the stack (the linker's minimum)
    insn_per_mac: dict[str, float]  # by kernel kind
    insn_per_output: float  # requantise + store per output element of a conv / fc / dwconv
    insn_per_patch: float  # im2col: per input value gathered for a conv output position (out_hw · kh·kw · cin)
    insn_per_element: float  # element-wise ops (add), pools and means, per element read
    insn_per_step: float
    insn_base: float  # harness around one inference
    cpi: float = 1.25
    clock_hz: int = 64_000_000
    input_in_flash: bool = True  # the benchmark harness keeps the fixed input tensor in Flash


@dataclass
class Footprint:
    flash: int
    ram: int  # arena + statics + stack reserve (what must fit in the device's RAM)
    static_ram: int  # arena + statics: what the linker reports (.data + .bss)
    arena: int
    weights: int  # int8 weights + per-channel constants
    code: int
    macs: int
    params: int
    instructions: float
    latency_ms: float  # instructions × CPI ÷ clock: an estimate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Tensor:
    numel: int
    group: int | None  # channel group whose k scales this tensor


@dataclass
class _Step:
    kind: str  # conv | dwconv | fc | add | pool | mean | other
    inputs: list[int]  # tensor ids (activations; the model input is id 0)
    output: int
    module: str | None = None
    out_group: int | None = None
    in_group: int | None = None
    cout: int = 0
    cin: int = 0
    khw: int = 1
    out_hw: int = 1  # output spatial positions
    window: tuple[int, ...] | None = None  # (w, c, oh, ow, oc, sh, sw, pad_t, pad_l) for in-place overlap
    kw: int = 1  # kernel width (conv: the codegen pads each row of kw x cin weights to a multiple of 4)


@dataclass
class FootprintModel:
    group_names: list[str]
    group_sizes: list[int]
    tensors: list[_Tensor]
    steps: list[_Step]
    output: int
    extra_params: int = 0  # parameters outside conv/linear layers (norm affine of LayerNorm models, embeddings)
    notes: list[str] = field(default_factory=list)

    # --- tracing ------------------------------------------------------------------------------------------------
    @classmethod
    def trace(cls, model: nn.Module, example_inputs: torch.Tensor, groups: Sequence[Any]) -> FootprintModel:
        """Trace `model` (torch.export) and map every conv/linear to the channel groups of its outputs and inputs.

        `groups` are compress.graph ChannelGroups of the same model (names and sizes define the keep vector).
        """
        names = [g.name for g in groups]
        sizes = [g.n for g in groups]
        out_g: dict[str, int] = {}
        in_g: dict[str, int] = {}
        for gi, g in enumerate(groups):
            for s in g.slices:
                for attr, dim in s.tensors:
                    if attr != "weight" or not s.producer and s.merge != "sum":
                        continue
                    if s.producer:
                        out_g[s.module_name] = gi
                        if isinstance(s.owner, nn.Conv2d) and s.owner.groups > 1:
                            in_g[s.module_name] = gi  # depthwise: its inputs are its outputs' channels
                    elif dim in (0, 1):
                        in_g[s.module_name] = gi
        m = copy.deepcopy(model).eval()
        try:
            ep = torch.export.export(m, (example_inputs[:1].contiguous(),), strict=False)
        except Exception as e:  # noqa: BLE001 - a model torch.export cannot trace gets a clear message
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise EdgefoldError(f"cannot trace the model for its footprint (torch.export): {first}") from None
        mods = dict(m.named_modules())
        tensors: list[_Tensor] = []
        tid: dict[str, int] = {}
        steps: list[_Step] = []

        def group_of(i: int) -> int | None:
            return tensors[i].group

        for node in ep.graph.nodes:
            val = node.meta.get("val")
            if node.op == "placeholder":
                if node.name in ep.graph_signature.user_inputs:
                    tid[node.name] = len(tensors)
                    tensors.append(_Tensor(int(val.numel()), None))
                continue
            if node.op != "call_function" or not isinstance(val, torch.Tensor):
                if node.op == "output":
                    out_node = node.args[0][0]
                continue
            op = str(node.target).split(".")[1] if str(node.target).startswith("aten.") else str(node.target)
            act_in = [tid[a.name] for a in node.args if isinstance(a, torch.fx.Node) and a.name in tid]
            stack = node.meta.get("nn_module_stack") or {}
            mname = list(stack.values())[-1][0] if stack else None
            if op in ALIAS and act_in:
                tid[node.name] = act_in[0]
                continue
            numel = int(val.numel())
            if op in ("conv2d", "convolution", "linear"):
                mod = mods.get(mname)
                w = mod.weight if mod is not None else None
                og, ig = out_g.get(mname), in_g.get(mname)
                if op == "linear":
                    st = _Step("fc", act_in[:1], -1, mname, og, ig, int(w.shape[0]), int(w.shape[1]), 1,
                               numel // int(w.shape[0]))
                else:
                    dw = isinstance(mod, nn.Conv2d) and mod.groups > 1 and mod.groups == mod.in_channels
                    x_shape = node.args[0].meta["val"].shape
                    oh, ow = int(val.shape[2]), int(val.shape[3])
                    pad = mod.padding if isinstance(mod.padding, tuple) else (0, 0)
                    st = _Step("dwconv" if dw else "conv", act_in[:1], -1, mname, og, ig, int(w.shape[0]),
                               int(w.shape[1]), int(w.shape[2] * w.shape[3]), oh * ow,
                               (int(x_shape[3]), int(x_shape[1]), oh, ow, int(w.shape[0]), int(mod.stride[0]),
                                int(mod.stride[1]), int(pad[0]), int(pad[1])))
                    st.kw = int(w.shape[3])
                group = og
            else:
                kind = {"add": "add", "max_pool2d": "pool", "avg_pool2d": "pool", "adaptive_avg_pool2d": "mean",
                        "mean": "mean"}.get(op, "other")
                st = _Step(kind, act_in, -1, mname)
                group = next((group_of(i) for i in act_in if group_of(i) is not None), None)
                if kind == "pool" and act_in:
                    x_shape = node.args[0].meta["val"].shape
                    ks = node.args[1] if len(node.args) > 1 else 1
                    ss = node.args[2] if len(node.args) > 2 and node.args[2] else ks
                    ps = node.args[3] if len(node.args) > 3 else 0
                    k2 = (ks, ks) if isinstance(ks, int) else tuple(ks)
                    s2 = (ss, ss) if isinstance(ss, int) else tuple(ss)
                    p2 = (ps, ps) if isinstance(ps, int) else tuple(ps)
                    st.window = (int(x_shape[3]), int(x_shape[1]), int(val.shape[2]), int(val.shape[3]),
                                 int(val.shape[1]), int(s2[0]), int(s2[1]), int(p2[0]), int(p2[1]))
                    st.khw = int(k2[0] * k2[1])
            tid[node.name] = len(tensors)
            tensors.append(_Tensor(numel, group))
            st.output = tid[node.name]
            steps.append(st)
        out = tid.get(out_node.name if isinstance(out_node, torch.fx.Node) else "", len(tensors) - 1)
        counted = {s.module for s in steps if s.kind in ("conv", "dwconv", "fc")}
        extra = 0
        for n, mod in m.named_modules():
            if n in counted or isinstance(mod, nn.modules.batchnorm._BatchNorm):
                continue
            extra += sum(p.numel() for p in mod.parameters(recurse=False))
        return cls(names, sizes, tensors, steps, out, extra)

    # --- prediction ---------------------------------------------------------------------------------------------
    def full_keep(self) -> list[int]:
        return list(self.group_sizes)

    def _scale(self, n: int, group: int | None, keep: Sequence[int]) -> int:
        if group is None:
            return n
        return max(1, int(round(n * keep[group] / self.group_sizes[group])))

    def predict(self, keep: Sequence[int], costs: Costs) -> Footprint:
        """Footprint with keep[g] channels left in group g (same order as the groups given to `trace`)."""
        from edgefold.compiler.codegen.lower import window_delta
        from edgefold.compiler.codegen.planner import Buffer, plan

        if len(keep) != len(self.group_sizes):
            raise ValueError(f"keep has {len(keep)} entries for {len(self.group_sizes)} groups")
        size = [self._scale(t.numel, t.group, keep) for t in self.tensors]
        weights = params = macs = 0
        insns = costs.insn_base
        kinds: set[str] = set()
        buffers: dict[str, Buffer] = {}
        overlaps: list[tuple[str, str, int]] = []
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for si, st in enumerate(self.steps):
            kinds.add(st.kind)
            for t in st.inputs:
                first.setdefault(t, si)
                last[t] = si
            first.setdefault(st.output, si)
            last[st.output] = max(last.get(st.output, si), si)
            insns += costs.insn_per_step
            if st.kind in ("conv", "dwconv", "fc"):
                cout = self._scale(st.cout, st.out_group, keep)
                cin = self._scale(st.cin, st.in_group, keep) if st.kind != "dwconv" else 1
                w = cout * cin * st.khw
                k_len = cin * st.khw
                if st.kind == "conv" and (st.kw * cin) % 4:  # rows padded to whole SMLAD groups (codegen k_row)
                    k_len = st.khw // st.kw * -(-st.kw * cin // 4) * 4
                weights += cout * k_len + (PER_CHANNEL_CONST + (DWCONV_FOLDED_BIAS if st.kind == "dwconv" else 0)) \
                    * cout
                params += w + cout
                mac = w * st.out_hw
                macs += mac
                insns += costs.insn_per_mac.get(st.kind, 2.0) * mac + costs.insn_per_output * size[st.output]
                if st.kind == "conv":
                    insns += costs.insn_per_patch * st.out_hw * st.khw * cin
                if st.kind in ("conv", "fc"):  # im2col scratch: 2 x int16 x reduction length (as the codegen)
                    buffers[f"s{si}"] = Buffer(f"s{si}", _align(2 * 2 * k_len), si, si)
                if st.window is not None:
                    w_, c, oh, ow, oc, sh, sw, pt, pl = st.window
                    c = self._scale(c, self.tensors[st.inputs[0]].group, keep)
                    oc = cout if st.kind != "pool" else c
                    overlaps.append((f"t{st.output}", f"t{st.inputs[0]}",
                                     window_delta(w_, c, oh, ow, oc, sh, sw, pt, pl)))
            else:
                insns += costs.insn_per_element * sum(size[t] for t in st.inputs)
                if st.kind == "pool" and st.window is not None:
                    w_, c, oh, ow, oc, sh, sw, pt, pl = st.window
                    c = self._scale(c, self.tensors[st.inputs[0]].group, keep)
                    overlaps.append((f"t{st.output}", f"t{st.inputs[0]}", window_delta(w_, c, oh, ow, c, sh, sw, pt,
                                                                                      pl)))
                elif st.kind in ("add", "other"):
                    overlaps += [(f"t{st.output}", f"t{t}", 0) for t in st.inputs if size[t] == size[st.output]]
        n_steps = len(self.steps)
        for t, f in first.items():
            if t == 0:
                continue  # the model input is read in place from the caller's buffer
            end = n_steps if t == self.output else last[t]
            buffers[f"t{t}"] = Buffer(f"t{t}", _align(size[t]), f, end)
        overlaps = [(o, i, d) for o, i, d in overlaps if o in buffers and i in buffers]
        arena = max(16, plan(buffers, overlaps).arena_bytes)
        params += self.extra_params
        code = sum(costs.kernel_code.get(k, costs.kernel_code.get("other", 0)) for k in kinds) \
            + costs.step_bytes * n_steps
        flash = costs.flash_base + code + weights + (self.tensors[0].numel if costs.input_in_flash else 0)
        static = arena + costs.ram_static
        return Footprint(flash=int(flash), ram=int(static + costs.stack), static_ram=int(static), arena=int(arena),
                         weights=int(weights), code=int(code),
                         macs=int(macs), params=int(params), instructions=float(insns),
                         latency_ms=float(insns) * costs.cpi / costs.clock_hz * 1e3)
