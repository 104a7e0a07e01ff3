"""Hartigan refinement of the label-space k-means: exact gains, monotone, a Hartigan-stable result, deterministic."""

from __future__ import annotations

import torch
from edgefold.compiler.compress.kmeans import hartigan, inertia_from_labels, kmeans, lloyd, pairwise_sq_dists


def _data(n: int = 96, d: int = 300, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g) @ torch.randn(8, d, generator=g) * 0.5 + torch.randn(n, d, generator=g)


def _centroid_objective(x: torch.Tensor, lab: torch.Tensor, k: int) -> float:
    x = x.double()
    return float(sum(((x[lab == c] - x[lab == c].mean(0)) ** 2).sum() for c in range(k) if (lab == c).any()))


def _is_hartigan_stable(x: torch.Tensor, lab: torch.Tensor, k: int) -> bool:
    """No single point move lowers the objective (checked in the centroid form, independently of the kernel form)."""
    x = x.double()
    cnt = torch.bincount(lab, minlength=k).double()
    mu = torch.stack([x[lab == c].mean(0) for c in range(k)])
    d2 = torch.cdist(x, mu) ** 2
    for i in range(len(x)):
        a = int(lab[i])
        if cnt[a] <= 1:
            continue
        rm = cnt[a] / (cnt[a] - 1) * d2[i, a]
        add = cnt / (cnt + 1) * d2[i]
        add[a] = float("inf")
        if float(add.min()) < float(rm) * (1 - 1e-9):
            return False
    return True


def test_hartigan_lowers_lloyd_objective_and_is_stable():
    x = _data()
    k = 30
    d = pairwise_sq_dists(x)
    start = torch.arange(96) % k
    lab, _ = lloyd(d, start[None], k)
    lab = lab[0]
    refined = hartigan(d, lab, k)
    before, after = _centroid_objective(x, lab, k), _centroid_objective(x, refined, k)
    assert after <= before + 1e-9
    assert after < before  # on this data Lloyd's fixed point is not a local optimum
    assert abs(float(inertia_from_labels(d, refined, k)) - after) < 1e-6 * after
    assert torch.bincount(refined, minlength=k).min() >= 1  # no cluster emptied
    assert _is_hartigan_stable(x, refined, k)


def test_kmeans_with_refinement_never_worse_and_deterministic():
    x = _data(seed=3)
    for k in (5, 24, 60):
        plain = kmeans(x, k, seed=2, refine=0)
        refined = kmeans(x, k, seed=2)
        assert refined.inertia <= plain.inertia + 1e-9
        again = kmeans(x, k, seed=2)
        assert torch.equal(again.labels, refined.labels) and again.inertia == refined.inertia


def test_hartigan_keeps_duplicates_together():
    base = _data(n=20, seed=5)
    x = torch.cat([base, base])  # every row twice: the 20-cluster optimum has zero error
    res = kmeans(x, 20, seed=0)
    assert res.inertia < 1e-6
    assert torch.equal(res.labels[:20], res.labels[20:])
