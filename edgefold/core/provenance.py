"""Where a result comes from: the date, the edgefold version and the git commit, recorded with every HIL run and
report so that a number in a trend can be traced to the code that produced it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any


def edgefold_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("edgefold")
    except metadata.PackageNotFoundError:  # run from a checkout without installing it
        return "unknown"


def git_commit(where: str | os.PathLike | None = None) -> dict[str, Any]:
    """{"commit": full hash or None, "dirty": bool or None} of the git work tree at `where` (default: the current
    folder). CI checkouts without .git (or without git) fall back to GITHUB_SHA / CI_COMMIT_SHA."""
    git = shutil.which("git")
    cwd = Path(where) if where is not None else Path.cwd()
    if git:
        try:
            head = subprocess.run([git, "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
            if head.returncode == 0:
                st = subprocess.run([git, "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                    capture_output=True, text=True, timeout=30)
                return {"commit": head.stdout.strip(), "dirty": bool(st.stdout.strip()) if st.returncode == 0
                        else None}
        except (OSError, subprocess.TimeoutExpired):
            pass
    env = os.environ.get("GITHUB_SHA") or os.environ.get("CI_COMMIT_SHA")
    return {"commit": env or None, "dirty": None}


def provenance(where: str | os.PathLike | None = None) -> dict[str, Any]:
    """date (UTC, ISO 8601), edgefold version, git commit (and whether the work tree had local changes)."""
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "edgefold_version": edgefold_version(),
            **git_commit(where)}


def short_commit(p: dict[str, Any] | None) -> str:
    """'1a2b3c4d5e6f' (+ '-dirty'), or '–' when unknown."""
    c = (p or {}).get("commit")
    if not c:
        return "–"
    return str(c)[:12] + ("-dirty" if (p or {}).get("dirty") else "")
