"""Coupled channel groups, found from the model graph with Torch-Pruning's DependencyGraph.

A *group* is a set of n channels that must be removed together: a conv's output channels, the BatchNorm after it,
every tensor added to them by a residual connection, and the input slices of every layer that reads them (through
flatten/concat index mappings). We turn each Torch-Pruning group into a list of `Slice`s — (tensor, dim, per-channel
index, merge rule) — so the compression methods can read a feature per channel, merge channels and then let
Torch-Pruning physically remove them. Nothing here knows about a particular model.

Attention: Torch-Pruning traces qkv → reshape → heads → proj as if the 3·H·D qkv outputs mapped one-to-one to proj's
H·D inputs, which is wrong. Modules that look like an attention block (a `qkv` Linear with 3·num_heads·head_dim
outputs, a `proj` Linear with num_heads·head_dim inputs, int attributes `num_heads` and `head_dim`) therefore get a
head group of their own: a channel is a whole head (its q, k, v rows and its proj columns), so heads stay consistent,
and `num_heads` is updated when heads are removed, with every other int attribute that holds the attention width
num_heads·head_dim (timm's `attn_dim`, `all_head_size`, ...). Which of those the forward really reads is checked
by removing one head from a copy of the block and running it on the input it saw while the graph was traced; a block
whose forward runs neither way (e.g. one that reshapes to the width of its input) keeps its heads, with a notice.
`head_dim` may also be derived (qkv outputs / 3·num_heads) when the block keeps no such attribute. Their
residual-stream channels are handled by the generic groups.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn
from torch.overrides import TorchFunctionMode
from torch_pruning import ops

from edgefold.core.errors import EdgefoldError

MEAN, SUM = "mean", "sum"  # producers (and per-channel ops) take the cluster mean; consumers the sum


@dataclass
class Slice:
    """Some tensors of one module, indexed per group channel along one dim."""

    module_name: str
    owner: nn.Module  # object holding the tensors as attributes (looked up lazily: pruning replaces Parameters)
    tensors: list[tuple[str, int]]  # (attribute name, dim)
    index: torch.Tensor  # (n, m) long: the m positions along `dim` that belong to group channel i
    merge: str  # MEAN or SUM
    feature: bool = True  # part of the clustering feature (running stats are merged but not clustered)
    producer: bool = False  # weights that compute the channel (used for the correlation estimate rho)

    def get(self, attr: str) -> torch.Tensor | None:
        t = getattr(self.owner, attr, None)
        return t if isinstance(t, torch.Tensor) else None


@dataclass
class ChannelGroup:
    name: str  # root layer name
    n: int
    slices: list[Slice]
    prune: Callable[[list[int]], None]  # physically removes the given channel indices
    norm_layers: list[str] = field(default_factory=list)
    kind: str = "channels"  # or "heads"
    ops: list[str] = field(default_factory=list)  # the weightless ops the channels pass through (AddBackward0, ...)
    outputs: set[str] = field(default_factory=set)  # consumers whose output is a network output (classifiers)


def _head_dim(m: nn.Module) -> int | None:
    """head_dim of an attention block (qkv Linear -> heads -> proj Linear), or None if m is not one."""
    nh, hd = getattr(m, "num_heads", None), getattr(m, "head_dim", None)
    qkv, proj = getattr(m, "qkv", None), getattr(m, "proj", None)
    if not (isinstance(nh, int) and nh > 0 and isinstance(qkv, nn.Linear) and isinstance(proj, nn.Linear)):
        return None
    if not isinstance(hd, int) or isinstance(hd, bool):
        if qkv.out_features % (3 * nh):
            return None
        hd = qkv.out_features // (3 * nh)
    return hd if qkv.out_features == 3 * nh * hd and proj.in_features == nh * hd else None


def _attention_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if _head_dim(m) is not None]


def _width_attrs(attn: nn.Module) -> list[str]:
    """Int attributes other than num_heads/head_dim that hold the attention width num_heads·head_dim."""
    width = attn.num_heads * _head_dim(attn)  # type: ignore[operator]
    return [k for k, v in vars(attn).items() if not k.startswith("_") and k not in ("num_heads", "head_dim")
            and isinstance(v, int) and not isinstance(v, bool) and v == width]


def _head_indices(h: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    heads = torch.arange(h)
    # qkv rows are laid out [3][head][dim]; proj columns [head][dim]
    q_idx = (torch.arange(3)[None, :, None] * h * d + heads[:, None, None] * d + torch.arange(d)[None, None, :])
    p_idx = heads[:, None] * d + torch.arange(d)[None, :]
    return q_idx.reshape(h, 3 * d), p_idx


def _drop_heads(attn: nn.Module, idxs: list[int], attrs: list[str]) -> None:
    """Remove whole heads: their q, k, v rows of qkv, their proj columns, and shrink num_heads and `attrs`."""
    h, d = attn.num_heads, _head_dim(attn)
    assert d is not None
    q_idx, p_idx = _head_indices(h, d)
    rm = torch.as_tensor(sorted(idxs))
    tp.prune_linear_out_channels(attn.qkv, sorted(q_idx[rm].reshape(-1).tolist()))
    tp.prune_linear_in_channels(attn.proj, sorted(p_idx[rm].reshape(-1).tolist()))
    for a in attrs:
        setattr(attn, a, getattr(attn, a) - len(idxs) * d)
    attn.num_heads = h - len(idxs)  # head_dim is unchanged: whole heads go


def _head_attrs(attn: nn.Module, seen: tuple[tuple, dict, object] | None) -> list[str] | None:
    """The width attributes to shrink with the heads, tried on a copy of the block; None if no choice runs."""
    attrs = _width_attrs(attn)
    if seen is None:  # the block did not run while tracing: nothing to try it on
        return attrs
    args, kwargs, out = seen
    for choice in ([attrs, []] if attrs else [[]]):
        trial = copy.deepcopy(attn)
        _drop_heads(trial, [attn.num_heads - 1], choice)
        try:
            with torch.no_grad():
                y = trial(*args, **kwargs)
        except Exception:  # noqa: BLE001 - any failure means this choice of attributes is wrong
            continue
        if _shapes(y) == _shapes(out):
            return choice
    return None


def _shapes(x: object) -> object:
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    if isinstance(x, (tuple, list)):
        return tuple(_shapes(i) for i in x)
    return None


def _index(idxs: list[int], roots: list[int], n: int) -> torch.Tensor | None:
    """(n, m) target positions per root channel, or None if the mapping is not uniform."""
    idx = torch.as_tensor(list(idxs), dtype=torch.long)
    root = torch.as_tensor(list(roots), dtype=torch.long)
    if idx.numel() == 0 or idx.numel() % n:
        return None
    order = torch.argsort(root * (int(idx.max()) + 1) + idx)
    root, idx = root[order], idx[order]
    m = idx.numel() // n
    if not torch.equal(root, torch.arange(n).repeat_interleave(m)):
        return None
    return idx.view(n, m)


def _slices_for(dg: tp.DependencyGraph, item, n: int, names: dict) -> tuple[list[Slice] | None, str | None]:
    """Slices for one Torch-Pruning group item; None if the layer is not understood (group is then skipped)."""
    dep = item.dep
    mod, handler = dep.target.module, dep.handler
    is_out = dg.is_out_channel_pruning_fn(handler)
    if dep.target.type == ops.OPTYPE.PARAMETER:  # unwrapped nn.Parameter (e.g. a position embedding)
        pname = dg._param_to_name[mod]
        owner = dg.model.get_submodule(pname.rsplit(".", 1)[0]) if "." in pname else dg.model
        index = _index(item.idxs, item.root_idxs, n)
        if index is None:
            return None, None
        return [Slice(pname, owner, [(pname.rsplit(".", 1)[-1], dep.target.pruning_dim)], index, MEAN)], None
    if not isinstance(mod, nn.Module) or type(mod).__name__.startswith("_"):
        return [], None  # Torch-Pruning's shape-only ops (add, reshape, concat...) carry no weights
    name = names.get(mod, "?")
    has_params = any(True for _ in mod.parameters(recurse=False)) or any(True for _ in mod.buffers(recurse=False))
    index = _index(item.idxs, item.root_idxs, n)
    if index is None:
        return None, None
    norm = None
    if isinstance(mod, nn.modules.conv._ConvNd):
        transposed = isinstance(mod, nn.modules.conv._ConvTransposeNd)
        depthwise = mod.groups == mod.out_channels and mod.groups > 1 and mod.in_channels == mod.out_channels
        if depthwise:  # per-channel filter: behaves like a producer (mean) for both sides
            sl = [Slice(name, mod, [("weight", 0), ("bias", 0)], index, MEAN, producer=True)]
        elif mod.groups != 1:
            return None, None  # grouped (non-depthwise) convs would need per-group index bookkeeping
        elif is_out:
            sl = [Slice(name, mod, [("weight", 1 if transposed else 0), ("bias", 0)], index, MEAN, producer=True)]
        else:
            sl = [Slice(name, mod, [("weight", 0 if transposed else 1)], index, SUM)]
    elif isinstance(mod, nn.Linear):
        if is_out:
            sl = [Slice(name, mod, [("weight", 0), ("bias", 0)], index, MEAN, producer=True)]
        else:
            sl = [Slice(name, mod, [("weight", 1)], index, SUM)]
    elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
        sl = [Slice(name, mod, [("weight", 0), ("bias", 0)], index, MEAN),
              Slice(name, mod, [("running_mean", 0), ("running_var", 0)], index, MEAN, feature=False)]
        norm = name
    elif isinstance(mod, (nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)):
        sl = [Slice(name, mod, [("weight", 0), ("bias", 0)], index, MEAN)]
        if isinstance(mod, nn.modules.instancenorm._InstanceNorm):
            sl.append(Slice(name, mod, [("running_mean", 0), ("running_var", 0)], index, MEAN, feature=False))
        norm = name if isinstance(mod, nn.LayerNorm) else None  # the report lists BatchNorm/LayerNorm only
    elif isinstance(mod, nn.PReLU):
        sl = [Slice(name, mod, [("weight", 0)], index, MEAN)] if mod.num_parameters > 1 else []
    elif isinstance(mod, nn.Embedding):
        sl = [Slice(name, mod, [("weight", 1)], index, MEAN, producer=True)]
    elif not has_params:
        sl = []
    else:
        return None, None
    return sl, norm


def _attention_group(name: str, attn: nn.Module, attrs: list[str]) -> ChannelGroup:
    h, d = attn.num_heads, _head_dim(attn)
    assert d is not None
    q_idx, p_idx = _head_indices(h, d)
    pre = f"{name}." if name else ""
    slices = [Slice(pre + "qkv", attn.qkv, [("weight", 0), ("bias", 0)], q_idx, MEAN, producer=True),
              Slice(pre + "proj", attn.proj, [("weight", 1)], p_idx, SUM)]

    def prune(idxs: list[int]) -> None:
        if idxs:
            _drop_heads(attn, idxs, attrs)

    return ChannelGroup(pre + "qkv", h, slices, prune, [], kind="heads")


def _split_dims(a: tuple[int, ...], b: tuple[int, ...]) -> list[list[int]]:
    """Positions in shape b of the dims that a reshape a -> b made by splitting one dim of a (size-1 dims left out)."""
    if 0 in a or 0 in b:
        return []
    out: list[list[int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        pa, pb, si, sj = a[i], b[j], [i], [j]
        while pa != pb:
            if pa < pb:
                i += 1
                if i == len(a):
                    return out
                pa *= a[i]
                si.append(i)
            else:
                j += 1
                if j == len(b):
                    return out
                pb *= b[j]
                sj.append(j)
        parts = [k for k in sj if b[k] > 1]
        if len(si) == 1 and len(parts) > 1:
            out.append(parts)
        i, j = i + 1, j + 1
    return out


class _ShuffleRecorder(TorchFunctionMode):
    """Finds channel shuffles while Torch-Pruning traces the model.

    A shuffle is a permute/transpose that changes the order of the parts of one dim that a view/reshape has just
    split, as in ShuffleNet's view(b, g, c // g, h, w).transpose(1, 2). Torch-Pruning 1.6.1 maps channel indices
    through it wrongly (or fails inside its reshape bookkeeping), so the groups it couples are left alone. Head
    splits (view(b, n, 3, h, d).permute(2, 0, 3, 1, 4)) keep the split parts in order and are not shuffles.
    """

    RESHAPES = frozenset({"view", "reshape", "unflatten"})
    PERMUTES = frozenset({"permute", "transpose", "swapaxes", "swapdims", "movedim", "moveaxis"})

    def __init__(self) -> None:
        super().__init__()
        self._split: dict[int, tuple[torch.Tensor, list[list[int]]]] = {}
        self.grad_fns: list[object] = []  # autograd nodes of the shuffling permutes

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if not (isinstance(out, torch.Tensor) and args and isinstance(args[0], torch.Tensor)):
            return out
        inp = args[0]
        if name in self.RESHAPES:
            parts = _split_dims(tuple(inp.shape), tuple(out.shape))
            if parts:
                self._split[id(out)] = (out, parts)
        elif name in self.PERMUTES:
            entry = self._split.get(id(inp))
            if entry is not None and entry[0] is inp:
                # the permutation, read off a tensor whose dim i has size i + 2
                probe = torch.empty([i + 2 for i in range(inp.dim())], device="meta")
                perm = [s - 2 for s in func(probe, *args[1:], **kwargs).shape]
                for parts in entry[1]:
                    if [p for p in perm if p in parts] != parts and out.grad_fn is not None:
                        self.grad_fns.append(out.grad_fn)
        return out


@dataclass
class GroupSet:
    groups: list[ChannelGroup]
    skipped: list[str]  # root layers of groups left alone (unsupported layers), for the report
    notices: list[str] = field(default_factory=list)  # why groups were left alone, one line each


def find_groups(model: nn.Module, example_inputs: torch.Tensor,
                ignored_layers: list[nn.Module] | None = None) -> GroupSet:
    """All compressible channel groups of `model` (which the returned closures will modify in place).

    The classifier output (any group whose channels reach a graph output) and groups that would change the output
    channels of an ignored layer are excluded, as are heads of an ignored attention block.
    """
    ignored = list(ignored_layers or [])
    attns = _attention_modules(model)
    names = {m: n for n, m in model.named_modules()}
    frozen = [p for p in model.parameters() if not p.requires_grad]
    for p in frozen:  # the graph is traced through autograd: frozen weights would hide their layers
        p.requires_grad_(True)
    shuffles = _ShuffleRecorder()
    traced_io: dict[int, tuple[tuple, dict, object]] = {}  # what each attention block got and gave while tracing

    def keep_io(m: nn.Module, args: tuple, kwargs: dict, out: object) -> None:
        if id(m) not in traced_io:
            traced_io[id(m)] = (_detached(args), _detached(kwargs), _detached(out))

    hooks = [a.register_forward_hook(keep_io, with_kwargs=True) for _, a in attns]
    try:
        with warnings.catch_warnings(), torch.enable_grad(), shuffles:
            warnings.simplefilter("ignore")  # "unwrapped parameters detected": default dim (last) is what we want
            dg = tp.DependencyGraph().build_dependency(model, example_inputs, verbose=False)
    except Exception as e:  # Torch-Pruning's tracer: a one-line error rather than its traceback
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise EdgefoldError(f"cannot trace the model's channel dependencies (Torch-Pruning: "
                            f"{type(e).__name__}{': ' + first if first else ''}); no channel can be removed "
                            "safely") from None
    finally:
        for hk in hooks:
            hk.remove()
        for p in frozen:
            p.requires_grad_(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        skip_roots = ignored + [a.qkv for _, a in attns]
        all_groups = list(dg.get_all_groups(ignored_layers=skip_roots, root_module_types=(nn.Conv1d, nn.Conv2d,
                                                                                          nn.Conv3d, nn.Linear)))
    out: list[ChannelGroup] = []
    skipped: list[str] = []
    shuffled: list[str] = []
    shuffle_fns = {id(f) for f in shuffles.grad_fns}
    for g in all_groups:
        root, root_fn = g[0].dep.target.module, g[0].dep.handler
        n = len(g[0].idxs)
        gname = names.get(root, "?")
        if n < 2:
            continue
        # the network's output channels (classifier logits) are never touched
        if any(dg.is_out_channel_pruning_fn(it.dep.handler) and not it.dep.target.outputs for it in g):
            continue
        if shuffle_fns and any(id(getattr(node, "grad_fn", None)) in shuffle_fns
                               for it in g for node in (it.dep.source, it.dep.target)):
            shuffled.append(gname)
            continue
        slices: list[Slice] = []
        norms: list[str] = []
        seen: set = set()
        ok = True
        for it in g:
            sl, norm = _slices_for(dg, it, n, names)
            if sl is None:
                ok = False
                break
            for s in sl:  # a tensor slice must be merged once (a second mean would re-average the merged row)
                key = (id(s.owner), tuple(s.tensors))
                if key not in seen:
                    seen.add(key)
                    slices.append(s)
            if norm and norm not in norms:
                norms.append(norm)
        if not ok or not any(s.feature for s in slices):
            skipped.append(gname)
            continue

        def prune(idxs: list[int], root=root, root_fn=root_fn) -> None:
            if idxs:
                dg.get_pruning_group(root, root_fn, sorted(idxs)).prune()

        ops_seen = sorted({str(it.dep.target.module._grad_fn) for it in g
                           if isinstance(it.dep.target.module, ops._ElementWiseOp)})
        heads_out = {names.get(it.dep.target.module, "?") for it in g
                     if not dg.is_out_channel_pruning_fn(it.dep.handler) and isinstance(it.dep.target.module, nn.Module)
                     and _feeds_output(dg, it.dep.target.module)}
        out.append(ChannelGroup(gname, n, slices, prune, norms, ops=ops_seen, outputs=heads_out))
    ignored_ids = {id(m) for m in ignored}
    fixed_heads: list[str] = []
    for name, attn in attns:
        if attn.num_heads < 2 or {id(attn), id(attn.qkv), id(attn.proj)} & ignored_ids:
            continue
        attrs = _head_attrs(attn, traced_io.get(id(attn)))
        if attrs is None:
            fixed_heads.append(name)
            skipped.append((f"{name}." if name else "") + "qkv")
            continue
        out.append(_attention_group(name, attn, attrs))
    notices = []
    rnns = [n for n, m in model.named_modules() if isinstance(m, nn.RNNBase)]
    if rnns:
        notices.append(f"recurrent layers are not compressed ({short_list(rnns)}): Torch-Pruning's graph does not "
                       "couple their gate rows, so their hidden units stay as they are")
    if not out:
        notices.append("nothing to compress: the model has no channel group that can be removed (every group feeds "
                       "the output, is ignored or was skipped)")
    if fixed_heads:
        notices.append(f"attention: the heads of {short_list(fixed_heads)} are left uncompressed (the block's forward "
                       "did not run with a head removed: it reads its width from something other than num_heads "
                       "and the attributes that hold num_heads·head_dim)")
    if shuffled:
        notices.append(f"channel shuffle: {len(shuffled)} group(s) coupled through a shuffle are left uncompressed "
                       f"({short_list(shuffled)}); the channels inside each branch are compressed")
    return GroupSet(out, skipped + shuffled, notices)


def _feeds_output(dg: tp.DependencyGraph, module: nn.Module) -> bool:
    """Whether the module's output reaches a network output through weightless ops only (a classifier)."""
    node = dg.module2node.get(module)
    todo, seen = ([] if node is None else list(node.outputs)), set()
    if node is not None and not node.outputs:
        return True
    while todo:
        n = todo.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n.module, nn.Module) and not type(n.module).__name__.startswith("_"):
            continue  # another layer with weights (or a named module) sits in between
        if not n.outputs:
            return True
        todo.extend(n.outputs)
    return False


