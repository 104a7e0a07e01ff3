"""Speed and k-means quality of FOLD on ResNet-18 (11.2 M params, 1×3×32×32) at ratio 0.5.

    .venv/bin/python benchmarks/compress_speed.py [--runs 5] [--threads 1] [--no-sklearn] [--append]

Prints the median wall-clock and CPU seconds of `compress(..., method="fold")` (the whole call: copy, op counting,
dependency graph, features, k-means, merge, physical pruning) and of mag1, then compares the k-means objective
(Σ_groups ‖W − W_fold‖²_F on the real group feature matrices) against scikit-learn KMeans(n_init=10) on the same
groups. scikit-learn is given an exact isometric embedding of each group's rows (n×n from the eigendecomposition
of the centred Gram matrix: identical pairwise distances, hence the same k-means problem) because running it on
the raw n×18 000 features takes minutes per group; its labels are scored on the raw features like ours.
Weights are the zoo's seeded random initialisation (no training needed to time the algorithm).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from edgefold.compiler import zoo
from edgefold.compiler.compress import compress, fold, graph
from rich.console import Console
from rich.progress import track
from rich.table import Table

console = Console()


def timed(fn, runs: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return walls, cpus


def embedding(w: torch.Tensor) -> torch.Tensor:
    """Rows with the same pairwise distances as w's (float64, rank ≤ n): the same k-means problem."""
    x = w.double()
    x = x - x.mean(0, keepdim=True)
    evals, evecs = torch.linalg.eigh(x @ x.T)
    keep = evals > evals.max() * 1e-12
    return evecs[:, keep] * evals[keep].sqrt()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--weights", help="optional state_dict / edgefold checkpoint for --model (default: seeded init)")
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: see docs/compress.md)")
    ap.add_argument("--no-sklearn", action="store_true", help="skip the scikit-learn objective comparison")
    ap.add_argument("--append", action="store_true", help="append the figures to benchmarks/RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model = zoo.build(args.model).eval()
    if args.weights:
        from edgefold.compiler.checkpoint import ModelSpec, load_model

        model = load_model(args.weights, ModelSpec(name=args.model)).model.eval()
    x = torch.randn(zoo.input_shape(args.model), generator=torch.Generator().manual_seed(0))
    compress(model, x, "fold", args.ratio)  # warm-up (first-call allocations, lazy imports)
    res: dict = {}

    def run_fold():
        res["fold"] = compress(model, x, "fold", args.ratio)

    fw, fc = timed(run_fold, args.runs)
    mw, mc = timed(lambda: compress(model, x, "mag1", args.ratio), args.runs)
    _, rep = res["fold"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    t = Table(title=f"compress {args.model} ratio {args.ratio} ({args.runs} runs, {args.threads} thread(s), "
                    f"{os.cpu_count()} cores, load avg {load:.1f})")
    for col in ("method", "median wall s", "median CPU s", "min wall s", "params", "MACs"):
        t.add_column(col)
    t.add_row("fold", f"{statistics.median(fw):.3f}", f"{statistics.median(fc):.3f}", f"{min(fw):.3f}",
              f"{rep.params_before / 1e6:.2f}M → {rep.params_after / 1e6:.2f}M",
              f"{rep.macs_before / 1e6:.0f}M → {rep.macs_after / 1e6:.0f}M")
    t.add_row("mag1", f"{statistics.median(mw):.3f}", f"{statistics.median(mc):.3f}", f"{min(mw):.3f}", "", "")
    console.print(t)
    console.print("fold stage seconds (last run):", rep.timings)

    lines = [f"- fold: median {statistics.median(fw):.3f} s wall, {statistics.median(fc):.3f} s CPU "
             f"(min {min(fw):.3f} s); mag1: median {statistics.median(mw):.3f} s wall, "
             f"{statistics.median(mc):.3f} s CPU; params {rep.params_before / 1e6:.2f}M → "
             f"{rep.params_after / 1e6:.2f}M, MACs {rep.macs_before / 1e6:.0f}M → {rep.macs_after / 1e6:.0f}M; "
             f"{args.runs} runs, {args.threads} thread(s), load average {load:.1f} on {os.cpu_count()} cores"]

    if not args.no_sklearn:
        from sklearn.cluster import KMeans

        work = __import__("copy").deepcopy(model)
        groups = graph.find_groups(work, x).groups
        qt = Table(title="k-means objective ‖W − W_fold‖²_F per group: ours vs scikit-learn KMeans(n_init=10)")
        for col in ("group", "n→k", "d", "ours", "sklearn", "ours/sklearn", "sklearn s"):
            qt.add_column(col)
        ours_sum = sk_sum = 0.0
        worst = 0.0
        sk_secs = 0.0
        for g, rec in track(list(zip(groups, rep.groups, strict=True)), description="scikit-learn k-means",
                            console=console):
            assert g.name == rec.name and g.n == rec.n
            if rec.k == rec.n:
                continue
            w = graph.features(g)
            t0 = time.perf_counter()
            km = KMeans(n_clusters=rec.k, n_init=10, random_state=0).fit(embedding(w).numpy())
            sk_secs += time.perf_counter() - t0
            sk = fold.fold_error(w, torch.as_tensor(km.labels_, dtype=torch.long)) ** 2
            ours = rec.fold_error**2
            ours_sum += ours
            sk_sum += sk
            worst = max(worst, ours / sk if sk > 0 else 1.0)
            qt.add_row(rec.name, f"{rec.n}→{rec.k}", str(w.shape[1]), f"{ours:.2f}", f"{sk:.2f}",
                       f"{ours / sk:.4f}" if sk > 0 else "-", f"{time.perf_counter() - t0:.1f}")
        console.print(qt)
        console.print(f"sum over groups: ours {ours_sum:.2f}, sklearn {sk_sum:.2f}, ratio {ours_sum / sk_sum:.4f}; "
                      f"worst group ratio {worst:.4f}; sklearn k-means alone took {sk_secs:.1f} s")
        lines.append(f"- k-means objective Σ‖W − W_fold‖²_F over {len(rep.groups)} groups: ours {ours_sum:.2f} vs "
                     f"scikit-learn KMeans(n_init=10) {sk_sum:.2f} (ratio {ours_sum / sk_sum:.4f}, worst group "
                     f"{worst:.4f}); scikit-learn's k-means alone: {sk_secs:.1f} s")

    if args.append:
        path = Path(__file__).resolve().parent / "RESULTS.md"
        cmd = "python " + " ".join(["benchmarks/compress_speed.py", *sys.argv[1:]])
        weights = f"weights {args.weights}" if args.weights else "seeded random weights"
        head = "" if path.exists() and "## Compression speed" in path.read_text() else "\n## Compression speed\n"
        text = (f"{head}\n`{cmd}` ({time.strftime('%Y-%m-%d %H:%M')}, {args.model}, ratio "
                f"{args.ratio}, {weights})\n\n" + "\n".join(lines) + "\n")
        with open(path, "a", encoding="utf-8") as f:  # append-only: other sections belong to other benchmarks
            f.write(text)
        console.print(f"appended to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
