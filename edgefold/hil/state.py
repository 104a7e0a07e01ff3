"""Cell status in memory (CellOutcome, HilRun) and on disk: DIR/state.json, the finished cells' cell.json that a
resumed run reuses, and the lock that allows one run per output folder."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefold.core.errors import EdgefoldError
from edgefold.core.fsutil import write_json
from edgefold.hil.gates import GateResult
from edgefold.hil.matrix import Cell

CELL_SCHEMA = "edgefold-hil-cell/1"
STATE_SCHEMA = "edgefold-hil-state/1"

PASSED, FAILED, ERROR, SKIPPED, PENDING = "passed", "failed", "error", "skipped", "pending"


@dataclass
class CellOutcome:
    cell: Cell
    status: str  # passed | failed | error | skipped | pending
    reason: str = ""
    record: dict[str, Any] | None = None
    gates: list[GateResult] = field(default_factory=list)
    reused: bool = False  # taken from an earlier (interrupted) run without deploying again
    lane: str = ""


@dataclass
class HilRun:
    out_dir: Path
    outcomes: list[CellOutcome]
    run_id: str
    interrupted: bool
    wall_seconds: float
    baseline_path: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)  # date, edgefold version, git commit

    def counts(self) -> dict[str, int]:
        c = {k: 0 for k in (PASSED, FAILED, ERROR, SKIPPED, PENDING)}
        for o in self.outcomes:
            c[o.status] += 1
        return c

    @property
    def ok(self) -> bool:
        c = self.counts()
        return not self.interrupted and c[FAILED] == 0 and c[ERROR] == 0 and c[PENDING] == 0


def load_done(out_dir: Path, cell: Cell, retry_errors: bool) -> dict[str, Any] | None:
    """A finished record for this exact cell from an earlier run, or None (then it is deployed)."""
    try:
        rec = json.loads((out_dir / "cells" / cell.id / "cell.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if rec.get("schema") != CELL_SCHEMA or rec.get("key") != cell.key():
        return None
    if rec.get("outcome") == "error" and retry_errors:
        return None
    return rec if rec.get("outcome") in ("ok", "error") else None


class StateFile:
    """DIR/state.json: which cells are pending/running/done; rewritten atomically on every change."""

    def __init__(self, path: Path, run_id: str, matrix: Path, cells: list[Cell]) -> None:
        self.path, self.lock = path, threading.Lock()
        self.doc: dict[str, Any] = {"schema": STATE_SCHEMA, "run_id": run_id, "matrix": str(matrix),
                                    "started": time.time(), "cells": {c.id: PENDING for c in cells}, "finished": None}
        self.flush()

    def set(self, cell_id: str, status: str) -> None:
        with self.lock:
            self.doc["cells"][cell_id] = status
            self.flush()

    def close(self, interrupted: bool) -> None:
        with self.lock:
            self.doc["finished"] = time.time()
            self.doc["interrupted"] = interrupted
            self.flush()

    def flush(self) -> None:
        self.doc["updated"] = time.time()
        write_json(self.path, self.doc)


@contextlib.contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """One `edgefold hil` per output folder: two runs resuming the same cells would deploy them twice."""
    import fcntl

    f = open(out / ".hil.lock", "w")  # noqa: SIM115 - held for the whole run
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise EdgefoldError(f"another `edgefold hil` is running with --out {out}") from None
        yield
    finally:
        f.close()  # closing releases the lock

