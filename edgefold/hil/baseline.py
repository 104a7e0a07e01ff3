"""The latency baseline: measurements of earlier runs per cell (fault cells never count), read and updated."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from edgefold.core.errors import EdgefoldError
from edgefold.core.fsutil import write_json
from edgefold.hil.state import HilRun

BASELINE_SCHEMA = "edgefold-hil-baseline/1"


def load_baseline(path: str | os.PathLike | None, must_exist: bool = True) -> dict[str, Any]:
    if path is None:
        return {}
    if not Path(path).exists():
        if must_exist:
            raise EdgefoldError(f"baseline {path} not found (create it with --update-baseline)")
        return {}
    try:
        doc = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, OSError) as e:
        raise EdgefoldError(f"baseline {path}: cannot read ({e})") from None
    if not isinstance(doc, dict) or doc.get("schema") != BASELINE_SCHEMA:
        raise EdgefoldError(f"baseline {path}: not an {BASELINE_SCHEMA} file")
    return dict(doc.get("cells", {}))


def baseline_entry(res: dict[str, Any]) -> dict[str, Any]:
    lat = res["latency"]
    return {"latency": {"value": lat["value"], "unit": lat["unit"], "kind": lat.get("kind")},
            "instructions": res.get("instructions"), "ram_total": (res.get("ram") or {}).get("total"),
            "flash": res.get("flash"), "device": res.get("device")}



def write_baseline(run: HilRun, path: str | os.PathLike, old: dict[str, Any]) -> Path:
    """Keep entries for cells not in this run; replace those measured now (fault cells never count)."""
    cells = dict(old)
    for o in run.outcomes:
        if o.record and o.record.get("outcome") == "ok" and not o.cell.fault:
            cells[o.cell.baseline_key] = baseline_entry(o.record["result"])
    doc = {"schema": BASELINE_SCHEMA, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "cells": dict(sorted(cells.items()))}
    return write_json(path, doc)

