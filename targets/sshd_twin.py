"""The Jetson twin's SSH server: a real OpenSSH `sshd` on 127.0.0.1, unprivileged, with generated keys.

Nothing about SSH is simulated: the client side (targets/ssh.py) checks the twin's host key against a known_hosts file
and authenticates with a generated ed25519 key, exactly as it does against a real Jetson.

Who the twin logs in as (the choice, and why):
- not root: sshd runs as the current user (a non-root sshd can only serve its own user; it skips privilege
  separation).
- root (containers, CI): sshd must not hand out root shells, so a dedicated system account `edgefold-twin` is created
  once with `useradd` (no password: `*`, not locked, so key auth works with UsePAM no) and sshd itself is started *as
  that user* (setuid before exec) — the same unprivileged mode as above, no /run/sshd, no privilege separation.
  The twin's files (host key, authorized_keys, config, the uploaded bundle) live in a fresh 0700 folder under /tmp
  owned by that user.
Remote python: probed as the login user with the environment an sshd session gets (nothing inherited from us):
first `sys.executable` (a venv python finds its packages by itself); else that interpreter, then a system python of
the same X.Y, with PYTHONPATH set to the folders numpy and onnxruntime are imported from here. A venv under /root
(mode 0700) cannot be run by `edgefold-twin`, so as root the system python + PYTHONPATH usually wins; nothing under
/root is opened up. If no candidate works, start() raises a one-line error that lists what was tried.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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


def ensure_twin_user(name: str = TWIN_USER) -> pwd.struct_passwd:
    """Create the unprivileged login account for the twin (root only); idempotent and safe against races."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    if not os.path.exists(useradd):
        raise ToolchainMissing("useradd not found: install Debian package 'passwd' to create the twin's login user")
    proc = subprocess.run(
        [useradd, "--system", "--user-group", "--create-home", "--home-dir", f"/home/{name}", "--shell", "/bin/sh",
         "--password", "*", "--comment", "edgefold jetson-local twin (loopback sshd)", name],
        capture_output=True, text=True, timeout=30)
    try:
        return pwd.getpwnam(name)  # also covers a concurrent creation (useradd exit 9)
    except KeyError:
        raise EdgefoldError(f"cannot create twin user {name}: {proc.stderr.strip() or proc.returncode}") from None


class SshdTwin:
    """A loopback sshd. Use as a context manager, or start()/stop().

    After start(): host, port, user, client_key, known_hosts, remote_python (argv prefix), remote_dir.
    """

    def __init__(self, workdir: str | os.PathLike | None = None) -> None:
        if not os.path.exists(SSHD):
            raise ToolchainMissing(f"{SSHD} not found: install Debian package 'openssh-server' (jetson-local twin)")
        self._parent = Path(workdir) if workdir else None
        self.proc: subprocess.Popen | None = None
        self.dir: Path | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.user = ""
        self.remote_python: list[str] = []
        self.log_path: Path | None = None

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
        as_root = os.geteuid() == 0
        account = ensure_twin_user() if as_root else pwd.getpwuid(os.geteuid())
        self.user = account.pw_name
        self.dir = Path(tempfile.mkdtemp(prefix="edgefold-sshd-", dir=self._parent))
        d = self.dir
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
            self.stop()
            raise EdgefoldError(f"sshd twin did not start: {last_log.strip().splitlines()[-1:] or 'no output'}")
        # A real known_hosts entry: non-22 ports are written as [host]:port, as OpenSSH does.
        self.known_hosts.write_text(f"[{self.host}]:{self.port} {host_pub}\n")
        return self

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
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                         **kwargs)
        finally:
            log.close()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=1.0) as s:
                s.settimeout(2.0)
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return True
            time.sleep(0.05)
        self._kill()
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

    def _kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, 15)  # sshd and any session children it forked
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=5)
        self.proc = None

    def stop(self) -> None:
        """Kill sshd (and its sessions) and remove the twin's folder."""
        self._kill()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
