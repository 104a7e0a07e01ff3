"""Bad input, every sub-command: each case runs the real `edgefold` entry point in a subprocess and must end with a
non-zero exit, exactly one line on stderr naming the problem, no traceback, every file in its folder byte-identical
to before (output folders hold an earlier good result), nothing new in its TMPDIR and no process left that mentions
its folder. Every case fails in validation, before any work: a second or two each."""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from folder_checks import processes_mentioning, snapshot

SEC = 60  # no case may take longer: they all fail before any work


@pytest.fixture(scope="session")
def world(trained, tmp_path_factory) -> Path:
    """Earlier good results the cases point at: a checkpoint, a compress folder, a deploy run folder (jetson kind:
    compress/ + build-input/ with model.onnx), and a few bad files."""
    from edgefold import api
    from edgefold.core.artifacts import DeployResult
    from edgefold.pipeline import prepare_build_input

    root = tmp_path_factory.mktemp("bad-inputs-world")
    shutil.copyfile(trained("dscnn"), root / "ckpt.pt")
    model = api.ModelRequest(model="dscnn", weights=str(root / "ckpt.pt"))
    comp = api.compress_to_dir(api.CompressRequest(model, out=root / "good", ratio=0.5, repair="none"))
    run = root / "run"
    shutil.copytree(root / "good", run / "compress")
    prepare_build_input(comp.model, (1, 1, 49, 10), "linux", "onnxruntime", run / "build-input", None, "dscnn")
    DeployResult(target="jetson-local", latency={"value": 1.0, "unit": "ms", "kind": "measured"}, backend="onnxruntime",
                 config={"runs": 3, "warmup": 1, "backend": "onnxruntime"}).write(run / "result.json")
    ckpt = (root / "ckpt.pt").read_bytes()
    (root / "truncated.pt").write_bytes(ckpt[: len(ckpt) // 2])
    (root / "garbage.tflite").write_bytes(random.Random(0).randbytes(512))
    (root / "afile").write_text("not a folder\n")
    (root / "empty").mkdir()
    (root / "keyfile").write_text("unused\n")
    (root / "bad_shape.npy").write_bytes(_npy_bytes())
    return root


def _npy_bytes() -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 3, 5, 5), dtype=np.float32))  # dscnn takes 1 x 1 x 49 x 10 inputs
    return buf.getvalue()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


Q = ["--target", "nano33ble-qemu", "--model", "dscnn", "--weights", "ckpt.pt", "--out", "run"]  # deploy, valid so far
J = ["--target", "jetson-local", "--model", "dscnn", "--weights", "ckpt.pt", "--out", "run"]
NANO_SSH = ["--target", "jetson-nano", "--model", "dscnn", "--weights", "ckpt.pt", "--out", "run",
            "--option", "host=127.0.0.1", "--option", "user=nobody", "--option", "key=keyfile",
            "--option", "known_hosts=keyfile"]
C = ["compress", "--model", "dscnn", "--weights", "ckpt.pt", "--out", "good"]

