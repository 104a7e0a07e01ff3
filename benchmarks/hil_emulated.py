"""The CI hardware-in-the-loop matrix on the emulated twins, timed: examples/ci/hil-emulated.toml (nano33ble-qemu fold
at r=0, {fold, mag1} at r=0.5 with 2 recovery epochs, and jetson-local), every cell a real `edgefold deploy`. Prints
each cell's figures, the matrix wall time, and the time of a resumed run (gates only, nothing redeployed), then
builds the report.

    .venv/bin/python benchmarks/hil_emulated.py [--matrix examples/ci/hil-emulated.toml] [--out runs/hil-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--matrix", default=str(ROOT / "examples/ci/hil-emulated.toml"))
    ap.add_argument("--out", default=None, help="output folder (default: a fresh temporary one)")
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    con = Console(width=200)  # a CI log is not a terminal: do not squeeze the table to 80 columns
    work = Path(tempfile.mkdtemp(prefix="hil-bench-"))
    out = Path(args.out) if args.out else work / "hil"
    wdir = work / "weights"
    wdir.mkdir()
    env = {**os.environ, "EDGEFOLD_WEIGHTS": str(wdir)}
    edgefold = [sys.executable, "-m", "edgefold"]
    subprocess.run(edgefold + ["train", "--model", "dscnn", "--epochs", str(args.epochs), "--out",
                               str(wdir / "dscnn.pt")], check=True, env=env)
    t0 = time.perf_counter()
    p = subprocess.run(edgefold + ["hil", "--matrix", args.matrix, "--out", str(out), "--fresh"], env=env)
    matrix_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    subprocess.run(edgefold + ["hil", "--matrix", args.matrix, "--out", str(out)], env=env, capture_output=True)
    resume_s = time.perf_counter() - t1
    doc = json.loads((out / "hil.json").read_text())
    t = Table(title=f"edgefold hil, {args.matrix}")
    for col in ("cell", "status", "deploy s", "latency", "instructions", "RAM B", "Flash B", "int8 %", "agree %"):
        t.add_column(col, justify="left" if col in ("cell", "status") else "right")
    for c in doc["cells"]:
        r = c["result"] or {}
        lat = r.get("latency") or {}
        acc = r.get("accuracy") or {}
        est = " (est.)" if lat.get("kind") == "estimated" else ""
        latency = f"{lat['value']:.3f} {lat.get('unit')}{est}" if lat.get("value") is not None else "–"
        t.add_row(c["id"], c["status"], f"{c['wall_seconds'] or 0:.1f}", latency,
                  f"{int(r['instructions']):,}" if r.get("instructions") else "–",
                  f"{(r.get('ram') or {}).get('total') or 0:,}", f"{r.get('flash') or 0:,}",
                  f"{acc.get('int8') or 0:.1f}", f"{acc.get('agreement') or 0:.1f}")
    con.print(t)
    con.print(f"matrix wall time: {matrix_s:.1f} s (exit {p.returncode}); resumed run (nothing redeployed): "
              f"{resume_s:.1f} s; {os.cpu_count()} CPUs")
    subprocess.run(edgefold + ["report", str(out), "--out", str(out / "report")], check=True)
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
