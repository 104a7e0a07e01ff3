"""Recovery recipe ablation on resnet8 at 50 % of its instructions: float accuracy on the digits test split, no export.

    nice -n 19 .venv/bin/python benchmarks/recover_recipe.py --weights runs/resnet8.pt --max-ratio 0.95 \
        --cfg '{"label_weight": 0}'                       # the recipe before issue #12's recovery work
    nice -n 19 .venv/bin/python benchmarks/recover_recipe.py --weights runs/resnet8.pt   # today's defaults

Fits resnet8 under 50 % x 0.97 of its counted instructions on the twin (25,917,080; the margin fitting.py keeps),
per-group ratios by compiler/fit (cap `--max-ratio`), fold + REPAIR on the 128-image calibration batch, then
compiler/recover with RecoverConfig(epochs=12, seed=0, **cfg) on the digits training split with its labels. Prints
one JSON line (test accuracy per epoch, the selected epoch, recovery CPU seconds) and appends it to
benchmarks/results/recover_recipe.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from edgefold.compiler import data
from edgefold.compiler.checkpoint import load_model
from edgefold.compiler.compress import compress, single_thread
from edgefold.compiler.fit import Budget, fit, plan_fit
from edgefold.compiler.fit.allocate import SPREAD_RATIO
from edgefold.compiler.recover import RecoverConfig, recover
from edgefold.targets.qemu import twin_costs

RESULTS = Path(__file__).resolve().parent / "results"
RESNET8_INSTRUCTIONS = 25_917_080  # counted on the twin (benchmarks/RESULTS.md)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="runs/resnet8.pt")
    ap.add_argument("--max-ratio", type=float, default=SPREAD_RATIO)
    ap.add_argument("--cfg", default="{}", help="JSON overrides of RecoverConfig")
    ap.add_argument("--epochs", type=int, default=12)
    args = ap.parse_args()
    c0, t0 = time.process_time(), time.perf_counter()
    lm = load_model(args.weights)
    model, shape = lm.model.eval(), tuple(lm.spec.input_shape)
    ex = torch.zeros((1, *shape[1:]))
    tr, te = data.load(shape, "train"), data.load(shape, "test")
    plan = plan_fit(model, ex, Budget(instructions=0.5 * RESNET8_INSTRUCTIONS * 0.97), twin_costs())
    ratios = fit(plan, tr.x, "fold", "repair", seed=0, max_ratio=args.max_ratio).ratios
    with single_thread():
        student, rep = compress(model, ex, "fold", 0.0, "repair", calib_data=data.calibration_batch(shape, 128),
                                seed=0, ratios=ratios)
    acc0 = data.accuracy(student, te)
    c1 = time.process_time()
    cfg = RecoverConfig(**{"epochs": args.epochs, "seed": 0, **json.loads(args.cfg)})
    r = recover(student, model, tr.x, cfg, labels=tr.y, eval_x=te.x, eval_y=te.y, groups=rep.groups)
    c2 = time.process_time()
    row = {"weights": args.weights, "max_ratio": args.max_ratio, "cfg": json.loads(args.cfg),
           "ratios": {k: round(v, 3) for k, v in ratios.items()}, "base": data.accuracy(model, te),
           "after_compress": acc0, "recovered": data.accuracy(student, te), "best_epoch": r.best_epoch,
           "curve": [h.get("eval_accuracy") for h in r.history], "recover_cpu_s": round(c2 - c1, 1),
           "total_cpu_s": round(c2 - c0, 1), "wall_s": round(time.perf_counter() - t0, 1),
           "load": round(os.getloadavg()[0], 1), "date": time.strftime("%Y-%m-%d %H:%M")}
    print(json.dumps(row), flush=True)
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / "recover_recipe.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
