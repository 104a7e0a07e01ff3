"""Which remedy raises int8 top-1 agreement with the float model: the training recipe, weight rounding, bias
correction, calibration. Each row is a real export (PT2E + LiteRT converter) run by LiteRT on the 360 held-out
digits; agreement = int8 top-1 equals the float model's top-1.

    .venv/bin/python benchmarks/int8_remedies.py [--models mobilenetv1_025,mobilenetv2] [--append]

Per model and training recipe ("default": compiler.train's TrainConfig(); "regularised": 30 epochs, AdamW weight
decay 0.05, random shifts of up to 2 pixels), the same trained float model is exported with:
- nearest: the exporter as shipped (min/max ranges on 128 calibration images, nearest per-channel rounding);
- bias correction: each Conv/Linear bias minus the mean output shift of its int8 rounding (int8_rounding.py);
- gptq / gptq + bias correction: weights rounded one input column at a time against the calibration inputs'
  second moment (int8_rounding.py);
- histogram: histogram activation observer instead of min/max;
- 256 calibration images instead of 128.
"""

from __future__ import annotations

import argparse
import time

import torch
from edgefold.compiler import data, zoo
from edgefold.compiler.check.fidelity import compare, held_out, tflite_outputs, torch_outputs
from edgefold.compiler.export.tflite import convert_int8
from edgefold.compiler.train import TrainConfig, train
from rich.console import Console

import results_table
from int8_rounding import round_weights

console = Console(highlight=False)
RECIPES = {"default": TrainConfig(), "regularised": TrainConfig(epochs=30, weight_decay=0.05, augment=True)}
REMEDIES = ["nearest", "bias correction", "gptq", "gptq + bias correction", "histogram", "256 calibration images"]
COLUMNS = ["model", "recipe", "float acc %", "remedy", "int8 acc %", "agreement %", "flips of 360"]


def export(model: torch.nn.Module, shape: tuple[int, ...], remedy: str) -> bytes:
    calib = data.calibration_batch(shape, 256 if remedy == "256 calibration images" else 128)
    observer = "histogram" if remedy == "histogram" else "minmax"
    if remedy in ("bias correction", "gptq", "gptq + bias correction"):
        model = round_weights(model, calib, "gptq" if remedy.startswith("gptq") else "nearest",
                              bias_correction=remedy.endswith("bias correction"))
    return convert_int8(model, calib[:1], calib, observer)


def rows_for(name: str, recipe: str) -> list[list[str]]:
    shape = zoo.input_shape(name)
    model = zoo.build(name)
    acc = train(model, shape, RECIPES[recipe])
    model.eval()
    test = held_out(shape)
    ref = torch_outputs(model, test.x)
    out = []
    for remedy in REMEDIES:
        t = time.perf_counter()
        res = compare("tflite-int8", "ai-edge-litert", ref, tflite_outputs(export(model, shape, remedy), test.x),
                      test.y.numpy())
        flips = round((100 - res.agreement) * len(test) / 100)
        out.append([name, recipe, f"{acc:.2f}", remedy, f"{res.accuracy:.2f}", f"{res.agreement:.2f}", str(flips)])
        console.print(" | ".join(out[-1]) + f"  ({time.perf_counter() - t:.0f} s)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="mobilenetv1_025,mobilenetv2", help="comma-separated zoo names")
    ap.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated: {', '.join(RECIPES)}")
    ap.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = ap.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    bad = [n for n in names if n not in zoo.names()] + [r for r in recipes if r not in RECIPES]
    if bad:
        console.print(f"error: unknown model or recipe: {', '.join(bad)}")
        return 2
    torch.set_num_threads(2)
    rows = [r for name in names for recipe in recipes for r in rows_for(name, recipe)]
    results_table.show(console, "int8 agreement by remedy (LiteRT, 360 held-out digits)", COLUMNS, rows)
    if args.append:
        results_table.append("int8_remedies.py", COLUMNS, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
