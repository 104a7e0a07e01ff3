"""An SSH session to a Linux device (Jetson, or its loopback twin) on paramiko, with host keys checked.

- Host keys: only the known_hosts file named in the target config is trusted; an unknown host is refused
  (RejectPolicy) and a changed key is an error that says how to fix it. Nothing is ever added automatically.
- Auth: one private key file, no agent, no ~/.ssh key search — what the config names is what is used.
- Commands: an argv list, quoted with shlex.join for the remote POSIX shell; user strings never reach it unquoted.
- Every network step has a timeout; only connection set-up (refused / timed out) is retried, a bounded number of times.
"""

from __future__ import annotations

import base64
import hashlib
import shlex
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import paramiko

from edgefold.core.errors import DeviceError, EdgefoldError

MAX_CAPTURE = 16 * 1024 * 1024  # bytes kept per stream: a runaway remote program cannot exhaust host memory


@dataclass(frozen=True)
class SshConfig:
    host: str
    user: str
    key: Path
    known_hosts: Path
    port: int = 22
    connect_timeout_s: float = 10.0
    connect_retries: int = 2  # extra attempts after the first, for refused / timed-out connections only
    retry_delay_s: float = 1.0

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The name OpenSSH and paramiko use in known_hosts: bare host on port 22, else [host]:port."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass
class CommandResult:
    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    truncated: bool = False


def fingerprint(key: paramiko.PKey) -> str:
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


class _UnknownHost(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"unknown host {hostname}")
        self.hostname = hostname
        self.key = key


