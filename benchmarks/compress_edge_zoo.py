"""Compression of the edge test zoo: fold and mag1 at ratio 0.5 on every family's small size.

    .venv/bin/python benchmarks/compress_edge_zoo.py [--threads 1] [--models a,b] [--markdown]

Per model and method: wall-clock seconds of `compress(model, x, method, 0.5)` (the whole call), parameters and MACs
before and after (Torch-Pruning's count of the float model), and what the report says was left alone (notices).
Weights are the zoo's seeded random initialisation with BatchNorm statistics re-estimated on 128 digits images.
"""

from __future__ import annotations

import argparse
import time

import torch
from edgefold.compiler import data, zoo, zoo_edge
from edgefold.compiler.compress import compress


def calibrated(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model, shape = zoo.build(name), zoo.input_shape(name)
    calib = data.calibration_batch(shape, 128)
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model(calib)
    return model.eval(), calib[:1].contiguous()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", default=",".join(zoo_edge.EDGE))
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print("| model | params | MACs | fold s | fold params | fold MACs | mag1 s | mag1 params | mag1 MACs | notes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in args.models.split(","):
        model, x = calibrated(name)
        cells, notes = [], []
        for method in ("fold", "mag1"):
            t = time.perf_counter()
            _, rep = compress(model, x, method, 0.5)
            s = time.perf_counter() - t
            cells += [f"{s:.2f}", f"{rep.params_after:,} ({rep.param_ratio:.2f})",
                      f"{rep.macs_after:,} ({rep.mac_ratio:.2f})"]
            notes = [n.split(":")[0] for n in rep.notices]
        print(f"| {name} | {rep.params_before:,} | {rep.macs_before:,} | " + " | ".join(cells)
              + f" | {'; '.join(notes)} |", flush=True)


if __name__ == "__main__":
    main()
