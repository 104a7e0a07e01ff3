"""One cell: `edgefold deploy` as a subprocess in its own process group, supervised (timeout, stop request),
its process tree killed when it must end early, its result checked and recorded in cell.json atomically."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from edgefold.core.artifacts import DeployResult
from edgefold.core.errors import EdgefoldError
from edgefold.core.fsutil import ensure_dir, write_json
from edgefold.hil.devices import Lane
from edgefold.hil.matrix import Cell
from edgefold.hil.state import CELL_SCHEMA, ERROR

RESULT_SCHEMA = DeployResult.SCHEMA


def validate_result(res: Any) -> str | None:
    """None if `res` is an edgefold-result/1 document with a latency, else what is wrong with it."""
    try:
        result = DeployResult.from_dict(res, "result.json")
    except EdgefoldError as e:
        return str(e)
    if result.latency_value is None or "unit" not in result.latency:
        return "result.json has no latency value"
    return None


def alive(proc: int | psutil.Process) -> bool:
    """Still running: a zombie has exited (only its exit status waits to be collected), so it does not count."""
    try:
        p = proc if isinstance(proc, psutil.Process) else psutil.Process(proc)
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_tree(proc: subprocess.Popen, grace_s: float = 3.0) -> None:
    """SIGTERM the cell's process group and every descendant, then SIGKILL what is left after `grace_s`.

    Descendants are collected first: children that started their own session escape killpg.
    """
    try:
        victims = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        victims = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        for p in victims:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                p.send_signal(sig)  # psutil checks the pid was not reused by another process meanwhile
        try:
            proc.wait(timeout=grace_s)
            if sig == signal.SIGTERM and not any(alive(p) for p in victims):
                return
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _reason_from_stderr(path: Path) -> str:
    for line in reversed(_tail(path, 50).splitlines()):
        if line.strip():
            return line.strip()[:500]
    return ""


class Interrupted(Exception):
    """The matrix run was asked to stop; the cell in flight is not finished."""


def deploy_argv(cell: Cell, lane: Lane, out: Path, base: list[str]) -> list[str]:
    argv = base + ["deploy", "--target", cell.target, "--model", cell.model, "--method", cell.method,
                   "--ratio", f"{cell.ratio:g}", "--repair", cell.repair, "--backend", cell.backend, "--out", str(out)]
    if cell.weights:
        argv += ["--weights", cell.weights]
    if cell.runs is not None:
        argv += ["--runs", str(cell.runs)]
    if lane.port:
        argv += ["--port", lane.port]
    if cell.fault:
        argv += ["--fault", cell.fault]
    if lane.device is not None:
        for k, v in sorted(lane.device.options.items()):
            argv += ["--option", f"{k}={v}"]
        argv += lane.device.args
    return argv + list(cell.args)


def run_cell(cell: Cell, lane: Lane, out_dir: Path, base_argv: list[str], run_id: str,
             stop: threading.Event, on_start: Callable[[subprocess.Popen], None] | None = None) -> dict[str, Any]:
    """Deploy one cell in its own process group; return its record (also written to cell.json atomically).

    Raises Interrupted (and leaves no cell.json) if `stop` is set while it runs, so a resumed run redoes it.
    """
    cdir = ensure_dir(out_dir / "cells" / cell.id)
    ddir = cdir / "deploy"
    shutil.rmtree(ddir, ignore_errors=True)  # a half-finished earlier attempt must not leak into this one
    argv = deploy_argv(cell, lane, ddir, base_argv)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}
    t0 = time.time()
    record: dict[str, Any] = {"schema": CELL_SCHEMA, "id": cell.id, "key": cell.key(), "params": cell.params(),
                              "device": {"lane": lane.name, "port": lane.port}, "run_id": run_id,
                              "argv": argv, "started": t0, "log": "deploy.log", "stderr": "stderr.log"}
    with open(cdir / "deploy.log", "wb") as so, open(cdir / "stderr.log", "wb") as se:
        try:
            proc = subprocess.Popen(argv, stdout=so, stderr=se, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        except OSError as e:
            return _finish(cdir, record, ERROR, f"could not start deploy: {e}", None, None, t0)
        if on_start:
            on_start(proc)
        deadline = t0 + cell.timeout_s
        while True:
            try:
                rc = proc.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                if stop.is_set():
                    kill_tree(proc)
                    raise Interrupted(cell.id) from None
                if time.time() > deadline:
                    kill_tree(proc)
                    return _finish(cdir, record, ERROR, f"timed out after {cell.timeout_s:g} s (process group killed)",
                                   None, proc.returncode, t0)
    if stop.is_set() and rc != 0:  # killed by the same Ctrl-C that stops the matrix: not a real failure
        raise Interrupted(cell.id)
    if rc != 0:
        why = _reason_from_stderr(cdir / "stderr.log")
        if rc < 0:
            sig = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
            why = f"deploy killed by {sig}" + (f": {why}" if why else "")
        return _finish(cdir, record, ERROR, f"deploy exited {rc}: {why or 'no error message'}", None, rc, t0)
    try:
        res = json.loads((ddir / "result.json").read_text())
    except FileNotFoundError:
        return _finish(cdir, record, ERROR, "deploy exited 0 but wrote no result.json", None, rc, t0)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return _finish(cdir, record, ERROR, f"result.json is not valid JSON: {e}", None, rc, t0)
    bad = validate_result(res)
    if bad:
        return _finish(cdir, record, ERROR, bad, res, rc, t0)
    return _finish(cdir, record, "ok", "", res, rc, t0)


def _finish(cdir: Path, record: dict[str, Any], outcome: str, reason: str, result: dict[str, Any] | None,
            rc: int | None, t0: float) -> dict[str, Any]:
    record.update(outcome=outcome, reason=reason, result=result, rc=rc, finished=time.time(),
                  wall_seconds=round(time.time() - t0, 3))
    if outcome != "ok":
        record["stderr_tail"] = _tail(cdir / "stderr.log")
    write_json(cdir / "cell.json", record)  # last: its presence means "this cell is done"
    return record

