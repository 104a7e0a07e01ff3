"""The twin under QEMU: `qemu-system-arm -M mps2-an386 -icount shift=0` runs an ELF and hands its UART over as the
same SerialLink a real board's serial port gives.

    run_elf(elf, timeout_s=...) -> QemuRun (UART text, lines)
    QemuSession(elf, serial="tcp"|"pty"|"stdio", fault=...)  -> context manager yielding a SerialLink
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefold.targets.procguard import pdeathsig_prefix
from edgefold.targets.qemu import faults
from edgefold.targets.qemu.toolchain import QEMU, require
from edgefold.targets.serial_link import LinkClosed, SerialLink

from edgefold.core.errors import DeviceError, EdgefoldError
from edgefold.core.vocab import FAULTS, check_choice

INSNS_PER_TICK = 40  # SysTick at 25 MHz with -icount shift=0 (1 instruction = 1 ns): the count's resolution


@dataclass
class QemuRun:
    text: str  # everything the UART sent
    lines: list[str]
    wall_s: float
    timed_out: bool = False
    extra: dict = field(default_factory=dict)



def qemu_command(elf: Path, serial_arg: str, monitor: str = "none", paused: bool = False) -> list[str]:
    cmd = [require(QEMU), "-M", "mps2-an386", "-cpu", "cortex-m4", "-icount", "shift=0", "-nographic",
           "-monitor", monitor, "-serial", serial_arg, "-no-reboot", "-kernel", str(elf)]
    if paused:
        # pty mode: start paused (we open the pty first) and pause instead of quitting at the end, because
        # closing the pty's master would discard what the reader has not read yet.
        cmd[1:1] = ["-S", "-action", "shutdown=pause"]
    return cmd


class QemuSession:
    """Run an ELF under QEMU and hand its UART over as a SerialLink. Always kills QEMU on exit.

    serial: "tcp" (default; QEMU connects to a socket we listen on, so no output is lost and no port can
    race), "pty" (QEMU starts paused, we open the pty and then let it run), "stdio" (QEMU's stdout pipe).
    fault: None | "kill" | "garble" | "stall" -- injected on the serial path for the HIL tests.
    Another twin subclasses it and overrides `program` and `command` (qemu/esp_eye.py).
    """

    program = QEMU

    def __init__(self, elf: str | os.PathLike, serial: str = "tcp", fault: str | None = None,
                 fault_after_lines: int = 3, start_timeout_s: float = 10.0) -> None:
        if serial not in ("tcp", "pty", "stdio"):
            raise EdgefoldError(f"unknown serial mode {serial!r} (tcp, pty, stdio)")
        if fault is not None:
            check_choice("fault", fault, FAULTS)
        self.elf = Path(elf)
        if not self.elf.is_file():
            raise EdgefoldError(f"no such ELF: {self.elf}")
        with open(self.elf, "rb") as f:
            if f.read(4) != b"\x7fELF":  # QEMU would load it as a raw image and lock up
                raise EdgefoldError(f"{self.elf} is not an ELF file")
        self._killed = False
        self.serial = serial
        self.fault = fault
        self.fault_after_lines = fault_after_lines
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.link: SerialLink | None = None
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._socks: list[socket.socket] = []
        self._monitor: SerialLink | None = None

    def command(self, serial_arg: str, monitor: str = "none", paused: bool = False) -> list[str]:
        """The emulator's command line with the guest's serial port on `serial_arg` (a QEMU chardev)."""
        return qemu_command(self.elf, serial_arg, monitor, paused)

    # -- start
    def __enter__(self) -> SerialLink:
        try:
            raw = self._start()
            self.link = self._inject(raw) if self.fault else raw
            return self.link
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _popen(self, cmd: list[str], **kw: Any) -> subprocess.Popen:
        # its own session (Ctrl-C reaches only us, and close() stops it); killed with us if we are killed outright
        return subprocess.Popen([*pdeathsig_prefix("KILL"), *cmd], start_new_session=True, **kw)

    def _start(self) -> SerialLink:
        if self.serial == "tcp":
            lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._socks.append(lsock)
            lsock.bind(("127.0.0.1", 0))
            lsock.listen(1)
            port = lsock.getsockname()[1]
            self.proc = self._popen(self.command(f"tcp:127.0.0.1:{port}"),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            lsock.settimeout(0.2)
            deadline = time.monotonic() + self.start_timeout_s
            while True:
                try:
                    conn, _ = lsock.accept()
                    break
                except TimeoutError:
                    self._check_started(deadline)
            self._socks.append(conn)
            return SerialLink.from_socket(conn, f"qemu:{self.elf.name}")
        if self.serial == "pty":
            self.proc = self._popen(self.command("pty", monitor="stdio", paused=True),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            assert self.proc.stdout is not None
            self._monitor = SerialLink.from_fd(self.proc.stdout.fileno(), "qemu-monitor")
            path = self._wait_pty_path()
            link = SerialLink.open_pty(path)
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"cont\n")  # only now may the guest run: nothing it prints is lost
            self.proc.stdin.flush()
            return link
        self.proc = self._popen(self.command("stdio"), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        return SerialLink.from_fd(self.proc.stdout.fileno(), f"qemu:{self.elf.name}")

    def _check_started(self, deadline: float) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode(errors="replace").strip() if self.proc.stderr else ""
            last = err.splitlines()[-1] if err else f"exit code {self.proc.returncode}"
            raise DeviceError(f"{self.program} exited at start: {last}")
        if time.monotonic() > deadline:
            raise DeviceError(f"{self.program} did not start within {self.start_timeout_s:g} s")

    def _wait_pty_path(self) -> str:
        assert self._monitor is not None
        reader = self._monitor
        deadline = time.monotonic() + self.start_timeout_s
        seen = []
        while time.monotonic() < deadline:
            try:
                line = reader.readline(0.2)
            except LinkClosed:
                break
            if line is None:
                self._check_started(deadline)
                continue
            seen.append(line)
            m = re.search(r"char device redirected to (\S+)", line)
            if m:
                return m.group(1)
        raise DeviceError(f"{self.program} did not report its pty: {' | '.join(seen[-3:])}")

    def _inject(self, raw: SerialLink) -> SerialLink:
        assert self.fault is not None
        link, thread, socks = faults.inject(raw, self.fault, self.fault_after_lines, self._kill, self._closing,
                                            f"qemu:{self.elf.name}")
        self._socks += socks
        self._threads.append(thread)
        return link

    # -- stop
    def exit_problem(self) -> str | None:
        """Why QEMU stopped, if it stopped abnormally by itself (e.g. 'Lockup: can't escalate ...')."""
        p = self.proc
        if p is None or p.poll() is None or p.returncode == 0 or self._killed:
            return None
        err = ""
        if self.serial == "tcp" and p.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                err = p.stderr.read().decode(errors="replace")
        first = next((ln.strip() for ln in err.splitlines() if ln.strip()), "")
        return f"{self.program} stopped with exit code {p.returncode}" + (f": {first}" if first else "")

    def _kill(self) -> None:
        p = self.proc
        if p is not None and p.poll() is None:
            self._killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)  # our own process group (start_new_session)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)

    def guest_done(self) -> bool:
        """Has the program left (SYSRESETREQ)? QEMU exits, or in pty mode pauses with status 'shutdown'."""
        if self.proc is None or self.proc.poll() is not None:
            return True
        if self._monitor is None or self.proc.stdin is None:
            return False
        try:
            self.proc.stdin.write(b"info status\n")
            self.proc.stdin.flush()
        except OSError:
            return True
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                line = self._monitor.readline(0.2)
            except LinkClosed:
                return True
            if line and "VM status:" in line:
                return "shutdown" in line
        return False

    def wait_exit(self, timeout_s: float) -> int | None:
        """Wait for QEMU to leave by itself (SYSRESETREQ + -no-reboot); None if it did not."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        self._closing.set()
        self._kill()
        for t in self._threads:
            t.join(2)
        if self.link is not None:
            self.link.close()
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.close()
        if self.proc is not None:
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()


def run_elf(elf: str | os.PathLike, timeout_s: float = 30.0, serial: str = "tcp",
            session_class: type[QemuSession] = QemuSession) -> QemuRun:
    """Run an ELF to completion (the program leaves through SYSRESETREQ) and return what its UART sent.

    Raises DeviceError if the program has not finished within timeout_s (QEMU is killed: never hangs).
    """
    t0 = time.monotonic()
    lines: list[str] = []
    session = session_class(elf, serial=serial)
    with session as link:
        deadline = t0 + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                text = "\n".join(lines[-5:])
                raise DeviceError(f"{Path(elf).name} did not finish within {timeout_s:g} s under QEMU; last output: "
                                  f"{text!r}")
            try:
                line = link.readline(min(left, 0.5))
            except LinkClosed:
                session.wait_exit(2.0)
                problem = session.exit_problem()
                if problem:
                    raise DeviceError(f"{Path(elf).name}: {problem}") from None
                break
            if line is not None:
                lines.append(line)
            elif session.guest_done():
                with contextlib.suppress(LinkClosed):  # drain what is still in flight
                    while (line := link.readline(0.2)) is not None:
                        lines.append(line)
                break
    return QemuRun(text="\n".join(lines) + ("\n" if lines else ""), lines=lines, wall_s=time.monotonic() - t0)
