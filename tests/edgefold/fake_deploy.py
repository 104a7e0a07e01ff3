"""STAND-IN for `edgefold deploy`, used ONLY by the scheduler/gate unit tests in test_hil_scheduler.py.

It takes the same arguments and writes an edgefold-result/1 document with made-up but deterministic figures
derived from its arguments, so the scheduler (lanes, timeouts, process-group kills, resume, gates, outputs)
can be tested in a second instead of minutes. Nothing it prints is a measurement. The CI test of the HIL
matrix (test_hil_emulated.py) runs the real `edgefold deploy` against the emulated twins.

Environment knobs: FAKE_DEPLOY_CALLS=file (a "start" and an "end" line per invocation),
FAKE_DEPLOY_SLEEP=seconds (before finishing), FAKE_DEPLOY_SLOW_FACTOR=x (multiply the latency: a regression),
FAKE_DEPLOY_BAD_RESULT=1 (write a result.json of the wrong schema), FAKE_DEPLOY_VANISH=1 (delete the file
named by --port and fail: a board that disappears mid-run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["deploy"])
    for a in ("--target", "--model", "--weights", "--method", "--repair", "--backend", "--port", "--fault", "--out"):
        p.add_argument(a)
    p.add_argument("--ratio", type=float)
    p.add_argument("--runs", type=int, default=10)
    a = p.parse_args()
    calls = os.environ.get("FAKE_DEPLOY_CALLS")
    if calls:
        with open(calls, "a") as f:
            f.write(f"start {time.time():.4f} {a.target} {a.model} {a.method} {a.ratio} {a.fault}\n")
    time.sleep(float(os.environ.get("FAKE_DEPLOY_SLEEP", "0")))
    if calls:
        with open(calls, "a") as f:
            f.write(f"end {time.time():.4f} {a.target} {a.model} {a.method} {a.ratio} {a.fault}\n")
    if os.environ.get("FAKE_DEPLOY_VANISH") and a.port:  # the board disappears mid-run (its port node goes away)
        Path(a.port).unlink(missing_ok=True)
        print(f"edgefold deploy: error: serial port {a.port} vanished (fake)", file=sys.stderr)
        return 4
    if a.fault == "kill":
        print("edgefold deploy: error: emulator exited during the benchmark (fake)", file=sys.stderr)
        return 4
    if a.fault == "garble":
        print("edgefold deploy: error: no valid protocol line from the device (fake)", file=sys.stderr)
        return 4
    if a.fault == "stall":  # hang with a child in the same group, like a stalled QEMU under deploy
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "child.pid").write_text(str(child.pid))
        time.sleep(600)
        return 0
    emulated = a.target.endswith("-qemu") or a.target.endswith("-local")
    instr = int(1_000_000 * (1.0 - a.ratio) * float(os.environ.get("FAKE_DEPLOY_SLOW_FACTOR", "1")))
    per_run = [instr / 64e3 * 1.2] * a.runs
    res = {
        "schema": "edgefold-result/1", "target": a.target, "device": f"fake {a.target}", "emulated": emulated,
        "backend": a.backend, "model": a.model, "method": a.method, "ratio": a.ratio, "repair": a.repair,
        "latency": {"value": per_run[0], "unit": "ms", "kind": "estimated" if emulated else "measured",
                    "runs": a.runs, "per_run": per_run},
        "instructions": instr if a.target.endswith("-qemu") else None,
        "ram": {"static": 1000, "arena": int(50_000 * (1 - a.ratio)), "stack": 900,
                "total": 1900 + int(50_000 * (1 - a.ratio))},
        "flash": int(200_000 * (1 - a.ratio)) + 20_000, "output_crc_match": True,
        "accuracy": {"float": 95.0 - 20 * a.ratio, "int8": 94.5 - 20 * a.ratio, "agreement": 99.0 - a.ratio},
        "params": 1000, "macs": 100000, "wall_seconds": 0.1, "estimate": None,
    }
    if os.environ.get("FAKE_DEPLOY_BAD_RESULT"):
        res = {"schema": "something-else/9"}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".result.json.tmp"
    tmp.write_text(json.dumps(res))
    os.replace(tmp, out / "result.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
