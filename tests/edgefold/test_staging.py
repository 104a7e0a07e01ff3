"""All-or-nothing output folders (edgefold.core.fsutil.staged_output) and the commands built on it: a failed or
interrupted command leaves its output folder byte-identical and no temporary sibling; --keep-failed keeps the
failed stages only where it says."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from folder_checks import snapshot

from edgefold.core.errors import DeviceError, EdgefoldError
from edgefold.core.fsutil import STAGE_MARK, staged_output


def _earlier(dest: Path) -> dict[str, str]:
    """An earlier good result in dest; returns its snapshot."""
    (dest / "compress").mkdir(parents=True)
    (dest / "compress" / "model.pt").write_bytes(b"earlier model" * 100)
    (dest / "result.json").write_text('{"earlier": true}\n')
    (dest / "notes.txt").write_text("the user's own file\n")
    return snapshot(dest.parent)


def _siblings(dest: Path) -> list[Path]:
    return sorted(dest.parent.glob(f".{dest.name}{STAGE_MARK}*"))


def test_success_replaces_the_folder_and_keeps_what_is_not_replaced(tmp_path):
    dest = tmp_path / "run"
    _earlier(dest)
    with staged_output(dest, replace=("compress", "result.json")) as stage:
        assert not (stage / "compress").exists() and (stage / "notes.txt").is_file()
        assert (dest / "result.json").read_text() == '{"earlier": true}\n'  # untouched while the work runs
        (stage / "result.json").write_text("new\n")
    assert (dest / "result.json").read_text() == "new\n" and (dest / "notes.txt").is_file()
    assert not (dest / "compress").exists() and _siblings(dest) == []


@pytest.mark.parametrize("exc", [EdgefoldError("no"), KeyboardInterrupt(), RuntimeError("bug")])
def test_failure_leaves_the_folder_byte_identical(tmp_path, exc):
    dest = tmp_path / "run"
    before = _earlier(dest)
    with pytest.raises(type(exc)), staged_output(dest, replace=("compress",)) as stage:
        (stage / "result.json").write_text("half\n")
        (stage / "compress").mkdir()
        raise exc
    assert snapshot(tmp_path) == before and _siblings(dest) == []


def test_failure_creates_no_folder(tmp_path):
    dest = tmp_path / "a" / "b" / "run"
    with pytest.raises(EdgefoldError), staged_output(dest) as stage:
        (stage / "x").write_text("x")
        raise EdgefoldError("no")
    assert list(tmp_path.iterdir()) == []


def test_keep_failed_moves_the_stage_and_says_where(tmp_path):
    dest, keep = tmp_path / "run", tmp_path / "failed"
    before = _earlier(dest)
    with pytest.raises(EdgefoldError) as e, staged_output(dest, keep_failed=keep) as stage:
        (stage / "result.json").write_text("half\n")
        raise EdgefoldError("device vanished")
    kept = list(keep.iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("run-") and (kept[0] / "result.json").read_text() == "half\n"
    assert str(kept[0]) in str(e.value) and "device vanished" in str(e.value)
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("failed")} == before
    assert _siblings(dest) == []


def test_stage_of_a_killed_process_is_removed_by_the_next_run(tmp_path):
    dest = tmp_path / "run"
    dest.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".run{STAGE_MARK}{dead.pid}-deadbeef"
    (stale / "build").mkdir(parents=True)
    with staged_output(dest):
        pass
    assert not stale.exists() and _siblings(dest) == []


def test_a_linked_output_folder_stays_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with staged_output(tmp_path / "link") as stage:
        (stage / "x").write_text("x")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "real" / "x").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_output_under_a_file_is_refused_before_staging(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(EdgefoldError, match="not a folder"), staged_output(tmp_path / "f" / "run"):
        pass


# ---------------------------------------------------------------------------------------------- the commands


@pytest.fixture(scope="module")
def jetson_run(trained, tmp_path_factory) -> Path:
    """A deploy folder of the Jetson kind (compress/, build-input/ with model.onnx), made by the library calls
    deploy makes, without a device."""
    from edgefold import api
    from edgefold.core.artifacts import DeployResult
    from edgefold.pipeline import prepare_build_input

    root = tmp_path_factory.mktemp("jetson-run")
    model = api.ModelRequest(model="dscnn", weights=str(trained("dscnn")))
    comp = api.compress_to_dir(api.CompressRequest(model, out=root / "run" / "compress", ratio=0.5, repair="none"))
    prepare_build_input(comp.model, (1, 1, 49, 10), "linux", "onnxruntime", root / "run" / "build-input", None,
                        "dscnn")
    DeployResult(target="jetson-local", latency={"value": 1.0, "unit": "ms", "kind": "measured"}, backend="onnxruntime",
                 config={"runs": 3, "warmup": 1, "backend": "onnxruntime"}).write(root / "run" / "result.json")
    return root / "run"


def test_deploy_failing_late_leaves_the_earlier_run(trained, tmp_path, monkeypatch):
    """Compress and export finish, then the build fails (as a fit check or a device would): the earlier run's
    compress/model.pt and result.json stay, and --keep-failed holds the stages that finished."""
    from edgefold.targets.jetson import JetsonLocalTarget

    from edgefold.api import DeployConfig, deploy

    def fail(self, *a, **k):
        raise DeviceError("board unplugged during the build")

    monkeypatch.setattr(JetsonLocalTarget, "build", fail)
    dest = tmp_path / "run"
    before = _earlier(dest)
    cfg = DeployConfig(target="jetson-local", out=dest, model="dscnn", weights=str(trained("dscnn")),
                       method="mag1", ratio=0.25, repair="none", runs=2, keep_failed=tmp_path / "failed")
    with pytest.raises(DeviceError, match="unplugged"):
        deploy(cfg)
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("failed")} == before
    kept = next((tmp_path / "failed").iterdir())
    assert (kept / "compress" / "model.pt").is_file() and (kept / "build-input" / "model.onnx").is_file()
    assert (kept / "notes.txt").is_file() and not (kept / "result.json").exists()
    assert _siblings(dest) == []


def test_failed_bench_keeps_result_and_history(jetson_run, tmp_path, monkeypatch):
    from edgefold.targets.jetson import JetsonLocalTarget

    from edgefold.api import bench

    run = tmp_path / "run"
    shutil.copytree(jetson_run, run)
    (run / "history.jsonl").write_text('{"older": 1}\n')
    before = snapshot(tmp_path)

    def fail(self, build, port=None):
        assert Path(build.artifact).is_dir()  # the build ran, into the staging folder
        raise DeviceError("ssh refused")

    monkeypatch.setattr(JetsonLocalTarget, "flash", fail)
    with pytest.raises(DeviceError, match="ssh refused"):
        bench("jetson-local", run, runs=2)
    assert snapshot(tmp_path) == before and _siblings(run) == []


def test_bench_on_the_jetson_twin_twice(jetson_run, tmp_path):
    """The crash of issue #11: bench re-read a Linux deploy's record (codegen null) and died after measuring."""
    run = tmp_path / "run"
    shutil.copytree(jetson_run, run)
    for i in (1, 2):
        r = subprocess.run([sys.executable, "-m", "edgefold", "bench", "--target", "jetson-local", "--from", str(run),
                            "--runs", "2"], capture_output=True, text=True, timeout=300,
                           env={**os.environ, "COLUMNS": "200"})
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        res = json.loads((run / "result.json").read_text())
        assert res["target"] == "jetson-local" and res["codegen"] is None and res["latency"]["runs"] == 2
        assert res["output_crc_match"] is True and str(tmp_path) in res["config"]["out"]
        assert STAGE_MARK not in json.dumps(res)  # no path into the staging folder survives
        assert len((run / "history.jsonl").read_text().splitlines()) == i
    assert _siblings(run) == []


