"""Fast, deterministic k-means for channel folding (torch, CPU).

Channel groups are "few points, huge dimension": n ≤ a few thousand channels, d up to ~20 000 coupled weights per
channel. k-means only needs pairwise distances, so we compute the Gram matrix once (one n×n×d matmul, the only step
that touches d) and then run everything in label space:

* k-means++ (greedy, 2 + log k local trials like scikit-learn) picks data points as centres, so its distance updates
  are row look-ups in the n×n distance matrix;
* Lloyd is run as *kernel* k-means: the squared distance from point i to the mean of cluster c is
  mean_j∈c D_ij − (1/2) mean_j,l∈c D_jl, computed with one scatter-add of D per iteration (O(n²), not O(n·k·d));
* all restarts are batched along a leading dimension, so there is no Python loop over channels or restarts.

This is exact Lloyd (same iterates as the centroid form), so every step is monotone; an extra caller-supplied initial
labelling (e.g. "keep the k−1 largest rows, merge the rest") therefore can never get worse.

Lloyd stops at a fixed point where every point is nearest to its own mean, which is not yet a local optimum of the
objective: moving point i from cluster a to b changes it by n_b/(n_b+1)·‖x_i−μ_b‖² − n_a/(n_a−1)·‖x_i−μ_a‖²
(Hartigan & Wong), which can be negative although μ_a is nearer. `hartigan` refines the best Lloyd results with
such moves until none improves, in the same label space (distances to means from the cluster sums of D). Moves
between disjoint cluster pairs do not interact, so each round applies the best improving move of as many disjoint
pairs as it can: exact, monotone and vectorised. Every Hartigan-stable labelling is Lloyd-stable, so no Lloyd pass
is needed after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class KMeansResult:
    labels: torch.Tensor  # (n,) long, values in [0, k)
    inertia: float  # sum of squared distances to the cluster means
    n_iter: int


def pairwise_sq_dists(x: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (float64, n×n) via one Gram matmul on the centred data."""
    x = x.reshape(x.shape[0], -1)
    xc = x - x.mean(0, keepdim=True)
    if x.dtype != torch.float64 and x.shape[1] > 4 * x.shape[0]:
        g = (xc @ xc.T).double()  # the only O(n²d) step: float32 speed, float64 for the rest
    else:
        g = xc.double() @ xc.double().T
    sq = g.diagonal()
    d = sq[:, None] + sq[None, :] - 2.0 * g
    d.clamp_(min=0.0)
    d.fill_diagonal_(0.0)
    return d


