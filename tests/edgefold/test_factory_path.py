"""`--factory module:callable` finds a module in the current folder from the `edgefold` console script, as
`python -m edgefold` does (the script's own import path starts with its bin folder, not the current folder)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

NET = """from torch import nn


def build():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
"""


def test_console_script_imports_a_factory_from_the_current_folder(tmp_path):
    script = Path(sys.executable).parent / "edgefold"
    if not script.is_file():
        pytest.skip("the edgefold console script is not installed in this environment")
    (tmp_path / "my_local_net.py").write_text(NET)
    r = subprocess.run([str(script), "export", "--factory", "my_local_net:build", "--input-shape", "1,1,8,8",
                        "--format", "onnx", "--no-check", "--out", "out"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "model.onnx").is_file()


def test_import_factory_puts_the_current_folder_first(tmp_path, monkeypatch):
    from edgefold.compiler.checkpoint import import_factory

    (tmp_path / "my_other_net.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    fn = import_factory("my_other_net:build")
    assert callable(fn) and sys.path[0] == str(tmp_path)
    monkeypatch.delitem(sys.modules, "my_other_net")
