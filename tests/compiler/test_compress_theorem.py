"""Theorem 2.1 of the seeds, checked numerically on every coupled group of every reference zoo model.

W is a group's feature matrix (one row per channel, all coupled slices). For any prune that keeps k rows,
folding the pruned rows into one extra cluster (rank k+1: keep the same k rows, replace the others by their mean)
has ‖W − W_fold‖_F ≤ ‖W − W_prune‖_F, because the mean is the point closest to those rows in squared distance and
pruning replaces them by 0. Hence *optimal* k-means at k never loses to any prune at k−1.

Our k-means is a heuristic (Lloyd from k-means++ starts), so the second claim is not automatic for it. It holds by
construction: k-means also starts from the "prune at k−1 + one merged cluster" labelling, and Lloyd never increases
the objective, so the returned fold is at most that start's error, which is at most the prune at k−1. The test
checks the inequality on the fold that k-means actually returns, not on an idealised optimum.
"""

from __future__ import annotations

import copy

import pytest
import torch
from edgefold.compiler import zoo
from edgefold.compiler.compress import graph, keep_count
from edgefold.compiler.compress.fold import fold_error, plan_fold, prune_error, prune_plus_one, row_sq_norms

TOL = 1e-4  # relative: errors are sums of float32 squares


def _groups(name: str):
    model = zoo.build(name).eval()
    x = torch.randn(zoo.input_shape(name))
    return [(g, graph.features(g)) for g in graph.find_groups(copy.deepcopy(model), x).groups]


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # many small ops: OpenMP on busy shared cores only slows them down
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("name", zoo.REFERENCE)
def test_fold_beats_prune_on_every_group(name):
    groups = _groups(name)
    assert groups, "no coupled groups found"
    kinds = set()
    for g, w in groups:
        kinds.add(g.kind)
        n = g.n
        sq = row_sq_norms(w)
        ks = sorted({keep_count(n, r) for r in (0.25, 0.5, 0.75)} - {n})
        for k in ks:
            # (1) fold of the pruned rows into one cluster, rank k+1, vs the best prune at rank k
            if k + 1 <= n:
                e_fold1 = fold_error(w, prune_plus_one(sq, k + 1))
                e_prune = prune_error(w, k, sq)
                assert e_fold1 <= e_prune * (1 + TOL) + 1e-6, (g.name, k)
            # (2) our k-means fold at k vs the best prune at k−1
            if k >= 2:
                plan = plan_fold(w, k, seed=0, row_sq=sq)
                assert len(plan.members) == k and sorted(sum(plan.members, [])) == list(range(n))
                e_km = fold_error(w, plan.assign, sq)
                assert e_km <= prune_error(w, k - 1, sq) * (1 + TOL) + 1e-6, (g.name, k)
                assert abs(e_km**2 - plan.inertia) <= 1e-3 * (1 + e_km**2)  # k-means' own objective agrees
    if name == "vit_tiny":
        assert kinds == {"channels", "heads"}


def test_theorem_on_trained_weights(trained):
    """Same inequalities on a trained resnet8 (digits), where channels are far from random."""
    from edgefold.compiler.checkpoint import load_model

    model = load_model(trained("resnet8")).model
    x = torch.randn(zoo.input_shape("resnet8"))
    for g in graph.find_groups(copy.deepcopy(model), x).groups:
        w = graph.features(g)
        sq = row_sq_norms(w)
        for k in sorted({keep_count(g.n, r) for r in (0.25, 0.5, 0.75)} - {g.n, 1}):
            assert fold_error(w, prune_plus_one(sq, k + 1)) <= prune_error(w, k, sq) * (1 + TOL) + 1e-6
            plan = plan_fold(w, k, seed=0, row_sq=sq)
            assert fold_error(w, plan.assign, sq) <= prune_error(w, k - 1, sq) * (1 + TOL) + 1e-6
