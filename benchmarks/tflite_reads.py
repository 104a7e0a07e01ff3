"""How often one `edgefold deploy` parses the .tflite, and by which reader (issue #10: "parsed about six times by
three readers"). Every parse goes through the flatbuffer root accessor tflite.Model.GetRootAsModel, which this script
counts per calling function while it runs one real deploy to the nano33ble-qemu twin (resnet8, fold 0.5, edgefold
backend, untrained weights: only the count matters).

    .venv/bin/python benchmarks/tflite_reads.py
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import traceback
from pathlib import Path

import tflite

from edgefold.api import DeployConfig, deploy

COUNTS: collections.Counter[tuple[str, str]] = collections.Counter()  # (reader, its caller) -> parses
_root = tflite.Model.GetRootAsModel


def _counting(buf: bytes, offset: int = 0) -> tflite.Model:
    stack = traceback.extract_stack()[:-1]
    reader = next(f for f in reversed(stack) if "/tflite/" not in f.filename)
    user = next((f for f in reversed(stack) if f.filename not in (reader.filename, __file__)
                 and "/tflite/" not in f.filename), reader)
    COUNTS[(_name(reader), _name(user))] += 1
    return _root(buf, offset)


def _name(f: traceback.FrameSummary) -> str:
    return f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.name}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet8")
    ap.add_argument("--target", default="nano33ble-qemu")
    a = ap.parse_args()
    tflite.Model.GetRootAsModel = staticmethod(_counting)
    with tempfile.TemporaryDirectory(prefix="ef-reads-") as tmp:
        deploy(DeployConfig(target=a.target, model=a.model, ratio=0.5, repair="ar", runs=1, warmup=0,
                            out=Path(tmp) / "run"))
    readers = {r for r, _ in COUNTS}
    print(f"{a.model} -> {a.target}: {sum(COUNTS.values())} parses of the .tflite by {len(readers)} reader(s)")
    for (reader, user), n in COUNTS.most_common():
        print(f"  {n}  {reader}  <- {user}")


if __name__ == "__main__":
    main()
