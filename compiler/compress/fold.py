"""FOLD: merge each coupled group's channels by k-means instead of deleting them.

Per group, W (n × d) holds one feature row per channel (every coupled tensor slice, see graph.features). k-means
with k = n − round(ratio·n) clusters the rows; each cluster keeps one channel (its smallest index) whose producer
slices become the cluster mean and whose consumer slices the sum of the members' — so a group of exact duplicate
channels folds with no change of function. The other channels are then removed by Torch-Pruning.

k-means gets one extra start besides its k-means++ restarts: "keep the k−1 largest rows, merge all others into one
cluster". Lloyd is monotone, so the result is never worse than that start, which already beats magnitude pruning
at k−1 (the mean of the merged rows is closer to them than zero is): Theorem 2.1 holds by construction, not by luck.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import graph
from .kmeans import kmeans


@dataclass
class FoldPlan:
    assign: torch.Tensor  # (n,) cluster per channel, clusters numbered by smallest member
    reps: torch.Tensor  # (k,) surviving channel per cluster (ascending)
    members: list[list[int]]
    inertia: float


def row_sq_norms(w: torch.Tensor) -> torch.Tensor:
    return w.pow(2).sum(1).double()  # torch's cascade summation keeps float32 accurate enough here


def prune_error(w: torch.Tensor, keep: int, row_sq: torch.Tensor | None = None) -> float:
    """‖W − W_prune‖_F for the best rank-`keep` prune (keep the largest-L2 rows, zero the rest)."""
    sq = (row_sq_norms(w) if row_sq is None else row_sq).sort().values
    return float(sq[: w.shape[0] - keep].sum().sqrt())


def fold_error(w: torch.Tensor, assign: torch.Tensor, row_sq: torch.Tensor | None = None) -> float:
    """‖W − W_fold‖_F where every row is replaced by the mean of its cluster.

    Uses Σ_c Σ_i∈c ‖w_i − μ_c‖² = Σ_i ‖w_i‖² − Σ_c ‖Σ_i∈c w_i‖² / n_c (O(n·d), no n×d temporary per cluster).
    """
    k = int(assign.max()) + 1
    sq = row_sq_norms(w) if row_sq is None else row_sq
    sums = torch.zeros(k, w.shape[1], dtype=w.dtype).index_add_(0, assign, w)
    cnt = torch.bincount(assign, minlength=k).double().clamp(min=1)
    val = float(sq.sum() - (row_sq_norms(sums) / cnt).sum())
    return math.sqrt(max(val, 0.0))


def prune_plus_one(row_sq: torch.Tensor, k: int) -> torch.Tensor:
    """Labels of the fold that keeps the k−1 largest-L2 rows as singletons and merges the rest into one cluster."""
    n = row_sq.shape[0]
    top = row_sq.argsort(descending=True, stable=True)[: k - 1]
    lab = torch.full((n,), k - 1, dtype=torch.long)
    lab[top] = torch.arange(k - 1)
    return lab


def cluster_rho(p: torch.Tensor, assign: torch.Tensor, k: int) -> list[float]:
    """Mean pairwise cosine similarity within each cluster (1.0 for singletons), from rows of p."""
    if p.shape[1] == 0:
        return [1.0] * k
    pn = p / p.norm(dim=1, keepdim=True).clamp(min=1e-30)
    s = torch.zeros(k, p.shape[1], dtype=p.dtype).index_add_(0, assign, pn)
    cnt = torch.bincount(assign, minlength=k).double()
    # Σ_{i≠j} cos_ij = ‖Σ_i p̂_i‖² − n_c
    rho = (s.pow(2).sum(1).double() - cnt) / (cnt * (cnt - 1)).clamp(min=1)
    rho = torch.where(cnt > 1, rho, torch.ones_like(rho))
    return [float(r) for r in rho.clamp(-1.0, 1.0)]


def default_restarts(n: int) -> int:
    """k-means++ restarts: 10 (scikit-learn's n_init) for big groups, up to 64 where a Lloyd step is cheap (O(n²))."""
    return int(min(64, max(10, 2_000_000 // max(n * n, 1))))


def plan_fold(w: torch.Tensor, k: int, seed: int = 0, n_init: int | None = None,
              row_sq: torch.Tensor | None = None) -> FoldPlan:
    """Cluster the rows of w into k groups (best of the k-means++ restarts and the prune-plus-one start)."""
    n = w.shape[0]
    n_init = default_restarts(n) if n_init is None else n_init
    init = prune_plus_one(row_sq_norms(w) if row_sq is None else row_sq, k) if 1 < k < n else None
    res = kmeans(w, k, n_init=n_init, seed=seed, init_labels=init)
    assign = res.labels
    first = torch.full((k,), n, dtype=torch.long).scatter_reduce_(0, assign, torch.arange(n), reduce="amin")
    assert bool((first[1:] > first[:-1]).all()), "clusters must be numbered by their smallest member"
    members = [[] for _ in range(k)]
    for i, c in enumerate(assign.tolist()):
        members[c].append(i)
    return FoldPlan(assign, first, members, res.inertia)


def apply_fold(group: graph.ChannelGroup, plan: FoldPlan) -> list[int]:
    """Merge the group's channels in place; returns the channel indices to remove."""
    graph.merge(group, plan.assign, plan.reps)
    keep = set(plan.reps.tolist())
    return [i for i in range(group.n) if i not in keep]