class _Reject(paramiko.RejectPolicy):
    """RejectPolicy that keeps the offered key so the error can show its fingerprint (for the user to verify)."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise _UnknownHost(hostname, key)


class SshSession:
    """Use as a context manager: `with SshSession(cfg) as s: s.run([...], timeout_s=...)`."""

    def __init__(self, cfg: SshConfig) -> None:
        self.cfg = cfg
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def __enter__(self) -> SshSession:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- connection -------------------------------------------------------------------------------------------
    def connect(self) -> None:
        cfg = self.cfg
        if not cfg.key.is_file():
            raise EdgefoldError(f"SSH key {cfg.key} not found (set `key` for the target in targets.toml)")
        if not cfg.known_hosts.is_file():
            raise EdgefoldError(f"known_hosts file {cfg.known_hosts} not found: create it with the device's verified "
                                f"host key (see `ssh-keyscan -p {cfg.port} {cfg.host}` and compare fingerprints)")
        pkey = _load_key(cfg.key)
        attempts = 1 + max(0, cfg.connect_retries)
        last: Exception | None = None
        for attempt in range(attempts):
            client = paramiko.SSHClient()
            try:
                client.load_host_keys(str(cfg.known_hosts))
            except (OSError, paramiko.SSHException, ValueError) as e:
                raise EdgefoldError(f"cannot read known_hosts {cfg.known_hosts}: {e}") from None
            client.set_missing_host_key_policy(_Reject())
            try:
                client.connect(cfg.host, port=cfg.port, username=cfg.user, pkey=pkey,
                               timeout=cfg.connect_timeout_s, banner_timeout=cfg.connect_timeout_s,
                               auth_timeout=cfg.connect_timeout_s, channel_timeout=cfg.connect_timeout_s,
                               allow_agent=False, look_for_keys=False)
                self._client = client
                return
            except paramiko.BadHostKeyException as e:
                client.close()
                raise DeviceError(
                    f"host key for {cfg.known_hosts_name} CHANGED: device offers {fingerprint(e.key)}, "
                    f"{cfg.known_hosts} has {fingerprint(e.expected_key)}; if the device was re-installed, verify the "
                    f"new key on its console and replace the entry "
                    f"(`ssh-keygen -R '{cfg.known_hosts_name}' -f {cfg.known_hosts}`), otherwise do not connect"
                ) from None
            except _UnknownHost as e:
                client.close()
                raise DeviceError(
                    f"host {e.hostname} is not in {cfg.known_hosts} (offers {fingerprint(e.key)}): refusing to "
                    f"connect; after checking that fingerprint on the device, add its key to that file"
                ) from None
            except paramiko.AuthenticationException as e:
                client.close()
                raise DeviceError(f"SSH authentication failed for {cfg.where} with key {cfg.key}: {e}") from None
            except (paramiko.SSHException, OSError, EOFError) as e:
                # refused / timed out / reset during the handshake: transient on a booting or busy device
                client.close()
                last = e
                if attempt + 1 < attempts:
                    time.sleep(cfg.retry_delay_s)
        raise DeviceError(f"cannot connect to {cfg.where} after {attempts} attempt(s): {_one_line(last)}")

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _need_client(self) -> paramiko.SSHClient:
        if self._client is None:
            raise EdgefoldError("SSH session is not connected")
        return self._client

    # ---- commands ---------------------------------------------------------------------------------------------
    def run(self, argv: Sequence[str], timeout_s: float, check: bool = False) -> CommandResult:
        """Run argv on the device (quoted for its shell); give up after timeout_s with a DeviceError."""
        argv = [str(a) for a in argv]
        command = shlex.join(argv)
        transport = self._need_client().get_transport()
        if transport is None or not transport.is_active():
            raise DeviceError(f"SSH connection to {self.cfg.where} was lost")
        try:
            chan = transport.open_session(timeout=self.cfg.connect_timeout_s)
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise DeviceError(f"cannot open an SSH channel on {self.cfg.where}: {_one_line(e)}") from None
        out, err = bytearray(), bytearray()
        truncated = False
        deadline = time.monotonic() + timeout_s
        try:
            chan.settimeout(1.0)
            chan.exec_command(command)
            while True:
                got = False
                if chan.recv_ready():
                    truncated |= _append(out, chan.recv(65536))
                    got = True
                if chan.recv_stderr_ready():
                    truncated |= _append(err, chan.recv_stderr(65536))
                    got = True
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if chan.closed and not got:
                    break
                if time.monotonic() > deadline:
                    raise DeviceError(
                        f"`{_short(command)}` on {self.cfg.where} did not finish within {timeout_s:.0f} s")
                if not got:
                    time.sleep(0.02)
            rc = chan.recv_exit_status() if chan.exit_status_ready() else -1
        except (TimeoutError, paramiko.SSHException, OSError, EOFError) as e:
            raise DeviceError(f"SSH command on {self.cfg.where} failed: {_one_line(e)}") from None
        finally:
            chan.close()
        res = CommandResult(argv, rc, out.decode(errors="replace"), err.decode(errors="replace"), truncated)
        if check and rc != 0:
            tail = (res.stderr.strip() or res.stdout.strip()).splitlines()[-1:] or ["no output"]
            raise DeviceError(f"`{_short(command)}` on {self.cfg.where} exited {rc}: {tail[0]}")
        return res

    # ---- files ------------------------------------------------------------------------------------------------
    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            try:
                self._sftp = self._need_client().open_sftp()
            except (paramiko.SSHException, OSError, EOFError) as e:
                raise DeviceError(f"SFTP not available on {self.cfg.where}: {_one_line(e)}") from None
            chan = self._sftp.get_channel()
            if chan is not None:
                chan.settimeout(max(30.0, self.cfg.connect_timeout_s))  # per packet, not per file
        return self._sftp

    def makedirs(self, remote: str) -> None:
        sftp = self.sftp()
        path = PurePosixPath(remote)
        parts = [path, *path.parents]
        for p in reversed(parts):
            if str(p) in ("", ".", "/"):
                continue
            try:
                if not stat.S_ISDIR(sftp.stat(str(p)).st_mode):
                    raise DeviceError(f"{p} exists on {self.cfg.where} and is not a folder")
            except FileNotFoundError:
                try:
                    sftp.mkdir(str(p))
                except OSError as e:
                    raise DeviceError(f"cannot create {p} on {self.cfg.where}: {_one_line(e)}") from None

    def put(self, local: Path, remote: str) -> int:
        """Copy a file to the device; returns the size the device reports (checked against the local size)."""
        try:
            attrs = self.sftp().put(str(local), remote, confirm=True)
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise DeviceError(f"copy {local.name} -> {self.cfg.where}:{remote} failed: {_one_line(e)}") from None
        return int(attrs.st_size or 0)

    def get(self, remote: str, local: Path) -> None:
        try:
            self.sftp().get(remote, str(local))
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise DeviceError(f"copy {self.cfg.where}:{remote} -> {local} failed: {_one_line(e)}") from None

    def size(self, remote: str) -> int | None:
        try:
            return int(self.sftp().stat(remote).st_size or 0)
        except FileNotFoundError:
            return None
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise DeviceError(f"stat {self.cfg.where}:{remote} failed: {_one_line(e)}") from None


def _load_key(path: Path) -> paramiko.PKey:
    """Read the private key up front, so a bad key file is named as such instead of failing the handshake."""
    try:
        return paramiko.PKey.from_path(path)
    except (paramiko.PasswordRequiredException, TypeError):  # cryptography: TypeError "password-protected"
        raise EdgefoldError(f"SSH key {path} is passphrase-protected: use a key without passphrase for the "
                            f"target (e.g. a dedicated one, `ssh-keygen -t ed25519 -N '' -f KEYFILE`)") from None
    except (paramiko.SSHException, OSError, ValueError, UnicodeDecodeError) as e:
        raise EdgefoldError(f"SSH key {path} cannot be read: {_one_line(e)}") from None


def _append(buf: bytearray, data: bytes) -> bool:
    room = MAX_CAPTURE - len(buf)
    buf += data[: max(0, room)]
    return len(data) > room


def _short(command: str, n: int = 80) -> str:
    return command if len(command) <= n else command[: n - 3] + "..."


def _one_line(e: object) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
