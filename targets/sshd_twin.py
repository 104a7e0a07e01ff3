"""The Jetson twin's SSH server: a real OpenSSH `sshd` on 127.0.0.1, unprivileged, with generated keys.

Nothing about SSH is simulated: the client side (targets/ssh.py) checks the twin's host key against a known_hosts file
and authenticates with a generated ed25519 key, exactly as it does against a real Jetson.

Who the twin logs in as (the choice, and why):
- not root: sshd runs as the current user (a non-root sshd can only serve its own user; it skips privilege
  separation).
- root (containers, CI): sshd must not hand out root shells, so each twin creates its own system account
  `edgefold-twin-<pid>-<n>` with `useradd` (no password: `*`, not locked, so key auth works with UsePAM no; home = the
  twin's folder) and sshd itself is started *as that user* (setuid before exec) — the same unprivileged mode as above,
  no /run/sshd, no privilege separation. stop() removes the account again. The twin's files (host key,
  authorized_keys, config, the uploaded bundle) live in a fresh 0700 folder `edgefold-sshd-<pid>-*` under the temp
  folder, owned by that user.
Nothing outlives its owner: stop() (also run by a finalizer when the twin is garbage-collected, and at interpreter
exit, so Ctrl-C is covered) kills every process the twin started (sshd, its sessions, a remote runner), removes the
folder and the account. sshd gets SIGTERM from the kernel when the owning process dies without cleaning up
(PR_SET_PDEATHSIG through `setpriv --pdeathsig`), and the next twin removes the folders and accounts of owners that
are gone.
Remote python: probed as the login user with the environment an sshd session gets (nothing inherited from us):
first `sys.executable` (a venv python finds its packages by itself); else that interpreter, then a system python of
the same X.Y, with PYTHONPATH set to the folders numpy and onnxruntime are imported from here. A venv under /root
(mode 0700) cannot be run by the twin account, so as root the system python + PYTHONPATH usually wins; nothing under
/root is opened up. If no candidate works, start() raises a one-line error that lists what was tried.
"""

from __future__ import annotations

import contextlib
import grp
import importlib.util
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import psutil
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgefold.targets.procguard import pdeathsig_prefix

from edgefold.core.errors import EdgefoldError, ToolchainMissing

SSHD = "/usr/sbin/sshd"
TWIN_USER = "edgefold-twin"
READY_TIMEOUT_S = 15.0
START_ATTEMPTS = 3  # a free port can be taken between probing it and sshd binding it


def _write_keypair(private_path: Path, comment: str) -> str:
    """Write an OpenSSH-format ed25519 private key (0600); return the public key line."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    line = f"{pub} {comment}"
    Path(str(private_path) + ".pub").write_text(line + "\n")
    return pub


def _package_roots(*modules: str) -> list[str]:
    """The folders this interpreter imports `modules` from (to hand another interpreter as PYTHONPATH)."""
    roots = []
    for m in modules:
        spec = importlib.util.find_spec(m)
        if spec is not None and spec.submodule_search_locations:
            roots.append(str(Path(next(iter(spec.submodule_search_locations))).parent))
    return list(dict.fromkeys(roots))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TWIN_PREFIX = TWIN_USER + "-"  # per-twin accounts: edgefold-twin-<owner pid>-<n>
DIR_PREFIX = "edgefold-sshd-"  # per-twin folders: edgefold-sshd-<owner pid>-<random>
_OWNED = re.compile(r"^(?:edgefold-twin|edgefold-sshd)-(\d+)-")
_serial = itertools.count()


def _owner_gone(name: str) -> bool:
    """A twin account or folder whose owning process no longer exists (killed before it could clean up)."""
    m = _OWNED.match(name)
    return m is not None and not psutil.pid_exists(int(m.group(1)))


def _run_quiet(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def create_twin_user(home: Path) -> pwd.struct_passwd:
    """Create this twin's own unprivileged login account (root only); remove_twin_user() deletes it again."""
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    if not os.path.exists(useradd):
        raise ToolchainMissing("useradd not found: install Debian package 'passwd' to create the twin's login user")
    name = f"{TWIN_PREFIX}{os.getpid()}-{next(_serial)}"
    proc = None
    for _ in range(5):  # useradd exits 10 while another process holds /etc/passwd's lock
        proc = _run_quiet([useradd, "--system", "--user-group", "--no-create-home", "--home-dir", str(home),
                           "--shell", "/bin/sh", "--password", "*",
                           "--comment", "edgefold jetson-local twin (loopback sshd)", name])
        if proc.returncode != 10:
            break
        time.sleep(0.2)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        why = proc.stderr.strip() if proc is not None else ""
        raise EdgefoldError(f"cannot create twin user {name}: {why or (proc.returncode if proc else '?')}") from None


