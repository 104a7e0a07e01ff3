"""The wheel is the product: build it, install it into a fresh venv outside the checkout, and from a folder
outside the checkout list the commands, import every module and deploy resnet8 to the QEMU twin.

Dependencies are not installed again (torch alone is gigabytes): after the wheel goes in, a .pth file in the
new venv's site-packages names this venv's site-packages folder. Python appends that folder to sys.path as a
plain path, without processing the .pth files inside it, so the editable install's import hook stays off and
`edgefold` can only come from the wheel (the new venv's own site-packages is also searched first). The .pth is
written after `pip install`, so pip never sees the editable edgefold as an installation to replace.

Run alone with `make wheel-check`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

import pytest

from edgefold.cli import COMMANDS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.wheel


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    what = " ".join(map(str, cmd))
    assert p.returncode == 0, f"{what} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def _product_tree() -> dict[str, Path]:
    """Import package -> checkout folder, as pyproject.toml maps them."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {pkg: ROOT / folder for pkg, folder in conf["package-dir"].items()}


def _copy_sources(dst: Path) -> None:
    """What the build reads (pyproject.toml, the readme, the mapped folders), without build leftovers: building
    in the checkout would reuse a stale build/ folder and write egg-info there."""
    dst.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", dst)
    shutil.copy2(ROOT / "README.md", dst)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in {p.relative_to(ROOT) for p in _product_tree().values()}:
        shutil.copytree(ROOT / folder, dst / folder, ignore=skip)


@pytest.fixture(scope="module")
def wheel_env():
    """(wheel path, venv bin folder, a work folder outside the checkout); all removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="edgefold-wheel-")).resolve()
    try:
        assert ROOT not in tmp.parents, f"temp folder {tmp} is inside the checkout"
        _copy_sources(tmp / "src")
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
              "-w", tmp / "dist", tmp / "src"], cwd=tmp)
        (whl,) = (tmp / "dist").glob("edgefold-*.whl")
        venv = tmp / "venv"
        _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
        py = venv / "bin" / "python"
        _run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index", "-q", whl], cwd=tmp)
        site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=tmp).strip())
        deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
        (site / "edgefold-test-deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
        work = tmp / "work"
        work.mkdir()
        yield whl, venv / "bin", work
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_wheel_holds_every_module_and_firmware_source(wheel_env):
    whl, _, _ = wheel_env
    names = set(zipfile.ZipFile(whl).namelist())
    missing = []
    for pkg, folder in _product_tree().items():
        for f in folder.rglob("*"):
            if not f.is_file() or "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            if pkg != "edgefold.firmware" and f.suffix != ".py":
                continue  # only firmware/ ships non-Python files
            inside = f"{pkg.replace('.', '/')}/{f.relative_to(folder).as_posix()}"
            if inside not in names:
                missing.append(inside)
    assert not missing, f"not in the wheel (pyproject packages / package-data): {missing}"
    assert "edgefold/firmware/runtime/ef_runtime.h" in names and "edgefold/targets/jetson_runner.py" in names
    assert not [n for n in names if n.startswith(("sweeplib/", "edgefold/sweep/", "benchmarks/", "tests/"))]


def test_installed_wheel_runs_outside_the_checkout(wheel_env):
    _, bin_dir, work = wheel_env
    env = _env(bin_dir)
    venv = bin_dir.parent
    # edgefold and its firmware come from the venv, not from the checkout
    where = _run([bin_dir / "python", "-c", "import edgefold; from edgefold.core.resources import firmware_dir, "
                  "resource_path; print(edgefold.__file__); print(firmware_dir()); "
                  "print(resource_path('edgefold.targets', 'jetson_runner.py'))"], cwd=work, env=env)
    for line in where.split():
        assert Path(line).is_relative_to(venv), where
    # every module of the installed package imports there (__main__ would run the CLI)
    _run([bin_dir / "python", "-c", "import importlib, pkgutil, edgefold\n"
          "for m in pkgutil.walk_packages(edgefold.__path__, 'edgefold.'):\n"
          "    if not m.name.endswith('.__main__'):\n"
          "        importlib.import_module(m.name)"], cwd=work, env=env)
    helptext = _run([bin_dir / "edgefold", "--help"], cwd=work, env=env)
    assert [c for c in COMMANDS if not re.search(rf"^ +{c} ", helptext, re.M)] == [], helptext
    _run([bin_dir / "edgefold", "deploy", "--target", "nano33ble-qemu", "--model", "resnet8", "--method", "fold",
          "--ratio", "0.5", "--repair", "none", "--runs", "1", "--warmup", "0", "--out", "run"], cwd=work, env=env)
    r = json.loads((work / "run" / "result.json").read_text())
    assert r["target"] == "nano33ble-qemu" and r["output_crc_match"] is True
    assert (work / "run" / "build" / "firmware.elf").is_file()
