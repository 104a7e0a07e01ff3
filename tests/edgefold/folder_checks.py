"""What the all-or-nothing tests compare: a folder's entries and contents, and the processes that refer to it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under root: relative path -> 'dir' or the file's sha256 (symlinks by target)."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if rel == "tmp" or rel.startswith("tmp/"):
            continue
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def processes_mentioning(text: str) -> list[str]:
    """Processes whose command line or environment holds `text` (a case's folder: its TMPDIR is in the env of
    anything it started, and its paths in their command lines)."""
    found = []
    me = os.getpid()
    needle = text.encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        for what in ("cmdline", "environ"):
            try:
                if needle in (d / what).read_bytes():
                    cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ")[:200]
                    found.append(f"{d.name}: {cmd!r}")
                    break
            except OSError:
                continue
    return found
