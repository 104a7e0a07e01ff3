"""Structural compression: FOLD (k-means channel merging) and MAG1/MAG2 (magnitude pruning) on coupled groups.

    compressed, report = compress(model, example_inputs, method="fold", ratio=0.5)

The input model is never modified. Coupled channel groups come from the model graph (graph.py); every group loses
round(ratio·n) of its n channels (k = n − round(ratio·n) ≥ 1, half rounded up); the classifier output is kept.
`ratios={group name: ratio}` sets the ratio of single groups (names as in the report, e.g. chosen by compiler/fit);
the others use `ratio`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time

import torch
import torch_pruning as tp
from torch import nn

from edgefold.core.errors import EdgefoldError
from edgefold.core.vocab import METHODS, REPAIRS

from . import fold, graph, magnitude
from .report import CompressReport, GroupRecord

__all__ = ["METHODS", "REPAIRS", "CompressReport", "GroupRecord", "compress", "keep_count", "count_macs_params"]


def keep_count(n: int, ratio: float) -> int:
    """Channels kept from a group of n: k = n − round(ratio·n), at least 1 (halves round up)."""
    return max(1, n - int(math.floor(ratio * n + 0.5)))


def count_macs_params(model: nn.Module, example_inputs: torch.Tensor) -> tuple[int, int]:
    macs, params = tp.utils.count_ops_and_params(model, example_inputs)
    return int(macs), int(params)


def _check_ratio(ratio: object, what: str = "ratio") -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) \
            or not 0 <= ratio < 1:
        raise EdgefoldError(f"{what} must be a number in [0, 1), got {ratio!r}")


def _validate(model, example_inputs, method, ratio, repair) -> None:
    if not isinstance(model, nn.Module):
        raise EdgefoldError(f"compress() needs a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example_inputs, torch.Tensor):
        raise EdgefoldError(f"example_inputs must be a torch.Tensor, got {type(example_inputs).__name__}")
    if method not in METHODS:
        raise EdgefoldError(f"unknown compression method '{method}'; choose one of: {', '.join(METHODS)}")
    if repair not in REPAIRS:
        raise EdgefoldError(f"unknown repair '{repair}'; choose one of: {', '.join(REPAIRS)}")
    _check_ratio(ratio)


def _map_ignored(original: nn.Module, work: nn.Module, ignored: list[nn.Module] | None) -> list[nn.Module]:
    """The deep copy's modules corresponding to the caller's ignored layers (given as modules of `original`)."""
    if not ignored:
        return []
    names = {id(m): n for n, m in original.named_modules()}
    out = []
    for m in ignored:
        if id(m) not in names:
            raise EdgefoldError(f"ignored layer {type(m).__name__} is not a submodule of the model")
        out.append(work.get_submodule(names[id(m)]))
    return out


@contextlib.contextmanager
def _single_thread():
    """Run the structural part on one intra-op thread, restoring the caller's setting.

    Clustering and merging are many small, memory-bound ops; with 2+ OpenMP threads on shared cores the barrier
    spinning made them 10× slower (measured: ResNet-18 fold 18 s vs 1.5 s on this 2-core machine under load),
    while the one large matmul (the Gram matrix) gains at most the core count.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


single_thread = _single_thread  # public: recovery and fitting run their many small ops the same way


def compress(model: nn.Module, example_inputs: torch.Tensor, method: str = "fold", ratio: float = 0.5,
             repair: str = "none", calib_data: torch.Tensor | None = None,
             ignored_layers: list[nn.Module] | None = None, seed: int = 0,
             ratios: dict[str, float] | None = None) -> tuple[nn.Module, CompressReport]:
    """Compress a copy of `model`; returns (compressed eval-mode model, report)."""
    _validate(model, example_inputs, method, ratio, repair)
    for name, r in (ratios or {}).items():
        _check_ratio(r, f"ratio of group '{name}'")
    with _single_thread():
        work, report = _structural(model, example_inputs, method, ratio, ignored_layers, seed, dict(ratios or {}))
    if repair != "none":
        from edgefold.compiler.compress.repair import apply_repair  # lazy: repair pulls in data/inversion code

        t = time.perf_counter()
        apply_repair(repair, work, model, report.groups, calib_data, example_inputs, seed=seed)
        report.timings["repair"] = round(time.perf_counter() - t, 4)
        report.seconds += time.perf_counter() - t
        skip = [g for g in report.groups if g.ar_skip and any(len(m) > 1 for m in g.members)]
        if repair == "ar" and skip:
            why = sorted({g.ar_skip.split(" (")[0] for g in skip})
            names = graph.short_list([g.name for g in skip])
            report.notices.append(f"ar does not apply to {len(skip)} merged group(s) ({names}): {'; '.join(why)}; "
                                  "their BatchNorm statistics are left as folded (use repair or dir for those)")
    report.repair = repair
    return work.eval(), report


def _ar_applicability(groups: list[graph.ChannelGroup], records: list[GroupRecord]) -> None:
    """Mark the groups where `ar`'s premise fails (repair.py explains the premise and the measurements)."""
    produced = {s.module_name for g in groups for s in g.slices if s.producer}
    for g, rec in zip(groups, records, strict=True):
        if "MulBackward0" in g.ops:
            rec.ar_skip = "its channels are gated by squeeze-excitation"
            continue
        consumers = sorted({s.module_name for s in g.slices if s.merge == graph.SUM and not s.producer})
        fixed = [c for c in consumers if c not in produced and c not in g.outputs]
        if fixed:
            rec.ar_skip = f"its channels feed layers that are not compressed ({', '.join(fixed[:2])})"


