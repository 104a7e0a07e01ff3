"""Run mypy on the modules listed under [tool.mypy] in pyproject.toml; exit non-zero on any error.

mypy resolves imports from folders, and it cannot follow the package-dir mapping (edgefold.compiler is
compiler/, edgefold.targets is targets/, see pyproject.toml) nor the import hook of an editable install. So
this script first lays out the installed package as links under .cache/typecheck/edgefold (each entry of
edgefold/ plus compiler/, targets/ and firmware/ under their installed names), mypy_path points there, and the
file names in mypy's report are mapped back to the checkout's.

    .venv/bin/python tools/typecheck.py          # what `make typecheck` and `make test` run
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".cache" / "typecheck"
MAPPED = {"compiler": "compiler", "targets": "targets", "firmware": "firmware"}  # edgefold.<name> -> folder


def link_tree() -> Path:
    """(Re)build .cache/typecheck/edgefold as links to the checkout; returns the package folder."""
    pkg = TREE / "edgefold"
    if TREE.exists():
        shutil.rmtree(TREE)
    pkg.mkdir(parents=True)
    for entry in sorted((ROOT / "edgefold").iterdir()):
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for name, folder in MAPPED.items():
        (pkg / name).symlink_to(ROOT / folder)
    return pkg


def main() -> int:
    pkg = link_tree()
    p = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
                       cwd=ROOT, capture_output=True, text=True)
    out = p.stdout + p.stderr
    # name the checkout's files: .cache/typecheck/edgefold/compiler/x.py -> compiler/x.py
    for name, folder in MAPPED.items():
        out = out.replace(f"{pkg.relative_to(ROOT)}{os.sep}{name}{os.sep}", f"{folder}{os.sep}")
    out = out.replace(f"{pkg.relative_to(ROOT)}{os.sep}", f"edgefold{os.sep}")
    sys.stdout.write(out)
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
