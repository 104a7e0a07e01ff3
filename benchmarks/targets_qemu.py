"""Models on the QEMU twins at several fold ratios: instructions per inference, static RAM/Flash from the linked ELF,
planned arena, stack high-water, estimated latency, deploy wall time; with two twins, Cortex-M4 vs Xtensa side by side.

    .venv/bin/python benchmarks/targets_qemu.py [--model resnet8,dscnn] [--ratios 0,0.25,0.5,0.7]
                                                [--targets nano33ble-qemu,esp-eye-qemu] [--portable-arm] [--out DIR]

The first target gets a full `edgefold deploy`; the others re-measure the same build input (`edgefold bench`), so
every twin runs the same int8 model on the same input. Untrained weights are fine here: the runtime's instruction
count does not depend on weight values. Latency is an *estimate* (instructions x the twin's CPI / the board's clock:
1.25 / 64 MHz for the Nano, 1.4 / 240 MHz for the ESP-EYE), not a measurement on a board.

--portable-arm also counts the Cortex-M4 twin with the runtime's portable C kernels (-DEF_NO_DSP: no SMLAD/SXTB16),
the code path the Xtensa twin runs, so the comparison separates the instruction set from the M4's DSP kernels.
"""

from __future__ import annotations

import argparse
import tempfile
import zlib
from pathlib import Path

from edgefold.targets.qemu import NanoQemuTarget
from edgefold.targets.registry import spec
from rich.console import Console

from edgefold.api import DeployConfig, bench, deploy
from edgefold.core.errors import DeviceError

PORTABLE = "nano33ble-qemu -DEF_NO_DSP"


class PortableNanoTwin(NanoQemuTarget):
    """The Nano twin built with the runtime's portable C kernels instead of its Cortex-M4 DSP ones."""

    def link(self, sources, out_elf, include_dirs, defines):
        return super().link(sources, out_elf, include_dirs, {**defines, "EF_NO_DSP": None})


def portable_count(run_dir: Path) -> float:
    """Instructions per inference of the Nano twin's portable-C build of run_dir's build input (output checked)."""
    t = PortableNanoTwin()
    b = t.build(run_dir / "build-input", run_dir / "build-portable", "edgefold", runs=3, warmup=1)
    res = t.run_benchmark(b, t.flash(b), timeout_s=600)
    if res.output_crc != zlib.crc32((run_dir / "build-input" / "expected_output.bin").read_bytes()):
        raise DeviceError("the portable-C build computed another output than the TFLM host")
    return res.median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet8", help="comma-separated zoo models")
    ap.add_argument("--ratios", default="0,0.25,0.5,0.7")
    ap.add_argument("--targets", default="nano33ble-qemu", help="comma-separated twins; the first one deploys")
    ap.add_argument("--method", default="fold")
    ap.add_argument("--portable-arm", action="store_true", help="also count the Nano twin with -DEF_NO_DSP kernels")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    targets = a.targets.split(",")
    for t in targets:
        if not spec(t).emulated:
            ap.error(f"{t} is not a twin")
    root = Path(a.out or tempfile.mkdtemp(prefix="ef-qemu-bench-"))
    console = Console(highlight=False, stderr=True)
    rows = []
    portable: dict[tuple[str, float], float] = {}
    for model in a.model.split(","):
        for r in [float(x) for x in a.ratios.split(",")]:
            run_dir = root / f"{model}-r{r:g}"
            first = deploy(DeployConfig(target=targets[0], model=model, method=a.method, ratio=r, repair="ar",
                                        runs=3, warmup=1, out=run_dir)).to_dict()
            rows.append((model, r, targets[0], first))
            console.print(f"{model} r={r:g} {targets[0]}: {first['instructions']:,.0f} instructions")
            for t in targets[1:]:
                res = bench(t, run_dir, runs=3, warmup=1).to_dict()
                rows.append((model, r, t, res))
                console.print(f"{model} r={r:g} {t}: {res['instructions']:,.0f} instructions")
            if a.portable_arm:
                portable[(model, r)] = portable_count(run_dir)
                console.print(f"{model} r={r:g} {PORTABLE}: {portable[(model, r)]:,.0f} instructions")

    print(f"{a.model} on {', '.join(targets)} ({a.method}, repair ar): instructions per inference (QEMU -icount), "
          "static sizes from the linked ELF, latency = estimate (instructions x CPI / clock)")
    print("| model | target | ratio | MACs | instructions/inference | insns/MAC | Flash (B) | static RAM (B) "
          "| arena (B) | stack (B) | est. latency (ms) | CRC match | wall (s): deploy / bench |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for model, r, t, res in rows:
        macs = (res.get("codegen") or {}).get("macs") or res.get("macs")
        insns = res["instructions"]
        print(f"| {model} | {t} | {r:g} | {macs:,} | {insns:,.0f} | {insns / macs:.2f} | {res['flash']:,} | "
              f"{res['ram']['static']:,} | {res['ram']['arena']:,} | {res['ram']['stack']:,} | "
              f"{res['latency']['value']:.1f} | {res['output_crc_match']} | {res['wall_seconds']:.1f} |")
    if len(targets) > 1:
        names = targets + ([PORTABLE] if portable else [])
        ratios = [f"{targets[1]} / {x}" for x in (targets[0], *([PORTABLE] if portable else []))]
        print(f"\ninstructions per inference, {' vs '.join(names)}")
        print("| model | ratio | " + " | ".join(names + ratios) + " |")
        print("|---|---|" + "---:|" * (len(names) + len(ratios)))
        by_key = {(m, r, t): res["instructions"] for m, r, t, res in rows}
        by_key |= {(m, r, PORTABLE): v for (m, r), v in portable.items()}
        for model, r, t, _ in rows:
            if t != targets[0]:
                continue
            counts = [by_key[(model, r, x)] for x in names]
            quot = [counts[1] / counts[0]] + ([counts[1] / counts[-1]] if portable else [])
            cells = " | ".join([f"{c:,.0f}" for c in counts] + [f"{q:.2f}" for q in quot])
            print(f"| {model} | {r:g} | {cells} |")


if __name__ == "__main__":
    main()