def inertia_from_labels(d: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """k-means objective of a (batch of) labelling(s) from the distance matrix: Σ_c Σ_i,j∈c D_ij / (2|c|)."""
    lab = labels if labels.dim() == 2 else labels[None]
    b, n = lab.shape
    s = _cluster_sums(d, lab, k)  # (b, n, k): Σ_j∈c D_ij
    cnt = _counts(lab, k)
    own = s.gather(2, lab[:, :, None]).squeeze(2)  # Σ_j∈c(i) D_ij
    tot = torch.zeros(b, k, dtype=d.dtype).scatter_add_(1, lab, own)
    out = (tot / (2.0 * cnt.clamp(min=1))).sum(1)
    return out if labels.dim() == 2 else out[0]


def _counts(lab: torch.Tensor, k: int) -> torch.Tensor:
    return torch.zeros(lab.shape[0], k, dtype=torch.float64).scatter_add_(
        1, lab, torch.ones(lab.shape, dtype=torch.float64))


def _cluster_sums(d: torch.Tensor, lab: torch.Tensor, k: int) -> torch.Tensor:
    """S[b, i, c] = Σ_{j: lab[b, j] = c} D[i, j] for every restart b (one scatter-add, O(b·n²))."""
    b, n = lab.shape
    s = torch.zeros(b, n, k, dtype=d.dtype)
    return s.scatter_add_(2, lab[:, None, :].expand(b, n, n), d[None].expand(b, n, n))


def _kmeanspp(d: torch.Tensor, k: int, n_init: int, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ for n_init restarts at once; returns initial labels (n_init, n).

    Sampling ∝ D² uses inverse-CDF look-ups with pre-drawn uniforms (cheaper than multinomial per step).
    """
    n = d.shape[0]
    trials = 2 + int(math.log(k))
    d32 = d.float()
    u = torch.rand(k, n_init, trials, generator=gen)
    first = torch.randint(n, (n_init,), generator=gen)
    centers = torch.empty(k, n_init, dtype=torch.long)
    centers[0] = first
    closest = d32.index_select(0, first)  # (b, n) squared distance to the nearest chosen centre
    ar = torch.arange(n_init)
    for c in range(1, k):
        cdf = closest.cumsum(1)
        cand = torch.searchsorted(cdf, (u[c] * cdf[:, -1:]).contiguous()).clamp_(max=n - 1)  # (b, t)
        new = torch.minimum(closest[:, None, :], d32.index_select(0, cand.reshape(-1)).view(n_init, trials, n))
        best = new.sum(2).argmin(1)
        centers[c] = cand[ar, best]
        closest = new[ar, best]
    # nearest centre per point; a centre always labels itself (ties between duplicates go to the first centre)
    lab = d32.index_select(0, centers.T.reshape(-1)).view(n_init, k, n).argmin(1)
    lab.scatter_(1, centers.T, torch.arange(k).expand(n_init, k).contiguous())
    return lab


def _fix_empty(lab: torch.Tensor, dist_own: torch.Tensor, k: int) -> torch.Tensor:
    """Give every empty cluster the point farthest from its own mean (monotone, like scikit-learn)."""
    cnt = _counts(lab, k)
    for b in torch.nonzero((cnt == 0).any(1)).flatten().tolist():
        empty = torch.nonzero(cnt[b] == 0).flatten()
        far = dist_own[b].argsort(descending=True)
        taken = 0
        for i in far.tolist():
            if taken == len(empty):
                break
            if cnt[b, lab[b, i]] > 1:  # never empty another cluster
                cnt[b, lab[b, i]] -= 1
                lab[b, i] = empty[taken]
                cnt[b, empty[taken]] = 1
                taken += 1
    return lab


def lloyd(d: torch.Tensor, labels: torch.Tensor, k: int, max_iter: int = 100) -> tuple[torch.Tensor, int]:
    """Batched kernel Lloyd from initial labels (b, n) until no label changes; returns labels and iterations."""
    lab = labels.clone()
    it = 0
    while it < max_iter:
        it += 1
        s = _cluster_sums(d, lab, k)
        cnt = _counts(lab, k)
        own = s.gather(2, lab[:, :, None]).squeeze(2)
        tot = torch.zeros_like(cnt).scatter_add_(1, lab, own)  # Σ_{i,j∈c} D_ij
        c = cnt.clamp(min=1)[:, None, :]
        dist = s / c - (tot / (2.0 * cnt.clamp(min=1) ** 2))[:, None, :]
        dist = dist.masked_fill((cnt == 0)[:, None, :], float("inf"))
        # keep the current label on ties so converged restarts stay put
        cur = dist.gather(2, lab[:, :, None]).squeeze(2)
        best_d, best = dist.min(2)
        new = torch.where(best_d < cur - 1e-12 * (1.0 + cur.abs()), best, lab)
        if (_counts(new, k) == 0).any():
            own_d = dist.gather(2, new[:, :, None]).squeeze(2)
            new = _fix_empty(new, own_d, k)
        if torch.equal(new, lab):
            break
        lab = new
    return lab, it


def hartigan(d: torch.Tensor, labels: torch.Tensor, k: int, max_rounds: int = 10_000) -> torch.Tensor:
    """Refine one labelling (n,) with Hartigan single-point moves until no move lowers the objective.

    The gain of moving every point to every other cluster comes from the cluster sums S[i, c] = Σ_j∈c D_ij; each
    round applies the best moves of disjoint (source, destination) pairs, best first, then updates S by the moved
    points' columns of D and recomputes only the touched clusters' columns. A cluster never empties (moving a
    singleton has no gain).
    """
    lab = labels.clone().long()
    n = lab.shape[0]
    if k <= 1 or k >= n:
        return lab
    ar = torch.arange(n)
    # cluster-major (k, n) layout: a cluster's column of S is a contiguous row, and D is symmetric
    st = _cluster_sums(d, lab[None], k)[0].T.contiguous()
    cnt = torch.bincount(lab, minlength=k).to(d.dtype)

    def rows(c: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """‖x_i − μ_c‖² for clusters c (μ_c with i in it, for i's own cluster), and n_c/(n_c+1) times that."""
        tot = torch.zeros(k, dtype=d.dtype).scatter_add_(0, lab, st[lab, ar])[c]  # Σ_{i,j∈c} D_ij
        m = cnt[c].clamp(min=1)[:, None]
        dc = st[c] / m - tot[:, None] / (2.0 * m * m)
        return dc, dc * (m / (m + 1.0))

    dist, add = rows(slice(None))
    add[lab, ar] = math.inf
    best_add, dest = add.min(0)
    for _ in range(max_rounds):
        own_n = cnt[lab]
        own_d = dist[lab, ar]
        remove = torch.where(own_n > 1, own_n / (own_n - 1).clamp(min=1) * own_d, torch.full_like(own_d, -math.inf))
        delta = best_add - remove
        cand = torch.nonzero(delta < -1e-12 * (1.0 + remove.abs())).flatten()
        if cand.numel() == 0:
            break
        order = cand[torch.argsort(delta[cand], stable=True)]
        used: set[int] = set()
        moved: list[int] = []
        for i, a, b in zip(order.tolist(), lab[order].tolist(), dest[order].tolist(), strict=True):
            if a not in used and b not in used:
                used.update((a, b))
                moved.append(i)
        mi = torch.tensor(moved)
        src, dst = lab[mi], dest[mi]
        dm = d.index_select(0, mi)  # (m, n): sources are distinct and so are destinations, so no update collides
        st.index_add_(0, src, dm, alpha=-1.0)
        st.index_add_(0, dst, dm)
        cnt[src] -= 1
        cnt[dst] += 1
        lab[mi] = dst
        touched = torch.cat([src, dst])
        dist[touched], add[touched] = rows(touched)
        add[lab, ar] = math.inf
        # only the touched clusters changed: they may now be the best destination; points whose best destination
        # was touched may have lost it and are rescanned in full
        stale = torch.nonzero(torch.isin(dest, touched)).flatten()
        t_best, t_arg = add[touched].min(0)
        better = t_best < best_add
        best_add = torch.where(better, t_best, best_add)
        dest = torch.where(better, touched[t_arg], dest)
        if stale.numel():
            best_add[stale], dest[stale] = add[:, stale].min(0)
    return lab


def kmeans(x: torch.Tensor, k: int, n_init: int = 10, seed: int = 0, max_iter: int = 100,
           init_labels: torch.Tensor | None = None, dists: torch.Tensor | None = None,
           refine: int = 4) -> KMeansResult:
    """Cluster the rows of x (n, ...) into k groups; best of n_init k-means++ restarts (+ init_labels if given).

    The `refine` best Lloyd results are refined by Hartigan moves; the answer is the best labelling of all, so it
    is never worse than Lloyd from init_labels. Deterministic for a given seed. `dists` lets
    a caller reuse a precomputed `pairwise_sq_dists(x)`.
    """
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if k == n:
        return KMeansResult(torch.arange(n), 0.0, 0)
    d = pairwise_sq_dists(x) if dists is None else dists
    if k == 1:
        lab = torch.zeros(n, dtype=torch.long)
        return KMeansResult(lab, float(inertia_from_labels(d, lab, 1)), 0)
    gen = torch.Generator().manual_seed(int(seed))
    n_init = max(n_init, 0 if init_labels is not None else 1)
    starts = _kmeanspp(d, k, n_init, gen) if n_init > 0 else torch.empty(0, n, dtype=torch.long)
    if init_labels is not None:
        starts = torch.cat([starts, init_labels.reshape(1, n).long()])
    # restarts run batched; chunk them so the (restarts, n, k) float64 work array stays under ~256 MB
    chunk = max(1, int(32e6 // (n * k)))
    outs = [lloyd(d, starts[i:i + chunk], k, max_iter) for i in range(0, starts.shape[0], chunk)]
    lab, it = torch.cat([o[0] for o in outs]), max(o[1] for o in outs)
    inert = torch.cat([inertia_from_labels(d, lab[i:i + chunk], k) for i in range(0, lab.shape[0], chunk)])
    if refine > 0:
        picks = torch.argsort(inert, stable=True)[:refine].tolist()
        lab = lab.clone()
        for p in picks:
            lab[p] = hartigan(d, lab[p], k)
        inert = inert.clone()
        inert[picks] = inertia_from_labels(d, lab[picks], k)
    best = int(inert.argmin())
    return KMeansResult(_canonical(lab[best]), float(inert[best]), it)


def _canonical(lab: torch.Tensor) -> torch.Tensor:
    """Relabel so clusters are numbered by their smallest member (stable, order-preserving output)."""
    n = lab.shape[0]
    first = torch.full((int(lab.max()) + 1,), n, dtype=torch.long).scatter_reduce_(
        0, lab, torch.arange(n), reduce="amin")
    order = torch.argsort(first)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    return rank[lab]
