"""Nothing of ours outlives a command: after a deploy that succeeds, fails or is interrupted with Ctrl-C (SIGINT to
the CLI process), no process, temp folder or account it created remains.

The CLI runs as a subprocess with TMPDIR pointing at a folder of the test's own, so the temp listing and the process
table can be compared before and after without seeing what other programs on this machine do: a process is ours when
it is new and its command line names the test's folder, its environment carries the test's tag, or it runs as an
account that appeared during the run. The interrupt comes at a point the code under test signals (its remote runner
or QEMU is running, seen in the process table), not after a timer.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.timeout(900), pytest.mark.isolated]
HAVE_SSHD = Path("/usr/sbin/sshd").exists()
# Fixed-name files that libraries keep in $TMPDIR on purpose and reuse on the next run (not one per run): torch's
# compile cache. (onnxruntime's telemetry session file `.ses` is not one of them: edgefold turns that telemetry off.)
LIBRARY_CACHES = {f"torchinductor_{pwd.getpwuid(os.geteuid()).pw_name}"}


@pytest.fixture()
def tmp_path():
    """A folder the twin's account can reach (pytest's own is 0700 under /tmp/pytest-of-root)."""
    root = Path(tempfile.mkdtemp(prefix="edgefold-leftovers-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


class Watch:
    """Snapshots of the process table, the run's temp folder and the account list, before and after."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.tmp.mkdir()
        self.tag = uuid.uuid4().hex
        self.before = {(p.pid, p.info["create_time"]) for p in psutil.process_iter(["create_time"])}
        self.accounts = {a.pw_name for a in pwd.getpwall()}
        self.tmp_before = sorted(os.listdir(self.tmp))

    def env(self) -> dict[str, str]:
        return {**os.environ, "TMPDIR": str(self.tmp), "EDGEFOLD_LEFTOVER_TAG": self.tag, "PYTHONUNBUFFERED": "1"}

    def new_accounts(self) -> set[str]:
        return {a.pw_name for a in pwd.getpwall()} - self.accounts

    def ours(self) -> list[str]:
        """The processes that are new since the first snapshot and belong to this run."""
        accounts = self.new_accounts()
        found = []
        for p in psutil.process_iter(["create_time", "cmdline", "username", "status"]):
            if (p.pid, p.info["create_time"]) in self.before or p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(p.info["cmdline"] or [])
            try:
                tagged = p.environ().get("EDGEFOLD_LEFTOVER_TAG") == self.tag
            except psutil.Error:
                tagged = False
            if str(self.root) in cmd or tagged or p.info["username"] in accounts:
                found.append(f"{p.pid} {p.info['username']}: {cmd[:160]}")
        return found

    def assert_clean(self) -> None:
        deadline = time.monotonic() + 10  # processes killed by the command may take a moment to be reaped
        while self.ours() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.ours() == [], "processes left behind"
        assert sorted(set(os.listdir(self.tmp)) - LIBRARY_CACHES) == self.tmp_before, "temp files left behind"
        assert self.new_accounts() == set(), "accounts left behind"


def _cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "edgefold", *map(str, args)]