def _norm_positions(groups: list[graph.ChannelGroup], removals: list[list[int]], records: list[GroupRecord]) -> None:
    """Record where each group's kept channels sit in its norm layers once every group has been pruned.

    A norm layer can hold channels of several groups: DenseNet's norm1 normalises the concatenation of every earlier
    layer's output, each its own group. Its channel c of a group is then not channel c of the layer.
    """
    def norm_slices(g: graph.ChannelGroup) -> dict[str, torch.Tensor]:
        return {s.module_name: s.index for s in g.slices if s.module_name in g.norm_layers
                and any(attr == "weight" or attr == "running_var" for attr, _ in s.tensors)}

    removed: dict[str, list[int]] = {}
    per_group = [norm_slices(g) for g in groups]
    for sl, rm in zip(per_group, removals, strict=True):
        for name, index in sl.items():
            removed.setdefault(name, []).extend(index[rm].reshape(-1).tolist() if rm else [])
    for sl, rec in zip(per_group, records, strict=True):
        reps = torch.as_tensor([m[0] for m in rec.members], dtype=torch.long)
        for name, index in sl.items():
            gone = torch.as_tensor(sorted(removed.get(name, [])), dtype=torch.long)
            kept = index[reps]  # (k, m) positions before pruning
            rec.norm_index[name] = (kept - torch.searchsorted(gone, kept)).tolist()


def _structural(model: nn.Module, example_inputs: torch.Tensor, method: str, ratio: float,
                ignored_layers: list[nn.Module] | None, seed: int,
                ratios: dict[str, float] | None = None) -> tuple[nn.Module, CompressReport]:
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(stage: str, t: float) -> float:
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - t
        return now

    # clustering and index bookkeeping run on the CPU; the result goes back to the model's device at the end
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    work = copy.deepcopy(model).eval().cpu()
    example_inputs = example_inputs.cpu()
    ignored = _map_ignored(model, work, ignored_layers)
    t = time.perf_counter()
    try:
        macs_before, params_before = count_macs_params(work, example_inputs)  # also checks that the model runs
    except Exception as e:  # a wrong input shape is the usual cause
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgefoldError(f"model does not run on example inputs of shape {tuple(example_inputs.shape)}: "
                            f"{first}") from None
    t = lap("count", t)
    gset = graph.find_groups(work, example_inputs, ignored)
    t = lap("graph", t)
    ratios = ratios or {}
    unknown = sorted(set(ratios) - {g.name for g in gset.groups})
    if unknown:
        raise EdgefoldError(f"no compressible channel group named {', '.join(unknown)} (groups: "
                            f"{', '.join(g.name for g in gset.groups)})")

    # read every group's features before touching any weight, so groups don't see each other's merges
    feats = [graph.features(g) for g in gset.groups]
    prod = [graph.features(g, producers_only=True) for g in gset.groups]
    t = lap("features", t)

    records: list[GroupRecord] = []
    removals: list[list[int]] = []
    for g, w, p in zip(gset.groups, feats, prod, strict=True):
        k = keep_count(g.n, ratios.get(g.name, ratio))
        sq = fold.row_sq_norms(w)
        pe = fold.prune_error(w, k, sq)
        if k == g.n:
            members, rho, err, rm = [[i] for i in range(g.n)], [1.0] * g.n, 0.0, []
            fe = 0.0 if method == "fold" else None
        elif method == "fold":
            plan = fold.plan_fold(w, k, seed=seed, row_sq=sq)
            fe = fold.fold_error(w, plan.assign, sq)
            members, err = plan.members, fe
            rho = fold.cluster_rho(p if p.shape[1] else w, plan.assign, k)
            rm = fold.apply_fold(g, plan)
        else:
            keep = magnitude.keep_top(w, k, 1 if method == "mag1" else 2)
            members, rho, fe = [[int(i)] for i in keep], [1.0] * k, None
            err = magnitude.prune_error_of(sq, keep)
            kept = set(keep.tolist())
            rm = [i for i in range(g.n) if i not in kept]
        removals.append(rm)
        records.append(GroupRecord(g.name, g.n, k, members, rho, list(g.norm_layers), err, pe, fe, g.kind,
                                   int(w.shape[1]), ops=list(g.ops)))
    _norm_positions(gset.groups, removals, records)
    _ar_applicability(gset.groups, records)
    t = lap("cluster_merge", t)
    grad_flags = {n: p.requires_grad for n, p in work.named_parameters()}
    for g, rm in zip(gset.groups, removals, strict=True):
        g.prune(rm)
    for n, p in work.named_parameters():  # pruning builds new Parameters: keep the caller's frozen/trainable flags
        p.requires_grad_(grad_flags.get(n, True))
    t = lap("prune", t)

    try:
        macs_after, params_after = count_macs_params(work, example_inputs)  # runs the compressed model once
    except Exception as e:
        raise EdgefoldError(f"compressed model no longer runs ({type(e).__name__}: {str(e).splitlines()[0]}); "
                            "pass the offending layer in ignored_layers") from None
    t = lap("count", t)

    report = CompressReport(method, float(ratio), "none", params_before, params_after, macs_before, macs_after,
                            time.perf_counter() - t_start, records, gset.skipped,
                            {k: round(v, 4) for k, v in timings.items()},
                            {g.name: float(ratios[g.name]) for g in gset.groups if g.name in ratios},
                            list(gset.notices))
    return work.to(device), report