CASES: list[tuple[str, list[str], str]] = [
    # top level
    ("unknown-command", ["frobnicate"], r"invalid choice"),
    ("zoo-extra-argument", ["zoo", "extra"], r"unrecognized arguments: extra"),
    ("targets-unknown-flag", ["targets", "--bogus"], r"unrecognized arguments: --bogus"),
    # train
    ("train-negative-lr", ["train", "--model", "dscnn", "--lr", "-1", "--out", "good/m.pt"], r"--lr must be"),
    ("train-nan-lr", ["train", "--model", "dscnn", "--lr", "nan", "--out", "good/m.pt"], r"--lr must be"),
    ("train-zero-epochs", ["train", "--model", "dscnn", "--epochs", "0", "--out", "good/m.pt"], r"--epochs"),
    ("train-negative-weight-decay", ["train", "--model", "dscnn", "--weight-decay", "-0.1", "--out", "good/m.pt"],
     r"--weight-decay"),
    ("train-unknown-model", ["train", "--model", "nosuchnet", "--out", "good/m.pt"], r"unknown model 'nosuchnet'"),
    ("train-no-model", ["train", "--out", "good/m.pt"], r"--model NAME .* or --factory"),
    ("train-out-is-folder", ["train", "--model", "dscnn", "--out", "good"], r"is a folder"),
    ("train-unknown-optimizer", ["train", "--model", "dscnn", "--optimizer", "rmsprop", "--out", "good/m.pt"],
     r"invalid choice: 'rmsprop'"),
    # compress
    ("compress-ratio-too-big", [*C, "--ratio", "1.5"], r"--ratio.*\[0, 1\)"),
    ("compress-unknown-method", [*C, "--method", "prune"], r"unknown method 'prune'"),
    ("compress-missing-weights", ["compress", "--model", "dscnn", "--weights", "nope.pt", "--out", "good"],
     r"not found"),
    ("compress-truncated-weights", ["compress", "--model", "dscnn", "--weights", "truncated.pt", "--out", "good"],
     r"not a readable torch file"),
    ("compress-out-under-a-file", ["compress", "--model", "dscnn", "--weights", "ckpt.pt", "--out", "afile/x"],
     r"afile is not a folder"),
    ("compress-out-is-a-file", ["compress", "--model", "dscnn", "--weights", "ckpt.pt", "--out", "afile"],
     r"exists and is not a folder"),
    ("compress-calib-and-data", [*C, "--calib", "bad_shape.npy", "--data", "digits"], r"either --calib or --data"),
    ("compress-data-wrong-shape", [*C, "--repair", "repair", "--data", "bad_shape.npy"], r"bad_shape\.npy"),
    ("compress-recover-epochs-zero", [*C, "--recover", "--recover-epochs", "0"], r"--recover-epochs"),
    ("compress-limit-without-fit", [*C, "--max-flash", "10"], r"--fit"),
    ("compress-fit-unknown-target", [*C, "--fit", "--target", "nano99"], r"unknown target 'nano99'"),
    ("compress-keep-failed-is-out", [*C, "--keep-failed", "good"], r"--keep-failed"),
    # export
    ("export-from-missing", ["export", "--from", "nope", "--out", "good"], r"--from folder not found"),
    ("export-unknown-format", ["export", "--from", "good", "--format", "pdf", "--out", "good"],
     r"unknown format 'pdf'"),
    ("export-from-and-weights", ["export", "--from", "good", "--weights", "ckpt.pt", "--out", "good"],
     r"either --weights or --from"),
    ("export-from-without-model", ["export", "--from", "empty", "--out", "good"], r"has no model\.pt"),
    ("export-data-free-and-data", ["export", "--from", "good", "--data-free", "--data", "digits", "--out", "good"],
     r"--data-free"),
    # codegen
    ("codegen-missing-tflite", ["codegen", "--from", "nope.tflite", "--out", "good"], r"nope\.tflite not found"),
    ("codegen-not-a-tflite", ["codegen", "--from", "garbage.tflite", "--out", "good"], r"\.tflite"),
    ("codegen-out-under-a-file", ["codegen", "--from", "garbage.tflite", "--out", "afile/x"], r"not a folder"),
    # finetune
    ("finetune-from-not-compress", ["finetune", "--from", "empty", "--out", "good"],
     r"needs model\.pt and compress\.json"),
    ("finetune-recover-epochs-zero", ["finetune", "--from", "good", "--recover-epochs", "0", "--out", "good"],
     r"--recover-epochs"),
    ("finetune-negative-time", ["finetune", "--from", "good", "--recover-time", "-1", "--out", "good"],
     r"positive number"),
    # deploy: flags
    ("deploy-unknown-target", ["deploy", *Q, "--target", "nano99"], r"unknown target 'nano99'"),
    ("deploy-negative-timeout", ["deploy", *Q, "--timeout", "-5"], r"--timeout must be a positive"),
    ("deploy-zero-runs", ["deploy", *Q, "--runs", "0"], r"--runs must be >= 1"),
    ("deploy-negative-warmup", ["deploy", *Q, "--warmup", "-1"], r"--warmup must be >= 0"),
    ("deploy-ratio-text", ["deploy", *Q, "--ratio", "half"], r"--ratio"),
    ("deploy-option-not-key-value", ["deploy", *Q, "--option", "cpi"], r"KEY=VALUE"),
    ("deploy-option-bad-number", ["deploy", *Q, "--option", "cpi=abc"], r"option cpi must be a number"),
    ("deploy-option-negative", ["deploy", *Q, "--option", "cpi=-1"], r"option cpi must be > 0"),
    ("deploy-option-unknown-mcu", ["deploy", *Q, "--option", "colour=red"], r"unknown option\(s\) colour"),
    ("deploy-option-unknown-board", ["deploy", *Q, "--target", "esp-eye", "--option", "cpi=1.2"],
     r"esp-eye: unknown option\(s\) cpi"),
    ("deploy-option-bad-choice", ["deploy", *Q, "--target", "nano33ble", "--option", "upload=ftp"],
     r"option upload must be one of pio, bossac"),
    ("deploy-option-unknown-jetson", ["deploy", *J, "--option", "hots=x"], r"unknown option\(s\) hots"),
    ("deploy-option-jetson-port-text", ["deploy", *J, "--option", "port=ssh"], r"option port must be an integer"),
    ("deploy-backend-not-on-target", ["deploy", *J, "--backend", "edgefold"], r"not edgefold"),
    ("deploy-fault-on-jetson", ["deploy", *J, "--fault", "kill"], r"--fault"),
    ("deploy-out-under-a-file", ["deploy", *Q, "--out", "afile/run"], r"afile is not a folder"),
    ("deploy-truncated-weights", ["deploy", *Q, "--weights", "truncated.pt"], r"not a readable torch file"),
    ("deploy-unknown-model", ["deploy", *Q, "--model", "nosuchnet"], r"unknown model"),
    # deploy: preconditions of the device, checked before compress
    ("deploy-serial-port-absent", ["deploy", *Q, "--target", "nano33ble", "--option", "offline=false",
                                   "--port", "/dev/edgefold-no-such-tty"], r"serial port .* does not exist"),
    ("deploy-ssh-host-refuses", [*(["deploy", *NANO_SSH]), "--option", "port=@PORT@"],
     r"127\.0\.0\.1:\d+ does not accept SSH connections"),
    ("deploy-ssh-no-host", ["deploy", "--target", "jetson-nano", "--model", "dscnn", "--weights", "ckpt.pt",
                            "--out", "run"], r"set host and user"),
    ("deploy-ssh-key-missing", ["deploy", *NANO_SSH, "--option", "key=nokey"], r"key file .*nokey not found"),
    # bench
    ("bench-zero-runs", ["bench", "--target", "jetson-local", "--from", "run", "--runs", "0"], r"--runs must be >= 1"),
    ("bench-not-a-deploy-folder", ["bench", "--target", "jetson-local", "--from", "good"],
     r"not an edgefold deploy folder"),
    ("bench-wrong-kind", ["bench", "--target", "nano33ble-qemu", "--from", "run"], r"no model_int8\.tflite"),
    ("bench-zero-timeout", ["bench", "--target", "jetson-local", "--from", "run", "--timeout", "0"],
     r"--timeout must be a positive"),
    ("bench-option-unknown", ["bench", "--target", "jetson-local", "--from", "run", "--option", "cpi=1"],
     r"unknown option\(s\) cpi"),
    # hil, report
    ("hil-missing-matrix", ["hil", "--matrix", "none.toml", "--out", "good"], r"none\.toml not found"),
    ("hil-zero-jobs", ["hil", "--matrix", "none.toml", "--out", "good", "--jobs", "0"], r"--jobs must be"),
    ("report-missing-input", ["report", "nothing-here", "--out", "good"], r"nothing-here not found"),
]
CASES.append(("deploy-platformio-platform-missing", ["deploy", *Q, "--target", "nano33ble"],
              r"PlatformIO platform 'nordicnrf52' is not installed|PlatformIO not found"))  # PLATFORMIO_CORE_DIR empty
