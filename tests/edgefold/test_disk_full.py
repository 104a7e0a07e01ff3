"""Disk full while a command writes its output: one line, no traceback, no partial file. A real full filesystem (a
64 KB tmpfs), not a simulated error; skipped where mounting is not permitted (not root, or no CAP_SYS_ADMIN)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


@pytest.fixture()
def tiny_fs():
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    d = Path(tempfile.mkdtemp(prefix="edgefold-tinyfs-"))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        d.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False)
        d.rmdir()


def test_compress_onto_a_full_disk_is_one_line(tiny_fs):
    out = tiny_fs / "out"
    r = subprocess.run([sys.executable, "-m", "edgefold", "compress", "--model", "dscnn", "--method", "mag1",
                        "--ratio", "0.25", "--repair", "none", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1 and "No space left on device" in errors[0], r.stderr[-2000:]
    left = sorted(p.name for p in out.rglob("*")) if out.exists() else []
    assert "model.pt" not in left and not [n for n in left if n.endswith(".tmp")], left
