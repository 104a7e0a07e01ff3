"""`edgefold export --format arduino-library,c-package --prefix NAME` and `edgefold codegen --prefix NAME` from the
command line: the packages appear next to the .tflite they are made from; bad requests fail before any work."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

TINY = Path(__file__).resolve().parents[1] / "targets" / "data" / "tiny_int8.tflite"


def test_export_packages(cli, tmp_path):
    out = tmp_path / "e"
    rc, stdout, err = cli("export", "--model", "dscnn", "--format", "arduino-library,c-package", "--prefix", "kws",
                          "--no-check", "--out", out)
    assert rc == 0, err
    assert (out / "model_int8.tflite").is_file()  # what the packages are made from
    lib = out / "arduino" / "kws_model"
    assert (lib / "library.properties").is_file() and (lib / "src" / "kws_model.h").is_file()
    assert (lib / "examples" / "run_model" / "run_model.ino").is_file()
    with zipfile.ZipFile(out / "arduino" / "kws_model.zip") as z:
        assert "kws_model/library.properties" in z.namelist()
    c = out / "c" / "kws_model"
    assert (c / "CMakeLists.txt").is_file() and (c / "include" / "kws_model.h").is_file()
    man = json.loads((c / "model.json").read_text())
    assert man["symbols"]["run"] == "kws_model_run" and man["ops"]
    check = json.loads((out / "check.json").read_text())
    assert check["target_backend"] == "edgefold" and set(check["packages"]) == {"arduino-library", "c-package"}
    assert "arduino-library:" in stdout and "kws_model.zip" in stdout


def test_export_rejects_bad_format_and_prefix_before_work(cli, tmp_path):
    rc, _, err = cli("export", "--model", "dscnn", "--format", "arduino", "--out", tmp_path / "a")
    assert rc != 0 and "arduino-library" in err and not (tmp_path / "a").exists()
    rc, _, err = cli("export", "--model", "dscnn", "--format", "c-package", "--prefix", "9x", "--out", tmp_path / "b")
    assert rc != 0 and "--prefix" in err and not (tmp_path / "b").exists()


def test_codegen_prefix(cli, tmp_path):
    rc, _, err = cli("codegen", "--from", TINY, "--prefix", "vision_", "--out", tmp_path)
    assert rc == 0, err
    h = (tmp_path / "vision_model.h").read_text()
    assert "int vision_model_run(" in h and "#define VISION_OUTPUT_BYTES 3" in h
    assert '#include "vision_model.h"' in (tmp_path / "vision_model.c").read_text()
    assert not (tmp_path / "model.h").exists()


def test_a_failed_package_leaves_no_export_behind(cli, tmp_path, monkeypatch):
    from edgefold.compiler.codegen import package

    from edgefold.core.errors import EdgefoldError

    def fail(*_a, **_k):
        raise EdgefoldError("no kernel for this op")

    monkeypatch.setattr(package, "make_package", fail)
    out = tmp_path / "e"
    rc, _, err = cli("export", "--model", "dscnn", "--format", "c-package", "--no-check", "--out", out)
    assert rc != 0 and "no kernel for this op" in err
    assert not [p for p in out.rglob("*") if p.is_file()]  # not even the .tflite it was made from