@pytest.mark.parametrize("sig, rc, said, when", [(signal.SIGINT, 130, "interrupted", "compress"),
                                                 (signal.SIGTERM, 143, "terminated", "compress"),
                                                 (signal.SIGINT, 130, "interrupted", "twin")])
def test_ctrl_c_during_deploy_leaves_the_earlier_run(trained, tmp_path, request, sig, rc, said, when):
    """A real SIGINT (Ctrl-C) or SIGTERM (a CI runner or `hil` stopping it), sent once the deploy is working in its
    staging folder (compress/ done), or once it has started the SSH twin (its folder exists): the earlier run, the
    temp folder and the accounts are as they were."""
    dest = tmp_path / "run"
    before = _earlier(dest)
    # the deploy's temp folder, checked empty afterwards; outside pytest's 0700 tree, so that if the signal lands only
    # once the sshd twin starts (a loaded machine), the twin's account can still read its config there
    tmp = Path(tempfile.mkdtemp(prefix="edgefold-test-tmp-"))
    tmp.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(tmp, ignore_errors=True))
    env = {**os.environ, "TMPDIR": str(tmp), "COLUMNS": "200"}
    p = subprocess.Popen([sys.executable, "-m", "edgefold", "deploy", "--target", "jetson-local", "--model", "dscnn",
                          "--weights", str(trained("dscnn")), "--method", "mag1", "--ratio", "0.25", "--repair",
                          "none", "--out", str(dest)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=env, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and p.poll() is None:
        if when == "compress" and any((s / "compress" / "compress.json").is_file() for s in _siblings(dest)):
            break
        if when == "twin" and any(tmp.glob("edgefold-sshd-*/sshd_config")):
            break
        time.sleep(0.05)
    assert p.poll() is None, "deploy ended before it could be interrupted"
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == rc and said in err and "Traceback" not in err, err
    assert snapshot(tmp_path) == before and _siblings(dest) == []
    assert list(tmp.iterdir()) == []
    assert _twin_accounts(p.pid) == set()  # the deploy's own (other workers' twins may be up at the same time)


def _default_sigint() -> None:
    """A shell's foreground command starts with SIGINT at its default; pytest-xdist's workers ignore SIGINT, and an
    ignored signal stays ignored across exec (Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _twin_accounts(pid: int) -> set[str]:
    import pwd

    return {a.pw_name for a in pwd.getpwall() if a.pw_name.startswith(f"edgefold-twin-{pid}-")}


def test_a_signal_wrapped_by_python_is_still_an_interrupt(monkeypatch, capsys):
    """A signal that lands in a class body's __set_name__ (during an import) reaches the CLI as RuntimeError
    raised from the Terminated / KeyboardInterrupt: it is reported as the interrupt, with its exit status."""
    from edgefold import cli

    for exc, rc, said in ((cli.Terminated, 143, "terminated"), (KeyboardInterrupt, 130, "interrupted")):
        def hook(args, exc=exc):
            class Field:
                def __set_name__(self, owner, name):
                    raise exc()

            type("Report", (), {"artifacts": Field()})

        monkeypatch.setattr(cli, "build_parser", lambda hook=hook: _parser_running(hook))
        assert cli.main(["x"]) == rc
        assert f"edgefold x: {said}" in capsys.readouterr().err


def _parser_running(fn):
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("command")
    p.set_defaults(func=fn)
    return p
