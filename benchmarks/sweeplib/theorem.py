"""Numerical check of the seeds' Theorem 2.1 on real coupled groups.

For a group's feature matrix W (one row per channel: every coupled slice of that channel concatenated) and a
prune that keeps k rows (zeroing the rest), folding the removed rows into one extra cluster (rank k+1: kept rows
unchanged, removed rows replaced by their mean) is never farther from W in Frobenius norm, because the mean
minimises the sum of squared distances and zero is just one candidate point. Consequently optimal k-means at
k_f is never worse than the best prune at k_f − 1. We check the first for both magnitude prunes (L1 and L2
selection) and the second with the k-means fold that edgefold actually computes.
"""

from __future__ import annotations

from typing import Any

import torch

# Relative slack for float rounding in the comparisons (errors are computed in float64).
RTOL = 1e-9


def _prune_sets(w: torch.Tensor, k: int, p: int) -> torch.Tensor:
    """Indices of the rows a magnitude prune removes when it keeps the k rows of largest Lp norm."""
    norms = w.abs().sum(1) if p == 1 else w.pow(2).sum(1)
    order = torch.argsort(norms, descending=True, stable=True)
    return order[k:]


def prune_error(w: torch.Tensor, removed: torch.Tensor) -> float:
    return float(w[removed].pow(2).sum().sqrt())


def fold_of_prune_error(w: torch.Tensor, removed: torch.Tensor) -> float:
    """Error of the rank-(k+1) fold built from a prune: removed rows -> one cluster at their mean."""
    if removed.numel() == 0:
        return 0.0
    r = w[removed]
    return float((r - r.mean(0, keepdim=True)).pow(2).sum().sqrt())


def group_check(w: torch.Tensor, k: int, fold_error_k: float | None = None) -> dict[str, Any]:
    """Theorem quantities for one group at rank k; `fold_error_k` is edgefold's k-means fold error at k, if known."""
    w = w.reshape(w.shape[0], -1).double()
    n = w.shape[0]
    out: dict[str, Any] = {"n": n, "k": k}
    ok = True
    for p in (1, 2):
        rem = _prune_sets(w, k, p)
        pe, fe = prune_error(w, rem), fold_of_prune_error(w, rem)
        out[f"prune_l{p}"], out[f"fold_of_prune_l{p}"] = pe, fe
        ok &= fe <= pe * (1 + RTOL) + 1e-12
    out["fold_k1_le_prune_k"] = bool(ok)
    if fold_error_k is not None and k >= 2:
        best_prune_km1 = prune_error(w, _prune_sets(w, k - 1, 2))  # the best prune at k−1 keeps the largest L2 rows
        out["fold_k"], out["prune_km1"] = float(fold_error_k), best_prune_km1
        out["kmeans_k_le_prune_km1"] = bool(fold_error_k <= best_prune_km1 * (1 + RTOL) + 1e-12)
    return out


def summarise(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over many group checks."""
    a = [c["fold_k1_le_prune_k"] for c in checks]
    b = [c["kmeans_k_le_prune_km1"] for c in checks if "kmeans_k_le_prune_km1" in c]
    return {"groups": len(a), "fold_k1_le_prune_k": sum(a), "kmeans_groups": len(b),
            "kmeans_k_le_prune_km1": sum(b)}


def check_model(model: Any, example_inputs: torch.Tensor, ratio: float,
                fold_errors: dict[str, float] | None = None) -> dict[str, Any]:
    """Check every coupled group of (a copy of) `model` at the k that `ratio` gives.

    Feature matrices come from the compressor itself (graph.find_groups + graph.features), so the check is on
    exactly the rows that fold/mag cluster and prune. `fold_errors` maps group name -> edgefold's fold error at k
    (GroupRecord.fold_error of a fold run at this ratio). Groups that keep every channel (k = n) are counted apart.
    """
    import copy

    from edgefold.compiler.compress import graph, keep_count

    work = copy.deepcopy(model).eval()
    gset = graph.find_groups(work, example_inputs)
    checks, untouched, worst = [], 0, 0.0
    for g in gset.groups:
        k = keep_count(g.n, ratio)
        if k == g.n:
            untouched += 1
            continue
        c = group_check(graph.features(g), k, (fold_errors or {}).get(g.name))
        checks.append(c)
        for p in (1, 2):
            if c[f"prune_l{p}"] > 0:
                worst = max(worst, c[f"fold_of_prune_l{p}"] / c[f"prune_l{p}"])
    return summarise(checks) | {"untouched_groups": untouched, "worst_fold_over_prune": round(worst, 6)}