if shutil.which("trtexec") is None and not os.path.exists("/usr/src/tensorrt/bin/trtexec"):
    CASES.append(("deploy-tensorrt-without-trtexec", ["deploy", *J, "--backend", "tensorrt"], r"trtexec"))


def _esp_eye_attached() -> bool:
    try:
        from edgefold.targets import usb

        return bool(usb.find("esp-eye"))
    except Exception:  # noqa: BLE001 - no serial subsystem: nothing attached
        return False


if not _esp_eye_attached():
    CASES.append(("deploy-board-not-attached", ["deploy", *Q, "--target", "esp-eye", "--option", "offline=false"],
                  r"no esp-eye attached \(looked for USB 10c4:ea60\)"))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(world, tmp_path, case):
    name, argv, pattern = case
    work = tmp_path / "w"
    shutil.copytree(world, work, symlinks=True)
    (work / "tmp").mkdir()
    port = str(_closed_port())
    argv = [a.replace("@PORT@", port) for a in argv]
    env = {**os.environ, "TMPDIR": str(work / "tmp"), "COLUMNS": "200", "NO_COLOR": "1",
           "EDGEFOLD_TARGETS_TOML": str(work / "no-targets.toml"), "PYTHONWARNINGS": "ignore",
           "PLATFORMIO_CORE_DIR": str(work / "no-platformio")}
    before = snapshot(work)
    r = subprocess.run([sys.executable, "-m", "edgefold", *argv], cwd=work, env=env, capture_output=True, text=True,
                       timeout=SEC, stdin=subprocess.DEVNULL)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode not in (0, 1), f"{name}: exit {r.returncode} (1 is an uncaught exception)\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1, f"{name}: stderr has {len(lines)} lines:\n{r.stderr}"
    assert re.search(pattern, lines[0]), f"{name}: {lines[0]!r} does not match {pattern!r}"
    assert lines[0].startswith("edgefold"), lines[0]
    assert snapshot(work) == before, f"{name}: files changed"
    assert not any((work / "tmp").iterdir()), f"{name}: left {list((work / 'tmp').iterdir())}"
    assert processes_mentioning(str(work)) == []