def _run(watch: Watch, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run(_cli(*args), env=watch.env(), capture_output=True, text=True, timeout=600)


def _interrupt_when(watch: Watch, args: list[object], marker: str) -> tuple[int, str, list[str]]:
    """Start the CLI, wait until a process of this run whose command line holds `marker` exists, SIGINT the CLI;
    return (exit code, stderr, what was running at the interrupt)."""
    # SIGINT at its default, as for a shell's foreground command: a runner that started pytest with SIGINT ignored
    # (a background job, an xdist worker) would pass that on, and the CLI would never see the Ctrl-C
    proc = subprocess.Popen(_cli(*args), env=watch.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 600
        running: list[str] = []
        while not any(marker in r for r in running):
            assert proc.poll() is None, f"the command ended before {marker} ran: {proc.communicate()[1][-800:]}"
            assert time.monotonic() < deadline, f"{marker} never started"
            time.sleep(0.1)
            running = watch.ours()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err, running


JETSON = ["deploy", "--target", "jetson-local", "--model", "dscnn", "--method", "mag1", "--ratio", "0.25",
          "--repair", "none", "--option", "threads=1"]


@pytest.mark.skipif(not HAVE_SSHD, reason="needs openssh-server (/usr/sbin/sshd)")
def test_jetson_local_deploy_leaves_nothing(tmp_path):
    w = Watch(tmp_path)
    r = _run(w, *JETSON, "--runs", "2", "--out", tmp_path / "ok")
    assert r.returncode == 0, r.stderr[-2000:]
    w.assert_clean()


@pytest.mark.skipif(not HAVE_SSHD, reason="needs openssh-server (/usr/sbin/sshd)")
def test_failed_jetson_local_deploy_leaves_nothing(tmp_path):
    w = Watch(tmp_path)
    # tensorrt needs trtexec on the device: this host has none, so the run fails after sshd has served it
    r = _run(w, *JETSON, "--backend", "tensorrt", "--option", "trtexec=auto", "--runs", "2",
             "--out", tmp_path / "fail")
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "tensorrt" in r.stderr.lower() or "trtexec" in r.stderr.lower(), r.stderr
    w.assert_clean()


@pytest.mark.skipif(not HAVE_SSHD, reason="needs openssh-server (/usr/sbin/sshd)")
def test_interrupted_jetson_local_deploy_leaves_nothing(tmp_path):
    w = Watch(tmp_path)
    # enough timed runs that the remote runner is still going when the interrupt arrives, however loaded the host
    rc, err, running = _interrupt_when(w, [*JETSON, "--runs", "10000000", "--timeout", "3600",
                                           "--out", tmp_path / "int"], "jetson_runner.py")
    assert rc == 130 and "interrupted" in err and "Traceback" not in err, err[-2000:]
    assert any("sshd" in r for r in running)  # the check sees what it must see gone
    if os.geteuid() == 0:
        assert any(r.split()[1].startswith("edgefold-twin-") for r in running)
    w.assert_clean()


QEMU = ["deploy", "--target", "nano33ble-qemu", "--model", "dscnn", "--method", "mag1", "--ratio", "0.25",
        "--repair", "none"]


def _have_qemu() -> bool:
    from edgefold.targets.qemu.toolchain import QEMU as QEMU_EXE

    return subprocess.run(["which", QEMU_EXE], capture_output=True).returncode == 0


@pytest.mark.skipif(not _have_qemu(), reason="needs qemu-system-arm")
def test_qemu_deploy_leaves_nothing(tmp_path):
    w = Watch(tmp_path)
    r = _run(w, *QEMU, "--runs", "1", "--out", tmp_path / "ok")
    assert r.returncode == 0, r.stderr[-2000:]
    w.assert_clean()


@pytest.mark.skipif(not _have_qemu(), reason="needs qemu-system-arm")
def test_interrupted_qemu_deploy_leaves_nothing(tmp_path):
    w = Watch(tmp_path)
    rc, err, running = _interrupt_when(w, [*QEMU, "--runs", "100000", "--timeout", "3600",
                                           "--out", tmp_path / "int"], "qemu-system")
    assert rc == 130 and "interrupted" in err and "Traceback" not in err, err[-2000:]
    w.assert_clean()


@pytest.mark.skipif(not HAVE_SSHD, reason="needs openssh-server (/usr/sbin/sshd)")
def test_twin_of_a_killed_process_dies_and_is_swept(tmp_path):
    """SIGKILL runs no cleanup: the kernel stops sshd (parent-death signal), and the next twin removes the folder and
    the account the killed process left."""
    from edgefold.targets.procguard import pdeathsig_prefix
    from edgefold.targets.sshd_twin import SshdTwin

    if not pdeathsig_prefix():
        pytest.skip("setpriv --pdeathsig is not available")
    w = Watch(tmp_path)
    script = ("import sys, time\nfrom edgefold.targets.sshd_twin import SshdTwin\n"
              "t = SshdTwin().start()\nprint(t.proc.pid, t.dir, t.user, flush=True)\ntime.sleep(600)\n")
    owner = subprocess.Popen([sys.executable, "-c", script], env=w.env(), stdout=subprocess.PIPE, text=True)
    try:
        sshd_pid, twin_dir, user = owner.stdout.readline().split()
    finally:
        owner.kill()
        owner.wait()
    assert psutil.wait_procs([psutil.Process(int(sshd_pid))], timeout=30)[1] == [], "sshd outlived its owner"
    assert Path(twin_dir).is_dir()  # nothing could remove it: the owner was killed outright
    with SshdTwin(workdir=w.tmp):  # the next twin sweeps what a dead owner left
        assert not Path(twin_dir).exists()
        assert os.geteuid() != 0 or user not in {a.pw_name for a in pwd.getpwall()}
    w.assert_clean()