def _kill_user_processes(uid: int) -> None:
    procs = [p for p in psutil.process_iter(["uids"]) if p.info["uids"] is not None and p.info["uids"].real == uid]
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=5)


def remove_twin_user(name: str) -> None:
    """Delete a twin account (and its group): first every process still running as it, which userdel refuses."""
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    _kill_user_processes(uid)
    userdel = shutil.which("userdel") or "/usr/sbin/userdel"
    for _ in range(5):
        r = _run_quiet([userdel, name])
        if r.returncode != 10:  # 10: /etc/passwd locked by another process
            break
        time.sleep(0.2)
    with contextlib.suppress(KeyError, OSError, subprocess.SubprocessError):
        grp.getgrnam(name)
        _run_quiet([shutil.which("groupdel") or "/usr/sbin/groupdel", name])


def sweep_stale(tmp: Path | None = None) -> None:
    """Remove the folders and accounts that twins of dead processes left (e.g. a deploy killed with SIGKILL)."""
    tmp = Path(tmp or tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for entry in tmp.iterdir():
            if entry.name.startswith(DIR_PREFIX) and _owner_gone(entry.name):
                shutil.rmtree(entry, ignore_errors=True)
    if os.geteuid() == 0:
        for account in pwd.getpwall():
            if account.pw_name.startswith(TWIN_PREFIX) and _owner_gone(account.pw_name):
                remove_twin_user(account.pw_name)


@dataclass
class _Held:
    """What a twin holds, apart from the twin object, so its finalizer can release it."""

    proc: subprocess.Popen | None = None
    dir: Path | None = None
    account: str | None = None  # an account this twin created (root only)

    def release(self) -> None:
        if self.proc is not None:
            _kill_tree(self.proc)
            self.proc = None
        if self.account is not None:
            remove_twin_user(self.account)
            self.account = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill sshd and everything below it: its connection handlers and the commands they run (a runner
    still going when we were interrupted); those live in sessions of their own, so a process-group kill misses
    them."""
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        kids = []
    for p in kids:
        with contextlib.suppress(psutil.Error):
            p.kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 9)
        proc.wait(timeout=5)
    psutil.wait_procs(kids, timeout=5)


class SshdTwin:
    """A loopback sshd. Use as a context manager, or start()/stop().

    After start(): host, port, user, client_key, known_hosts, remote_python (argv prefix), remote_dir.
    """

    def __init__(self, workdir: str | os.PathLike | None = None) -> None:
        if not os.path.exists(SSHD):
            raise ToolchainMissing(f"{SSHD} not found: install Debian package 'openssh-server' (jetson-local twin)")
        self._parent = Path(workdir) if workdir else None
        self._held = _Held()
        self._finalizer = weakref.finalize(self, self._held.release)
        self.host = "127.0.0.1"
        self.port = 0
        self.user = ""
        self.remote_python: list[str] = []
        self.log_path: Path | None = None

    @property
    def proc(self) -> subprocess.Popen | None:
        return self._held.proc

    @property
    def dir(self) -> Path | None:
        return self._held.dir

    # files the client side uses
    @property
    def client_key(self) -> Path:
        return self._need_dir() / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self._need_dir() / "known_hosts"

    @property
    def remote_dir(self) -> str:
        return str(self._need_dir() / "remote")

    def _need_dir(self) -> Path:
        if self.dir is None:
            raise EdgefoldError("sshd twin is not started")
        return self.dir

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def __enter__(self) -> SshdTwin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> SshdTwin:
        if self.proc is not None:
            return self
        try:
            self._start()
        except BaseException:  # Ctrl-C included: nothing half-started may stay behind
            self.stop()
            raise
        return self

    def _start(self) -> None:
        sweep_stale(self._parent)
        as_root = os.geteuid() == 0
        d = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-", dir=self._parent))
        self._held.dir = d
        if as_root:
            account = create_twin_user(d)
            self._held.account = account.pw_name
        else:
            account = pwd.getpwuid(os.geteuid())
        self.user = account.pw_name
        # sshd (running as `account`) must own its host key and read its config; the client key stays ours.
        host_pub = _write_keypair(d / "host_ed25519", "edgefold-twin-host")
        client_pub = _write_keypair(d / "client_ed25519", "edgefold-twin-client")
        (d / "authorized_keys").write_text(client_pub + "\n")
        (d / "remote").mkdir()
        self.log_path = d / "sshd.log"
        if as_root:
            for p in (d, d / "host_ed25519", d / "host_ed25519.pub", d / "authorized_keys", d / "remote"):
                os.chown(p, account.pw_uid, account.pw_gid)
        self.remote_python = self._probe_python(account if as_root else None)

        last_log = ""
        for _ in range(START_ATTEMPTS):
            self.port = _free_port()
            self._write_config(d)
            if self._launch(account if as_root else None):
                break
            last_log = self.log()
        else:
            raise EdgefoldError(f"sshd twin did not start: {last_log.strip().splitlines()[-1:] or 'no output'}")
        # A real known_hosts entry: non-22 ports are written as [host]:port, as OpenSSH does.
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {host_pub}\n")

    def _write_config(self, d: Path) -> None:
        cfg = "\n".join([
            f"ListenAddress {self.host}",
            f"Port {self.port}",
            f"HostKey {d / 'host_ed25519'}",
            f"AuthorizedKeysFile {d / 'authorized_keys'}",
            f"PidFile {d / 'sshd.pid'}",
            f"AllowUsers {self.user}",
            "UsePAM no",
            "StrictModes no",  # the twin's files live in /tmp, not in a home with ssh's expected modes
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            "PrintMotd no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
            "",
        ])
        (d / "sshd_config").write_text(cfg)
        os.chmod(d / "sshd_config", 0o644)

    def _launch(self, account: pwd.struct_passwd | None) -> bool:
        """Start sshd and wait (bounded) until it sends its banner; False when it exited (e.g. port taken)."""
        assert self.dir is not None and self.log_path is not None
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        kwargs: dict = {}
        if account is not None:
            kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": [],
                      "env": {"HOME": account.pw_dir, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}}
        try:
            # -D: stay in the foreground (we own the process), -e: log to stderr (captured in sshd.log)
            proc = subprocess.Popen([*pdeathsig_prefix(), SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                    **kwargs)
            self._held.proc = proc
        finally:
            log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._held.proc = None
                return False
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=1.0) as s:
                s.settimeout(2.0)
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return True
            time.sleep(0.05)
        raise EdgefoldError(f"sshd twin did not answer on {self.host}:{self.port} within {READY_TIMEOUT_S:.0f} s; "
                            f"log: {self.log_path}")

    def _probe_python(self, account: pwd.struct_passwd | None) -> list[str]:
        """Find a python the login user can run that imports numpy and onnxruntime (see the module docstring).

        Probed with the environment an sshd session gets (no PYTHONPATH inherited from us), as that user.
        """
        roots = _package_roots("numpy", "onnxruntime")
        with_path = ["/usr/bin/env", "PYTHONPATH=" + os.pathsep.join(roots)] if roots else None
        candidates: list[list[str]] = [[sys.executable]]
        ver = f"{sys.version_info.major}.{sys.version_info.minor}"
        if with_path:
            candidates.append([*with_path, sys.executable])
            candidates += [[*with_path, exe] for exe in (f"/usr/bin/python{ver}", f"/usr/local/bin/python{ver}")
                           if os.path.exists(exe) and exe != sys.executable]
        me = account or pwd.getpwuid(os.geteuid())
        session_env = {"HOME": me.pw_dir, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        kwargs: dict = {"cwd": "/", "env": session_env}
        if account is not None:
            kwargs.update(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
        tried = []
        for argv in candidates:
            try:
                r = subprocess.run([*argv, "-c", "import numpy, onnxruntime"], capture_output=True, text=True,
                                   timeout=60, **kwargs)
                if r.returncode == 0:
                    return argv
                tried.append(f"{argv[-1]}: {(r.stderr.strip().splitlines() or [f'rc {r.returncode}'])[-1]}")
            except (OSError, subprocess.TimeoutExpired) as e:
                tried.append(f"{argv[-1]}: {e}")
        raise EdgefoldError(f"no python runnable by {me.pw_name} imports numpy+onnxruntime for the twin "
                            f"({'; '.join(tried)})")

    def stop(self) -> None:
        """Kill sshd and everything it started, remove the twin's folder and the account it created."""
        self._held.release()
