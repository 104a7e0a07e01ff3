"""k-means objective of FOLD against sequential Hartigan k-means on the same ResNet-18 group feature matrices.

    .venv/bin/python benchmarks/kmeans_quality.py --weights runs/resnet18.pt [--ratio 0.5] [--runs 3]

The reference is the algorithm the ICLR'25 ModelFolding code runs (Hartigan k-means, 10 k-means++ starts, each
refined by sequential single-point moves until a full pass moves nothing), written here from the algorithm
(Hartigan & Wong 1979; Telgarsky & Vattani 2010): point i leaves cluster a for b when
n_b/(n_b+1)·‖x_i−μ_b‖² < n_a/(n_a−1)·‖x_i−μ_a‖², the means updated after every move. It runs on an exact isometric
embedding of each group's rows (n×n: the same pairwise distances, hence the same k-means problem). Both labellings
are scored on the raw features: Σ_groups ‖W − W_fold‖²_F. Also prints the CPU seconds of the whole
`compress(..., method="fold")` call (1 thread), the budget being ≤ 2 s for ResNet-18 at r = 0.5.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

import numpy as np
import torch
from edgefold.compiler import zoo
from edgefold.compiler.compress import compress, fold, graph
from rich.console import Console
from rich.progress import track
from rich.table import Table

console = Console()


def embedding(w: torch.Tensor) -> np.ndarray:
    """Rows with the same pairwise distances as w's (float64, rank ≤ n)."""
    x = w.double()
    x = x - x.mean(0, keepdim=True)
    evals, evecs = torch.linalg.eigh(x @ x.T)
    keep = evals > evals.max() * 1e-12
    return (evecs[:, keep] * evals[keep].sqrt()).numpy()


def kmeanspp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = len(x)
    centers = [int(rng.integers(n))]
    d2 = ((x - x[centers[0]]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        c = int(rng.choice(n, p=p))
        centers.append(c)
        d2 = np.minimum(d2, ((x - x[c]) ** 2).sum(1))
    cd = ((x[:, None, :] - x[centers][None]) ** 2).sum(2)
    return cd.argmin(1)


def sequential_hartigan(x: np.ndarray, labels: np.ndarray, k: int, max_pass: int = 100) -> np.ndarray:
    lab = labels.copy()
    cnt = np.bincount(lab, minlength=k).astype(np.float64)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, lab, x)
    for _ in range(max_pass):
        moved = 0
        for i in range(len(x)):
            a = lab[i]
            if cnt[a] <= 1:
                continue
            mu = sums / np.maximum(cnt, 1)[:, None]
            d2 = ((mu - x[i]) ** 2).sum(1)
            gain_rm = cnt[a] / (cnt[a] - 1) * d2[a]
            add = cnt / (cnt + 1) * d2
            add[a] = np.inf
            b = int(add.argmin())
            if add[b] < gain_rm * (1 - 1e-12):
                sums[a] -= x[i]
                sums[b] += x[i]
                cnt[a] -= 1
                cnt[b] += 1
                lab[i] = b
                moved += 1
        if moved == 0:
            break
    return lab


def objective(x: np.ndarray, lab: np.ndarray, k: int) -> float:
    cnt = np.bincount(lab, minlength=k).astype(np.float64)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, lab, x)
    return float((x**2).sum() - ((sums**2).sum(1) / np.maximum(cnt, 1)).sum())


def reference(w: torch.Tensor, k: int, n_init: int = 10, seed: int = 0) -> torch.Tensor:
    x = embedding(w)
    rng = np.random.default_rng(seed)
    best, best_obj = None, np.inf
    for _ in range(n_init):
        lab = sequential_hartigan(x, kmeanspp(x, k, rng), k)
        obj = objective(x, lab, k)
        if obj < best_obj:
            best, best_obj = lab, obj
    return torch.as_tensor(best, dtype=torch.long)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--weights", help="edgefold checkpoint / state_dict for --model (default: seeded init)")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=3, help="timed compress() calls (median CPU seconds)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = zoo.build(args.model).eval()
    if args.weights:
        from edgefold.compiler.checkpoint import ModelSpec, load_model

        model = load_model(args.weights, ModelSpec(name=args.model)).model.eval()
    x = torch.randn(zoo.input_shape(args.model), generator=torch.Generator().manual_seed(0))
    compress(model, x, "fold", args.ratio)  # warm-up
    cpus, walls, rep = [], [], None
    for _ in range(args.runs):
        t, c = time.perf_counter(), time.process_time()
        _, rep = compress(model, x, "fold", args.ratio)
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    groups = graph.find_groups(copy.deepcopy(model), x).groups
    t = Table(title=f"{args.model} r={args.ratio}: Σ‖W − W_fold‖²_F per group")
    for col in ("group", "n→k", "d", "edgefold", "Hartigan ref", "ratio", "ref s"):
        t.add_column(col)
    ours_sum = ref_sum = ref_secs = 0.0
    for g, rec in track(list(zip(groups, rep.groups, strict=True)), description="reference Hartigan",
                        console=console):
        if rec.k == rec.n:
            continue
        w = graph.features(g)
        t0 = time.perf_counter()
        ref = fold.fold_error(w, reference(w, rec.k)) ** 2
        secs = time.perf_counter() - t0
        ref_secs += secs
        ours = rec.fold_error**2
        ours_sum += ours
        ref_sum += ref
        t.add_row(rec.name, f"{rec.n}→{rec.k}", str(w.shape[1]), f"{ours:.2f}", f"{ref:.2f}",
                  f"{ours / ref:.4f}" if ref > 0 else "-", f"{secs:.1f}")
    console.print(t)
    load = os.getloadavg()[0]
    console.print(f"objective: edgefold {ours_sum:.2f} vs Hartigan reference {ref_sum:.2f} "
                  f"(ratio {ours_sum / ref_sum:.4f}); reference k-means alone {ref_secs:.1f} s")
    console.print(f"compress(fold) CPU s: median {statistics.median(cpus):.3f} (wall {statistics.median(walls):.3f}), "
                  f"{args.runs} runs, 1 thread, load average {load:.1f} on {os.cpu_count()} cores; "
                  f"stages {rep.timings}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
