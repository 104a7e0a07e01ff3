"""Fold vs mag1 vs mag2 at an equal budget, same allocator, same recovery, paired over training seeds.

    nice -n 19 .venv/bin/python benchmarks/fold_vs_prune_recovery.py --weights 'runs/resnet8_s{seed}.pt' \
        --seeds 0,1,2,3,4 [--budget 0.5] [--epochs 10]

For every seed's resnet8 checkpoint and every method: the budget is `--budget` × the uncompressed model's predicted
instructions on the Nano 33 BLE twin (compiler/fit, the twin's cost model); per-group sensitivity is measured with
that method and ratios are allocated by the same greedy allocator; BatchNorm REPAIR on 128 digits training images;
then the same distillation recovery (compiler/recover, seed 0) for `--epochs` epochs on the digits training split.
Accuracy on the digits test split (360 images) is recorded before recovery, after every epoch, and at the
best held-out epoch (what recovery returns). "Epochs to base − 1 pt": the first epoch whose test accuracy reaches the
uncompressed model's minus one point (None if never). Writes benchmarks/results/fold_vs_prune_recovery.{json,png}
and prints a markdown table of paired differences.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from edgefold.compiler import data
from edgefold.compiler.checkpoint import load_model
from edgefold.compiler.compress import compress
from edgefold.compiler.fit import Budget, fit, plan_fit
from edgefold.compiler.recover import RecoverConfig, recover
from edgefold.targets.qemu import twin_costs
from rich.console import Console

console = Console()
RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("fold", "mag1", "mag2")


def run_one(path: str, method: str, budget_frac: float, epochs: int) -> dict:
    lm = load_model(path)
    model, shape = lm.model.eval(), tuple(lm.spec.input_shape)
    x = torch.zeros((1, *shape[1:]))
    tr, te = data.load(shape, "train"), data.load(shape, "test")
    costs = twin_costs()
    before = plan_fit(model, x, Budget(flash=983_040), costs).before
    budget = Budget(instructions=budget_frac * before.instructions, flash=983_040, ram=256 * 1024)
    t0 = time.perf_counter()
    plan = plan_fit(model, x, budget, costs)
    res = fit(plan, tr.x[:512], method, "repair", seed=0)
    t_fit = time.perf_counter() - t0
    student, rep = compress(model, x, method, 0.0, "repair", calib_data=data.calibration_batch(shape),
                            ratios=res.ratios)
    base = data.accuracy(model, te)
    acc0 = data.accuracy(student, te)
    t0 = time.perf_counter()
    r = recover(student, model, tr.x, RecoverConfig(epochs=epochs, seed=0), labels=tr.y, eval_x=te.x, eval_y=te.y)
    curve = [h["eval_accuracy"] for h in r.history]
    reach = next((h["epoch"] for h in r.history if h["eval_accuracy"] >= base - 1.0), None)
    return {"weights": path, "method": method, "base": base, "before_recovery": acc0,
            "after_recovery": data.accuracy(student, te), "best_epoch": r.best_epoch, "curve": curve,
            "epochs_to_base_minus_1": reach, "ratios": res.ratios, "predicted_instructions": res.predicted.instructions,
            "budget_instructions": budget.instructions, "macs_after": rep.macs_after, "params_after": rep.params_after,
            "fit_seconds": round(t_fit, 1), "recover_seconds": round(time.perf_counter() - t0, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="runs/resnet8_s{seed}.pt")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--budget", type=float, default=0.5, help="fraction of the uncompressed predicted instructions")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", default=str(RESULTS / "fold_vs_prune_recovery.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    out = Path(args.out)
    if out.is_file():
        rows = json.loads(out.read_text())["runs"]  # resume
    done = {(r["weights"], r["method"]) for r in rows}
    t_start = time.time()
    for seed in [int(s) for s in args.seeds.split(",")]:
        path = args.weights.format(seed=seed)
        for m in METHODS:
            if (path, m) in done:
                continue
            row = run_one(path, m, args.budget, args.epochs)
            rows.append(row)
            console.print(f"{path} {m}: base {row['base']:.2f} before {row['before_recovery']:.2f} "
                          f"after {row['after_recovery']:.2f} reach {row['epochs_to_base_minus_1']} "
                          f"({row['fit_seconds']} + {row['recover_seconds']} s, load {os.getloadavg()[0]:.1f})")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps({"budget": args.budget, "epochs": args.epochs, "runs": rows}, indent=1))
    report(rows, args, time.time() - t_start)
    return 0


def report(rows: list[dict], args, secs: float) -> None:
    by = {(r["weights"], r["method"]): r for r in rows}
    seeds = sorted({r["weights"] for r in rows})
    lines = ["| method | before recovery | after recovery | epochs to base − 1 pt (reached/seeds) | "
             "paired Δ vs fold after recovery |", "|---|---|---|---|---|"]
    for m in METHODS:
        rs = [by[(s, m)] for s in seeds if (s, m) in by]
        if not rs:
            continue
        b = [r["before_recovery"] for r in rs]
        a = [r["after_recovery"] for r in rs]
        reach = [r["epochs_to_base_minus_1"] for r in rs if r["epochs_to_base_minus_1"] is not None]
        d = [by[(s, m)]["after_recovery"] - by[(s, "fold")]["after_recovery"] for s in seeds
             if (s, m) in by and (s, "fold") in by]
        sd = statistics.stdev if len(a) > 1 else (lambda v: 0.0)
        lines.append(f"| {m} | {statistics.mean(b):.1f} ± {sd(b):.1f} | {statistics.mean(a):.1f} ± {sd(a):.1f} | "
                     f"{statistics.mean(reach):.1f} ({len(reach)}/{len(rs)}) | "
                     + (f"{statistics.mean(d):+.2f} ± {sd(d) if len(d) > 1 else 0:.2f}" if m != "fold" else "—")
                     + " |")
    base = statistics.mean(by[(s, "fold")]["base"] for s in seeds if (s, "fold") in by)
    console.print("\n".join(lines))
    console.print(f"uncompressed {base:.2f} %; {len(seeds)} seeds; {secs / 60:.1f} min; "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 4))
        for m, color in zip(METHODS, ("C0", "C1", "C2"), strict=True):
            curves = [by[(s, m)]["curve"] for s in seeds if (s, m) in by]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            mean = [statistics.mean(c[i] for c in curves) for i in range(n)]
            for c in curves:
                ax.plot(range(len(c)), c, color=color, alpha=0.2, lw=0.8)
            ax.plot(range(n), mean, color=color, lw=2, label=m)
        ax.axhline(base - 1.0, color="k", ls="--", lw=0.8, label="uncompressed − 1 pt")
        ax.set_xlabel("recovery epoch (0 = after compression + REPAIR)")
        ax.set_ylabel("digits test accuracy (%)")
        ax.set_title(f"resnet8 at {args.budget:.0%} of its instructions: fold vs prune, {len(seeds)} seeds")
        ax.legend()
        fig.tight_layout()
        fig.savefig(RESULTS / "fold_vs_prune_recovery.png", dpi=120)
    except ImportError:
        pass


if __name__ == "__main__":
    raise SystemExit(main())
