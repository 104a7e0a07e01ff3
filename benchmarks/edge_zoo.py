"""One row per edge test-zoo model (compiler/zoo_edge.py, small sizes): compress, int8 export, codegen.

    .venv/bin/python benchmarks/edge_zoo.py [--models a,b] [--epochs 2] [--weight-decay W] [--augment] [--append]
    .venv/bin/python benchmarks/edge_zoo.py --export-only [--models a,b]   # int8 conversion time and gate only

Per model: a short training on the digits (--epochs), then
- compress fold and mag1 at ratio 0.5: seconds, parameters and MACs after (of the trained model);
- TFLite int8 export of the trained float model: seconds, full integer or not (the gate names the layer), top-1
  agreement with float PyTorch on the 360 held-out digits (LiteRT);
- codegen for the edgefold runtime: bit-exact against the TFLM host interpreter on 20 held-out inputs, arena and
  weight bytes;
- one inference on the nano33ble-qemu twin (benchmarks/edge_zoo_runtime.py's runtime_columns): instructions,
  instructions per MAC, Flash of the linked image, output bytes equal to TFLM's (--no-twin skips it).
Every stage that fails prints 'n/a' with its one-line reason; the other columns still run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from edgefold.compiler import data, zoo, zoo_edge
from edgefold.compiler.train import TrainConfig, train
from rich.console import Console

import results_table

console = Console()
COLUMNS = ["model", "input", "train acc %", "fold s", "fold params", "fold MACs", "mag1 s", "mag1 params",
           "mag1 MACs", "int8 s", "full int", "int8 agree %", "codegen", "bit-exact (20)", "arena B", "weights B",
           "twin instructions", "insns/MAC", "Flash B", "twin = TFLM"]


def _why(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return f"n/a: {text[:90]}"


def _compress(model: torch.nn.Module, shape: tuple[int, ...], method: str) -> list[str]:
    from edgefold.compiler.compress import compress

    t = time.perf_counter()
    try:
        _, rep = compress(model, torch.zeros(shape), method, 0.5)
    except Exception as e:  # noqa: BLE001 - a benchmark row records the failure and carries on
        return [_why(e), "", ""]
    return [f"{time.perf_counter() - t:.1f}", f"{rep.params_before:,}->{rep.params_after:,}",
            f"{rep.macs_before / 1e6:.2f}M->{rep.macs_after / 1e6:.2f}M"]


def _export(model: torch.nn.Module, shape: tuple[int, ...]) -> tuple[list[str], bytes | None]:
    from edgefold.compiler.check.fidelity import compare, held_out, tflite_outputs, torch_outputs
    from edgefold.compiler.export.tflite import check_full_integer, convert_int8

    calib = data.calibration_batch(shape, 128)
    t = time.perf_counter()
    try:
        blob = convert_int8(model, calib[:1], calib)
    except Exception as e:  # noqa: BLE001
        return [_why(e), "", ""], None
    secs = f"{time.perf_counter() - t:.1f}"
    try:
        check_full_integer(blob, model)
        full = "yes"
    except Exception as e:  # noqa: BLE001
        full = _why(e)
    try:
        test = held_out(shape)
        res = compare("tflite-int8", "ai-edge-litert", torch_outputs(model, test.x), tflite_outputs(blob, test.x),
                      test.y.numpy())
        agree = f"{res.agreement:.1f}"
    except Exception as e:  # noqa: BLE001
        agree = _why(e)
    return [secs, full, agree], blob


def _codegen(blob: bytes | None, shape: tuple[int, ...]) -> list[str]:
    if blob is None:
        return ["n/a: no .tflite", "", "", ""]
    from edgefold.compiler.check.fidelity import _io_params, held_out, quantize_input
    from edgefold.compiler.check.tflm import tflm_invoke
    from edgefold.compiler.codegen import generate
    from edgefold.compiler.codegen.host import build_model

    with tempfile.TemporaryDirectory(prefix="edgefold-zoo-") as tmp:
        try:
            man = generate(blob, Path(tmp) / "gen")
        except Exception as e:  # noqa: BLE001
            return [_why(e), "", "", ""]
        try:
            (s_in, z_in), _, _ = _io_params(blob)
            xq = quantize_input(held_out(shape).x[:20], s_in, z_in)
            want = tflm_invoke(blob, xq)
            host = build_model(Path(tmp) / "gen", Path(tmp) / "build")
            got = host.run(xq).reshape(want.shape)
            exact = "yes" if np.array_equal(got, want) else f"no ({int((got != want).sum())} values differ)"
        except Exception as e:  # noqa: BLE001
            exact = _why(e)
        return ["ok", exact, f"{man.arena_bytes:,}", f"{man.weights_bytes:,}"]


def _twin(blob: bytes | None, twin: bool) -> list[str]:
    if blob is None or not twin:
        return ["", "", "", ""]
    from edgefold.compiler.tflite_model import read_tflite

    from edge_zoo_runtime import runtime_columns

    with tempfile.TemporaryDirectory(prefix="edgefold-zoo-twin-") as tmp:
        try:
            r = runtime_columns(blob, Path(tmp) / "model", Path(tmp) / "host")
        except Exception as e:  # noqa: BLE001
            return [_why(e), "", "", ""]
    if "instructions" not in r:
        return [f"n/a: {r.get('stop', '')[:90]}", "", "", ""]
    macs = read_tflite(blob).macs
    return [f"{r['instructions']:,.0f}", f"{r['instructions'] / macs:.2f}" if macs else "", f"{r['flash']:,}",
            "yes" if r["twin_match"] else "NO"]


def row(name: str, cfg: TrainConfig, twin: bool = True) -> list[str]:
    shape = zoo.input_shape(name)
    model = zoo.build(name)
    acc = train(model, shape, cfg) if cfg.epochs > 0 else float("nan")
    model.eval()
    cells = [name, "x".join(map(str, shape)), f"{acc:.1f}"]
    cells += _compress(model, shape, "fold") + _compress(model, shape, "mag1")
    exp, blob = _export(model, shape)
    return cells + exp + _codegen(blob, shape) + _twin(blob, twin)


def export_only(names: list[str]) -> int:
    from edgefold.compiler.export.tflite import check_full_integer, convert_int8

    for name in names:
        model, shape = zoo.build(name).eval(), zoo.input_shape(name)
        calib = data.calibration_batch(shape, 32)
        t = time.perf_counter()
        try:
            blob = convert_int8(model, calib[:1], calib)
            secs = time.perf_counter() - t
            check_full_integer(blob, model)
            console.print(f"{name}: full integer, {secs:.1f} s")
        except Exception as e:  # noqa: BLE001
            console.print(f"{name}: {_why(e)} ({time.perf_counter() - t:.1f} s)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(zoo_edge.EDGE), help="comma-separated test-zoo names")
    ap.add_argument("--epochs", type=int, default=2, help="training epochs on the digits before export")
    ap.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay, help="AdamW weight decay")
    ap.add_argument("--augment", action="store_true", help="random shifts of up to 2 pixels (image inputs)")
    ap.add_argument("--no-twin", action="store_true", help="skip the nano33ble-qemu twin columns")
    ap.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    ap.add_argument("--export-only", action="store_true",
                    help="seeded weights, 32 calibration samples: only the int8 conversion, its time and the gate")
    args = ap.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in zoo_edge.EDGE]
    if unknown:
        console.print(f"error: not in the edge test zoo: {', '.join(unknown)} (choose from {', '.join(zoo_edge.EDGE)})")
        return 2
    torch.set_num_threads(2)
    if args.export_only:
        return export_only(names)
    cfg = TrainConfig(epochs=args.epochs, weight_decay=args.weight_decay, augment=args.augment)
    rows = []
    for name in names:
        rows.append(row(name, cfg, not args.no_twin))
        console.print(" | ".join(rows[-1]))
    results_table.show(console, f"edge test zoo ({cfg.epochs} epochs on digits, weight decay {cfg.weight_decay}"
                        f"{', shifts' if cfg.augment else ''})", COLUMNS, rows)
    if args.append:
        results_table.append("edge_zoo.py", COLUMNS, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
