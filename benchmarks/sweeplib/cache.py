"""The sweep's result cache: one small JSON file per configuration, named by its content key, written atomically.

A crash or Ctrl-C leaves either a complete record or none, so a rerun of the same command resumes with exactly
the missing configurations. Trained checkpoints are kept beside the results (a .pt state_dict plus its metadata)
so that finishing a half-evaluated checkpoint does not retrain it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from edgefold.core.fsutil import atomic_path, ensure_dir, write_json


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Hold SIGTERM (how a stopped pool ends its workers) until the write is complete; it is delivered right after."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Cache:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @contextlib.contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        ensure_dir(self.root)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def frozen(self) -> contextlib.AbstractContextManager[None]:
        """Hold every writer (they wait at their next write) for a consistent view: a copy, a report of a running
        sweep, or a test that interrupts a sweep at a known count."""
        return self._lock(fcntl.LOCK_EX)

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        return self._lock(fcntl.LOCK_SH)  # writers share; only frozen() excludes them

    # --- evaluation results -------------------------------------------------------------------------
    def result_path(self, key: str) -> Path:
        return self.root / "results" / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.result_path(key).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def has(self, key: str) -> bool:
        return self.result_path(key).is_file()

    def put(self, key: str, record: dict[str, Any]) -> Path:
        path = self.result_path(key)
        ensure_dir(path.parent)
        with _uninterrupted(), self._writing():
            return write_json(path, record)

    def count(self) -> int:
        d = self.root / "results"
        return sum(1 for _ in d.glob("*/*.json")) if d.is_dir() else 0

    # --- trained checkpoints ------------------------------------------------------------------------
    def checkpoint_path(self, key: str) -> Path:
        return self.root / "checkpoints" / f"{key}.pt"

    def has_checkpoint(self, key: str) -> bool:
        return self.checkpoint_path(key).with_suffix(".json").is_file()

    def load_checkpoint(self, key: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        pt, meta = self.checkpoint_path(key), self.checkpoint_path(key).with_suffix(".json")
        if not (pt.is_file() and meta.is_file()):
            return None
        try:
            return torch.load(pt, weights_only=True, map_location="cpu"), json.loads(meta.read_text())
        except Exception:  # a damaged file is retrained, never trusted
            return None

    def save_checkpoint(self, key: str, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        pt = self.checkpoint_path(key)
        ensure_dir(pt.parent)
        with _uninterrupted(), self._writing():
            with atomic_path(pt) as tmp:
                torch.save(state, tmp)
            # meta last: its presence marks a complete checkpoint
            write_json(pt.with_suffix(".json"), meta)
