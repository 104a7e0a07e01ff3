"""The seeds' device table with edgefold itself: one model folded at sparsity 10/25/50/70 %, deployed with
`edgefold deploy` (edgefold.pipeline.deploy), runtime / RAM / Flash per device.

    .venv/bin/python benchmarks/device_table.py [--model resnet8] [--weights ckpt.pt] [--ratios 0.1,0.25,0.5,0.7]

- nano33ble-qemu: measured instructions per inference (QEMU -icount), Flash and static RAM from the linked ELF
  (nRF52840 map; the planned arena is in .bss, so static RAM includes it), stack high-water reported by the firmware.
- nano33ble (64 MHz Cortex-M4F): ESTIMATED runtime = twin instructions × CPI ÷ 64 MHz with the twin's documented
  CPI (targets/qemu/nano33ble.py DEFAULT_CPI); RAM/Flash are the twin's linker figures (runtime + model + harness; the
  Arduino core of a real PlatformIO build comes on top).
- esp-eye-qemu: measured Xtensa lx106 instructions per inference of the same build input (`edgefold bench`), its
  Flash and static DRAM from the ESP32-map ELF.
- esp-eye (240 MHz Xtensa LX6): ESTIMATED runtime = the lx106 instruction count × the twin's CPI (1.4) ÷ 240 MHz.
  The lx106 lacks the LX6's MAC16, loops and SEXT, so this leans high.
- jetson-local: MEASURED on this host's CPU through the real SSH deploy path (ONNX Runtime), not a Jetson Nano.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from edgefold.api import DeployConfig, bench, deploy
from edgefold.core.errors import EdgefoldError
from edgefold.core.fsutil import write_json

ESP32_CLOCK_HZ = 240_000_000
ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet8")
    ap.add_argument("--weights", default=None, help="trained checkpoint (accuracy column); runtime does not need it")
    ap.add_argument("--ratios", default="0.1,0.25,0.5,0.7")
    ap.add_argument("--method", default="fold")
    ap.add_argument("--repair", default="repair")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "device_table.json"))
    a = ap.parse_args()
    console = Console(highlight=False)
    ratios = [float(x) for x in a.ratios.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ef-devtable-") as tmp:
        for r in ratios:
            row: dict = {"ratio": r}
            for target, runs in (("nano33ble-qemu", a.runs), ("jetson-local", max(20, a.runs))):
                t0 = time.perf_counter()
                try:
                    row[target] = deploy(DeployConfig(target=target, model=a.model, weights=a.weights,
                                                      method=a.method, ratio=r, repair=a.repair, runs=runs, warmup=2,
                                                      out=Path(tmp) / f"{target}-{r:g}")).to_dict()
                except EdgefoldError as e:  # one target failing must not hide the others' figures
                    row[target] = {"error": str(e)}
                console.print(f"r={r:g} {target}: {time.perf_counter() - t0:.1f} s"
                              + (f" [red]failed[/red]: {row[target]['error']}" if "error" in row[target] else ""))
            # the ESP-EYE's Xtensa twin measures the very build input the Cortex-M4 twin ran
            try:
                row["esp-eye-qemu"] = bench("esp-eye-qemu", Path(tmp) / f"nano33ble-qemu-{r:g}", runs=a.runs,
                                            warmup=2).to_dict()
            except EdgefoldError as e:
                row["esp-eye-qemu"] = {"error": str(e)}
            rows.append(row)
    out = [_row(row) for row in rows]
    write_json(a.out, {"model": a.model, "weights": a.weights, "method": a.method, "repair": a.repair, "rows": out})
    console.print(f"\n{a.model}, {a.method} + {a.repair}; sparsity = share of channels removed per group")
    print("| device | metric | " + " | ".join(f"{100 * r['ratio']:.0f}%" for r in out) + " |")
    print("|---|---|" + "---:|" * len(out))
    for dev, metric, key, fmt in TABLE:
        vals = []
        for r in out:
            v = r.get(key)
            vals.append("failed" if v is None else fmt.format(v))
        print(f"| {dev} | {metric} | " + " | ".join(vals) + " |")
    print(f"\nwrote {a.out}")
    for r in out:
        for k in ("qemu_error", "xtensa_error", "jetson_error"):
            if r.get(k):
                print(f"r={r['ratio']:g} {k}: {r[k]}")


KB = 1024
TABLE = [
    ("nano33ble-qemu (twin)", "instructions / inference (measured)", "qemu_instructions", "{:,.0f}"),
    ("nano33ble-qemu (twin)", "RAM KB (static incl. arena, as deploy reports)", "qemu_ram_kb", "{:.1f}"),
    ("nano33ble-qemu (twin)", "Flash KB (linked ELF)", "qemu_flash_kb", "{:.1f}"),
    ("nano33ble-qemu (twin)", "output CRC = host", "qemu_crc", "{}"),
    ("nano33ble", "runtime ms (estimated: insns × CPI ÷ 64 MHz)", "nano33ble_est_ms", "{:.0f}"),
    ("esp-eye-qemu (twin)", "lx106 instructions / inference (measured)", "xtensa_instructions", "{:,.0f}"),
    ("esp-eye-qemu (twin)", "static DRAM KB (incl. arena) / Flash KB", "xtensa_ram_flash", "{}"),
    ("esp-eye-qemu (twin)", "output CRC = host", "xtensa_crc", "{}"),
    ("esp-eye", "runtime ms (estimated: lx106 insns × CPI ÷ 240 MHz)", "esp_eye_est_ms", "{:.0f}"),
    ("jetson-local (this host's CPU)", "runtime ms (measured, median)", "jetson_ms", "{:.3f}"),
    ("jetson-local (this host's CPU)", "RAM MB (runner peak RSS)", "jetson_ram_mb", "{:.1f}"),
    ("jetson-local (this host's CPU)", "ONNX KB", "jetson_flash_kb", "{:.1f}"),
    ("model", "params", "params", "{:,}"),
    ("model", "int8 accuracy on digits (%)", "accuracy_int8", "{:.1f}"),
]


def _row(row: dict) -> dict:
    q, j, x = row["nano33ble-qemu"], row["jetson-local"], row.get("esp-eye-qemu", {"error": "not run"})
    out: dict = {"ratio": row["ratio"], "qemu_error": q.get("error"), "jetson_error": j.get("error"),
                 "xtensa_error": x.get("error")}
    if "error" not in q:
        insns, cpi = float(q["instructions"]), float(q["latency"]["cpi"])
        out |= {"params": q["params"], "macs": q["macs"], "accuracy_int8": (q.get("accuracy") or {}).get("int8"),
                "qemu_instructions": insns, "qemu_ram_kb": q["ram"]["total"] / KB, "qemu_flash_kb": q["flash"] / KB,
                "qemu_arena": q["ram"]["arena"], "qemu_stack": q["ram"]["stack"], "qemu_crc": q.get("output_crc_match"),
                "cpi": cpi, "nano33ble_est_ms": insns * cpi / 64e6 * 1e3}
    if "error" not in x:
        xi = float(x["instructions"])
        out |= {"xtensa_instructions": xi, "xtensa_crc": x.get("output_crc_match"), "xtensa_cpi": x["latency"]["cpi"],
                "xtensa_ram_flash": f"{x['ram']['static'] / KB:.1f} / {x['flash'] / KB:.1f}",
                "esp_eye_est_ms": xi * float(x["latency"]["cpi"]) / ESP32_CLOCK_HZ * 1e3}
    if "error" not in j:
        lat = j.get("latency") or {}
        per = lat.get("per_run") or []
        ms = lat.get("value") if lat.get("value") is not None else (statistics.median(per) if per else None)
        ram = (j.get("ram") or {}).get("total")
        out |= {"jetson_ms": ms, "jetson_flash_kb": j["flash"] / KB, "jetson_ram_mb": None if ram is None else
                ram / 2**20, "jetson_device": j.get("device")}
    return out


if __name__ == "__main__":
    main()
