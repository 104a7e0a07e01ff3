"""Checks shared by the report tests: a PNG is not blank, the HTML needs nothing external, and a real headless
Chromium renders the page (a screenshot)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest


def png_is_non_trivial(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.stat().st_size > 5000
    img = mpimg.imread(path)[..., :3]
    assert img.shape[0] > 200 and img.shape[1] > 200
    non_white = (img < 0.9).any(axis=-1).mean()
    assert 0.01 < non_white < 0.9, f"screenshot looks blank or solid ({non_white:.3f} non-white)"
    assert float(np.std(img)) > 0.05


def screenshot(html: Path, out_png: Path, tmp: Path) -> None:
    """Load the page in a real headless Chromium and write a screenshot."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed (tools/install-debian.sh installs the Debian package `chromium`)")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'chrome'}",
           f"--screenshot={out_png}", "--window-size=1200,900", html.resolve().as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and out_png.exists(), p.stderr[-2000:]


def check_html_self_contained(text: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", text), "the page refers to an external asset"
    assert "<script" not in text and "<link" not in text
