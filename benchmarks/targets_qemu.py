"""resnet8 (and friends) on the nano33ble-qemu twin at several fold ratios: instructions per inference, static
RAM/Flash from arm-none-eabi-size, planned arena, stack high-water, estimated latency, deploy wall time.

    .venv/bin/python benchmarks/targets_qemu.py [--model resnet8] [--ratios 0,0.25,0.5,0.7] [--out DIR]

Untrained weights are fine here: the runtime's instruction count does not depend on weight values. Latency is an
*estimate* (instructions x CPI 1.25 / 64 MHz), not a measurement on the board.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from edgefold.api import DeployConfig, deploy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet8")
    ap.add_argument("--ratios", default="0,0.25,0.5,0.7")
    ap.add_argument("--method", default="fold")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    root = Path(a.out or tempfile.mkdtemp(prefix="ef-qemu-bench-"))
    rows = []
    for r in [float(x) for x in a.ratios.split(",")]:
        res = deploy(DeployConfig(target="nano33ble-qemu", model=a.model, method=a.method, ratio=r, repair="ar",
                                  runs=3, warmup=1, out=root / f"{a.model}-r{r:g}")).to_dict()
        rows.append((r, res))
    print(f"{a.model} on nano33ble-qemu ({a.method}, repair ar): instructions per inference (QEMU -icount, "
          "resolution 40), static sizes from arm-none-eabi-size, latency = estimate at CPI 1.25 / 64 MHz")
    print("| ratio | MACs | instructions/inference | insns/MAC | Flash (B) | static RAM (B) | arena (B) | stack (B) "
          "| est. latency (ms) | CRC match | deploy wall (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r, res in rows:
        macs = (res.get("codegen") or {}).get("macs") or res.get("macs")
        insns = res["instructions"]
        print(f"| {r:g} | {macs:,} | {insns:,.0f} | {insns / macs:.2f} | {res['flash']:,} | {res['ram']['static']:,} | "
              f"{res['ram']['arena']:,} | {res['ram']['stack']:,} | {res['latency']['value']:.1f} | "
              f"{res['output_crc_match']} | {res['wall_seconds']:.1f} |")


if __name__ == "__main__":
    main()
