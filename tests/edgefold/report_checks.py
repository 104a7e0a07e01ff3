"""Checks shared by the report tests: a PNG is not blank, the HTML needs nothing external, and a real headless
Chromium renders the page (a screenshot)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser
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


def _chromium(tmp: Path) -> list[str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed (tools/install-debian.sh installs the Debian package `chromium`)")
    return [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'chrome'}"]


def dump_dom(html: Path, tmp: Path) -> str:
    """The DOM as headless Chromium built it from the page (what the browser shows, not the file's text)."""
    p = subprocess.run(_chromium(tmp) + ["--dump-dom", html.resolve().as_uri()], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0 and "<body" in p.stdout, p.stderr[-2000:]
    return p.stdout


class _Dom(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.imgs: list[dict[str, str | None]] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "img":
            self.imgs.append(a)
        self.refs += [str(a[k]) for k in ("src", "href") if a.get(k)]


def parse_dom(dom: str) -> _Dom:
    d = _Dom()
    d.feed(dom)
    return d


def check_images_load(d: _Dom) -> None:
    """Every <img> is an inline PNG that decodes to a real picture; nothing refers to a file or the network."""
    import io

    import matplotlib.image as mpimg

    assert d.imgs, "no images in the page"
    for a in d.imgs:
        src = a.get("src") or ""
        assert src.startswith("data:image/png;base64,"), f"broken or external image reference: {src[:80]}"
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n", f"image {a.get('alt')} is not a PNG"
        img = mpimg.imread(io.BytesIO(png), format="png")
        assert img.shape[0] > 100 and img.shape[1] > 100, a.get("alt")
    assert all(r.startswith(("data:", "#")) for r in d.refs), [r[:80] for r in d.refs if not r.startswith("data:")]
