"""Accuracy after compression on digits: FOLD vs MAG1 vs MAG2, each with every BatchNorm repair.

    .venv/bin/python benchmarks/fold_accuracy.py [--weights runs/resnet8.pt] [--seeds 1] [--ratios 0.3,0.5,0.7]
                                                 [--repairs none,repair,ar,dir] [--append]

resnet8 is trained with edgefold's `train` and its default TrainConfig (one checkpoint per training seed, or the
given --weights), then compressed with `compress(model, x, method, ratio, repair)`; accuracy is top-1 on the fixed
digits test split (360 images). REPAIR uses 128 training images (data.calibration_batch); AR and DIR see no data.
Cells are the mean over training seeds (± the standard deviation when there are several).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from edgefold.compiler import data, zoo
from edgefold.compiler.checkpoint import load_model
from edgefold.compiler.compress import compress
from edgefold.compiler.train import TrainConfig, train
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

console = Console()
HEADING = "## Fold vs prune accuracy (resnet8, digits)"


def cell(vals: list[float]) -> str:
    if len(vals) == 1:
        return f"{vals[0]:.1f}"
    return f"{statistics.mean(vals):.1f} ± {statistics.stdev(vals):.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet8")
    ap.add_argument("--weights", help="use this checkpoint instead of training (one seed)")
    ap.add_argument("--seeds", type=int, default=1, help="training seeds 0..N-1 (default 1)")
    ap.add_argument("--ratios", default="0.3,0.5,0.7")
    ap.add_argument("--methods", default="fold,mag1,mag2")
    ap.add_argument("--repairs", default="none,repair,ar,dir")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on a busy host)")
    ap.add_argument("--append", action="store_true", help=f"append the table to benchmarks/RESULTS.md ({HEADING})")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ratios = [float(r) for r in args.ratios.split(",")]
    methods, repairs = args.methods.split(","), args.repairs.split(",")
    shape = zoo.input_shape(args.model)
    test = data.load(shape, "test")
    calib = data.calibration_batch(shape)
    example = torch.zeros(shape)

    acc: dict[tuple[float, str, str], list[float]] = {}
    secs: dict[str, list[float]] = {r: [] for r in repairs}
    base: list[float] = []
    seeds = [0] if args.weights else list(range(args.seeds))
    t_all = time.perf_counter()
    with Progress(console=console, transient=True) as prog:
        task = prog.add_task("", total=len(seeds) * len(ratios) * len(methods) * len(repairs))
        for seed in seeds:
            if args.weights:
                model = load_model(args.weights).model
            else:
                prog.update(task, description=f"training {args.model} (seed {seed})")
                model = zoo.build(args.model)
                train(model, shape, TrainConfig(seed=seed))
            model.eval()
            base.append(data.accuracy(model, test))
            for ratio in ratios:
                for method in methods:
                    for repair in repairs:
                        prog.update(task, description=f"seed {seed}: {method} r={ratio} {repair}")
                        c, rep = compress(model, example, method, ratio, repair,
                                          calib_data=calib if repair == "repair" else None)
                        acc.setdefault((ratio, method, repair), []).append(data.accuracy(c, test))
                        secs[repair].append(rep.timings.get("repair", 0.0))
                        prog.advance(task)
    wall = time.perf_counter() - t_all

    t = Table(title=f"{args.model} on digits: top-1 % after compression (uncompressed {cell(base)})")
    t.add_column("method")
    t.add_column("repair")
    for r in ratios:
        t.add_column(f"r={r}", justify="right")
    rows = []
    for method in methods:
        for repair in repairs:
            row = [method.upper(), repair]
            row += [cell(acc[(r, method, repair)]) for r in ratios]
            rows.append(row)
            t.add_row(*row)
    console.print(t)
    timing = ", ".join(f"{r} {statistics.median(v):.2f} s" for r, v in secs.items() if r != "none")
    console.print(f"median repair time per model: {timing}; total {wall:.0f} s")

    if args.append:
        cmd = "  ".join(sys.argv[1:])
        lines = [
            "", HEADING, "",
            f"Command: `.venv/bin/python benchmarks/fold_accuracy.py {cmd}`".replace("  ", " "),
            "",
            f"resnet8 trained with `edgefold train` defaults (TrainConfig: 8 epochs AdamW, OneCycle), "
            f"{'given checkpoint' if args.weights else f'{len(seeds)} training seed(s)'}; uncompressed "
            f"{cell(base)} %. Top-1 % on the digits test split (360 images). Ratio r = fraction of channels removed "
            "from every coupled group. REPAIR: BN stats re-estimated on 128 training images; AR: data-free "
            "variance correction; DIR: 32 deep-inversion images (100 Adam steps) then REPAIR on them. "
            f"Median repair time per model (1 thread, busy 2-core host): {timing}.",
            "",
            "| method | repair | " + " | ".join(f"r={r}" for r in ratios) + " |",
            "|---|---|" + "---|" * len(ratios),
            *("| " + " | ".join(r) + " |" for r in rows),
            "",
        ]
        path = Path(__file__).resolve().parent / "RESULTS.md"
        with path.open("a") as f:
            f.write("\n".join(lines))
        console.print(f"appended to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
