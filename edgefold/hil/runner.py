"""The matrix run: one lane per device (its cells in sequence, lanes in parallel), resume, gates, outputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from edgefold.core.fsutil import ensure_dir, write_json
from edgefold.core.provenance import provenance
from edgefold.hil.baseline import load_baseline, write_baseline
from edgefold.hil.devices import resolve_lane
from edgefold.hil.gates import evaluate_gates
from edgefold.hil.matrix import Cell, Matrix
from edgefold.hil.outputs import append_history, history_record, write_outputs
from edgefold.hil.state import (
    ERROR,
    FAILED,
    PASSED,
    PENDING,
    SKIPPED,
    CellOutcome,
    HilRun,
    StateFile,
    exclusive,
    load_done,
)
from edgefold.hil.supervise import Interrupted, kill_tree, run_cell
from edgefold.targets import usb
from edgefold.targets.usb import SerialDevice


def run_matrix(matrix: Matrix, out_dir: str | os.PathLike, baseline: str | os.PathLike | None = None,
               update_baseline: bool = False, jobs: int | None = None, retry_errors: bool = False,
               fresh: bool = False, deploy_base: list[str] | None = None, console: Any = None,
               ports: list[SerialDevice] | None = None, stop: threading.Event | None = None,
               junit: str | os.PathLike | None = None, history: str | os.PathLike | None = None) -> HilRun:
    """Run every cell (resuming finished ones from `out_dir`), gate them and write all outputs.

    `deploy_base` is the command that provides `deploy` (default: this Python's `-m edgefold`). A finished run
    appends its summary to `history` (default DIR/history.jsonl), which `edgefold report` draws trends from.
    On KeyboardInterrupt the cells in flight are killed, everything finished is kept, and the outputs are
    written with the unfinished cells as pending; the exception is then re-raised.
    """
    out = ensure_dir(out_dir)
    with exclusive(out):
        return _run_matrix(matrix, out, baseline, update_baseline, jobs, retry_errors, fresh, deploy_base, console,
                           ports, stop, junit, history)


def _run_matrix(matrix: Matrix, out: Path, baseline: str | os.PathLike | None, update_baseline: bool,
                jobs: int | None, retry_errors: bool, fresh: bool, deploy_base: list[str] | None, console: Any,
                ports: list[SerialDevice] | None, stop: threading.Event | None,
                junit: str | os.PathLike | None, history: str | os.PathLike | None) -> HilRun:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True, highlight=False)
    base = deploy_base or [sys.executable, "-m", "edgefold"]
    stop = stop or threading.Event()
    run_id = uuid.uuid4().hex[:12]
    t0 = time.time()
    prov = provenance()
    if fresh:
        shutil.rmtree(out / "cells", ignore_errors=True)
    base_cells = load_baseline(baseline, must_exist=not update_baseline)

    ports = usb.list_devices() if ports is None and any(d.kind == "serial" for d in matrix.devices.values()) \
        else (ports or [])
    lanes = {t: resolve_lane(d, ports) for t, d in matrix.devices.items()}
    outcomes = {c.id: CellOutcome(c, PENDING, lane=lanes[c.target].name) for c in matrix.cells}
    state = StateFile(out / "state.json", run_id, matrix.path, matrix.cells)

    todo: dict[str, list[Cell]] = {}
    reused = 0
    for c in matrix.cells:
        lane = lanes[c.target]
        rec = load_done(out, c, retry_errors)
        if rec is not None:
            outcomes[c.id].record, outcomes[c.id].reused = rec, True
            state.set(c.id, rec["outcome"])
            reused += 1
        elif lane.absent:
            outcomes[c.id].status, outcomes[c.id].reason = SKIPPED, lane.absent
            state.set(c.id, SKIPPED)
        else:
            todo.setdefault(lane.name, []).append(c)
    if reused:
        console.print(f"hil: resuming in {out}: {reused} of {len(matrix.cells)} cells already done, not redeployed",
                      markup=False)

    running: dict[str, subprocess.Popen] = {}
    lock = threading.Lock()
    n_todo = sum(len(v) for v in todo.values())

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=False)

    def lane_worker(lane_name: str, cells: list[Cell]) -> None:
        lane = next(lane for lane in lanes.values() if lane.name == lane_name)
        for c in cells:
            if stop.is_set():
                return
            if lane.device and lane.device.kind == "serial":  # the board may have gone since the last cell
                lane = resolve_lane(lane.device)
            o = outcomes[c.id]
            if lane.absent:  # not persisted: the cell never ran, a resumed run tries it again
                o.record = {"outcome": "error", "reason": f"device lost before this cell: {lane.absent}",
                            "run_id": run_id, "result": None}
                state.set(c.id, ERROR)
                progress.console.print(f"[red]error[/] {c.id}: {escape(o.record['reason'])}")
                progress.advance(overall)
                continue
            state.set(c.id, "running")
            progress.update(overall, description=f"{c.id}")

            def started(p: subprocess.Popen, cid: str = c.id) -> None:
                with lock:
                    running[cid] = p

            try:
                rec = run_cell(c, lane, out, base, run_id, stop, started)
            except Interrupted:
                state.set(c.id, PENDING)
                return
            except Exception as e:  # noqa: BLE001 - e.g. a full disk: this cell errs, the matrix goes on
                rec = {"outcome": "error", "reason": f"hil could not run the cell: {type(e).__name__}: {e}",
                       "run_id": run_id, "result": None, "wall_seconds": 0.0}
            finally:
                with lock:
                    running.pop(c.id, None)
            if rec["outcome"] == "error" and lane.device and lane.device.kind == "serial":
                now = resolve_lane(lane.device)
                if now.absent:  # say so: "deploy exited 4" alone hides that the board vanished
                    rec["reason"] = f"device lost during the cell ({now.absent}): {rec['reason']}"
                    write_json(out / "cells" / c.id / "cell.json", rec)
            o.record = rec
            state.set(c.id, rec["outcome"])
            mark = "[green]done[/]" if rec["outcome"] == "ok" else "[red]error[/]"
            progress.console.print(f"{mark} {c.id} ({rec['wall_seconds']:.1f} s)"
                                   + (f": {escape(rec['reason'])}" if rec["reason"] else ""))
            progress.advance(overall)

    interrupted = False
    with progress:
        overall = progress.add_task("hil", total=n_todo)
        workers = max(1, min(jobs or len(todo) or 1, len(todo) or 1))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hil-lane")
        futures = {pool.submit(lane_worker, name, cells): name for name, cells in todo.items()}
        try:
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                if stop.is_set():
                    interrupted = True
            for f in futures:
                f.result()  # a bug in the scheduler itself must not pass silently
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            with lock:
                procs = list(running.values())
            for p in procs:
                kill_tree(p, grace_s=2.0)
            pool.shutdown(wait=True, cancel_futures=True)
        finally:
            pool.shutdown(wait=True)
    if stop.is_set():
        interrupted = True

    for o in outcomes.values():
        if o.record is None:
            continue
        if o.record["outcome"] == "error":
            o.status, o.reason = ERROR, o.record.get("reason", "")
            continue
        res = o.record["result"]
        o.gates = evaluate_gates(o.cell, res, base_cells.get(o.cell.baseline_key), skip_latency=update_baseline)
        failed = [g for g in o.gates if not g.ok]
        o.status = FAILED if failed else PASSED
        o.reason = "; ".join(g.message for g in failed)

    state.close(interrupted)
    run = HilRun(out, [outcomes[c.id] for c in matrix.cells], run_id, interrupted, time.time() - t0,
                 str(baseline) if baseline else None, prov)
    write_outputs(run, matrix, junit)
    if not interrupted:  # an interrupted run is not a point of the trend: its resumed run will be
        append_history(history or out / "history.jsonl", history_record(run, matrix))
    if update_baseline and not interrupted:
        write_baseline(run, baseline or out / "baseline.json", base_cells)
    if interrupted:
        raise KeyboardInterrupt
    return run

