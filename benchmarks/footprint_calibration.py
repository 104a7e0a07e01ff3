"""The fit's footprint model against the Nano 33 BLE twin: predicted vs linked Flash / static RAM, and predicted vs
counted instructions, on zoo models at uniform ratios.

    nice -n 19 .venv/bin/python benchmarks/footprint_calibration.py [--models resnet8,dscnn,mobilenetv1_025]
                                                                    [--ratios 0,0.5]

Each case: fold at the ratio (seeded random weights: sizes and counts do not depend on the values), export int8
(64 digits calibration images), edgefold codegen, link for the nRF52840 map (arm-none-eabi-gcc), run under QEMU
(-icount shift=0). The prediction is FootprintModel.predict with the twin's cost model (targets/qemu.twin_costs),
made from the torch model before any export. The constants in twin_costs were fitted on these same cases
(instructions: least squares), so the instruction column shows the fit, not a held-out test.

--refit prints the non-negative least-squares instruction coefficients for these cases (MACs of conv / fc, outputs of
conv / fc / depthwise, im2col patch values, a constant per inference), the values twin_costs should carry after the
runtime changes, and each case's prediction with them.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from edgefold.compiler import data, zoo
from edgefold.compiler.codegen import generate
from edgefold.compiler.compress import compress, graph, keep_count
from edgefold.compiler.export.tflite import export_tflite_int8
from edgefold.compiler.fit import FootprintModel
from edgefold.compiler.fit.footprint import Costs
from edgefold.targets import qemu
from rich.console import Console
from rich.table import Table

console = Console()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet8,dscnn,mobilenetv1_025")
    ap.add_argument("--ratios", default="0,0.5")
    ap.add_argument("--refit", action="store_true", help="fit the instruction coefficients to these cases")
    args = ap.parse_args()
    torch.set_num_threads(1)
    costs = qemu.twin_costs()
    t = Table(title="footprint model vs the nano33ble-qemu twin (prediction made before export)")
    for col in ("model", "ratio", "Flash pred", "Flash linked", "Δ", "RAM pred", "RAM linked", "Δ", "insns pred",
                "insns counted", "Δ"):
        t.add_column(col, justify="right")
    target = qemu.NanoQemuTarget()
    units = _unit_costs(costs)
    rows: list[list[float]] = []
    counted: list[float] = []
    cases: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            model = zoo.build(name).eval()
            shape = zoo.input_shape(name)
            x = torch.zeros(shape)
            groups = graph.find_groups(copy.deepcopy(model), x).groups
            fm = FootprintModel.trace(model, x, groups)
            for r in (float(v) for v in args.ratios.split(",")):
                keep = [keep_count(g.n, r) for g in groups]
                pred = fm.predict(keep, costs)
                rows.append([fm.predict(keep, unit).instructions for unit in units])
                m = compress(model, x, "fold", r, "none")[0] if r else model
                bi = Path(tmp) / f"{name}-{r}"
                bi.mkdir()
                blob = export_tflite_int8(m, x, data.calibration_batch(shape, 64))
                (bi / "model_int8.tflite").write_bytes(blob)
                generate(blob, bi / "codegen")
                b = target.build(bi, bi / "build", "edgefold", runs=1, warmup=0)
                n = target.run_benchmark(b, target.flash(b), 300).median
                counted.append(n)
                t.add_row(name, f"{r:g}", f"{pred.flash:,}", f"{b.flash:,}",
                          f"{(pred.flash / b.flash - 1) * 100:+.2f}%",
                          f"{pred.static_ram:,}", f"{b.static_ram:,}",
                          f"{(pred.static_ram / b.static_ram - 1) * 100:+.2f}%", f"{pred.instructions:,.0f}",
                          f"{n:,.0f}", f"{(pred.instructions / n - 1) * 100:+.1f}%")
                cases.append((f"{name} r={r:g}", n))
    console.print(t)
    console.print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.refit:
        from scipy.optimize import nnls

        a, y = np.asarray(rows), np.asarray(counted)
        coef, _ = nnls(a, y)
        names = ["insn_per_mac conv/fc", "insn_per_output", "insn_per_patch", "insn_base"]
        console.print("refit: " + ", ".join(f"{k} = {v:.4g}" for k, v in zip(names, coef, strict=True)))
        for (name_r, n), fit_n in zip(cases, a @ coef, strict=True):
            console.print(f"  {name_r}: counted {n:,.0f}, refit {fit_n:,.0f} ({(fit_n / n - 1) * 100:+.1f}%)")
    return 0


def _unit_costs(costs: Costs) -> list[Costs]:
    """One cost model per fitted coefficient, that coefficient 1 and the other instruction terms 0: predicting with
    each gives the case's feature (MACs, outputs, patch values, 1)."""
    zero = replace(costs, insn_per_mac={"conv": 0.0, "fc": 0.0, "dwconv": 0.0}, insn_per_output=0.0,
                   insn_per_patch=0.0, insn_per_element=0.0, insn_per_step=0.0, insn_base=0.0)
    return [replace(zero, insn_per_mac={"conv": 1.0, "fc": 1.0, "dwconv": 0.0}), replace(zero, insn_per_output=1.0),
            replace(zero, insn_per_patch=1.0), replace(zero, insn_base=1.0)]


if __name__ == "__main__":
    raise SystemExit(main())