def _detached(x: object) -> object:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, tuple):
        return tuple(_detached(i) for i in x)
    if isinstance(x, list):
        return [_detached(i) for i in x]
    if isinstance(x, dict):
        return {k: _detached(v) for k, v in x.items()}
    return x


def short_list(names: list[str], at_most: int = 4) -> str:
    return ", ".join(names[:at_most]) + (f" and {len(names) - at_most} more" if len(names) > at_most else "")


# --- per-channel features and merging -------------------------------------------------------------------------


def _rows(t: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """(n, m·rest) view of tensor t's slices along dim, channel-major."""
    tt = t.detach().movedim(dim, 0)
    n, m = index.shape
    return tt.index_select(0, index.reshape(-1)).reshape(n, -1)


def features(group: ChannelGroup, producers_only: bool = False) -> torch.Tensor:
    """Feature matrix W (n × d): per channel, the concatenation of every coupled tensor slice."""
    parts = []
    for s in group.slices:
        if not s.feature or (producers_only and not s.producer):
            continue
        for attr, dim in s.tensors:
            t = s.get(attr)
            if t is not None:
                parts.append(_rows(t, dim, s.index).float())
    if not parts:
        return torch.zeros(group.n, 0)
    return torch.cat(parts, 1)


@torch.no_grad()
def merge(group: ChannelGroup, assign: torch.Tensor, reps: torch.Tensor) -> None:
    """Fold channels in place: channel reps[c] becomes the merge of the channels with assign == c.

    assign: (n,) cluster id per channel in [0, k); reps: (k,) the channel index that survives for each cluster.
    Producers get the member mean, consumers the member sum; the other channels are left for `prune` to remove.
    Only clusters with more than one member are touched (sparse index_add, O(n·d), no dense k×n matmul).
    """
    k = reps.numel()
    cnt = torch.bincount(assign, minlength=k)
    multi = torch.nonzero(cnt > 1).flatten()  # clusters that actually merge something
    if multi.numel() == 0:
        return
    sel = torch.nonzero((cnt > 1)[assign]).flatten()  # channels in those clusters
    slot = torch.full((k,), -1, dtype=torch.long)
    slot[multi] = torch.arange(multi.numel())
    dest = slot[assign[sel]]
    inv = 1.0 / cnt[multi].to(torch.float64)
    for s in group.slices:
        for attr, dim in s.tensors:
            t = s.get(attr)
            if t is None:
                continue
            data = t.data if isinstance(t, nn.Parameter) else t
            tt = data.movedim(dim, 0)
            rows = _rows(data, dim, s.index[sel])
            new = torch.zeros(multi.numel(), rows.shape[1], dtype=rows.dtype).index_add_(0, dest, rows)
            if s.merge == MEAN:
                new.mul_(inv.to(rows.dtype)[:, None])
            tt.index_copy_(0, s.index[reps[multi]].reshape(-1), new.reshape(-1, *tt.shape[1:]))
