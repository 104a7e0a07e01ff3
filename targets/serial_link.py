"""One line reader for every serial link: a USB serial port (pyserial), a pty, a TCP/Unix socket, a pipe.

Real boards and the QEMU twin are read by the same class, so what the tests exercise on the twin is what
runs against a board. Every read has a timeout; nothing here can block forever. A vanished port or a
closed connection is a DeviceError, a silent link is a timeout the caller decides about.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import time
from collections.abc import Iterator
from typing import Protocol

from edgefold.core.errors import DeviceError

MAX_LINE = 4096  # a longer "line" is garbage (wrong baud rate, binary noise): cut it so memory stays bounded


class LinkClosed(DeviceError):
    """The other side went away: USB port vanished, emulator exited, socket closed."""


class LinkTimeout(DeviceError):
    """Nothing (or no complete record) arrived within the time allowed."""


class _Channel(Protocol):
    def read(self, n: int, timeout: float) -> bytes:
        """Up to n bytes; b"" on timeout; raises LinkClosed at end of stream."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class _FdChannel:
    """A pty, pipe or socket: anything select() works on."""

    def __init__(self, fd: int | None = None, sock: socket.socket | None = None, owns: bool = True) -> None:
        self.sock = sock
        self.fd = sock.fileno() if sock is not None else fd
        self.owns = owns

    def read(self, n: int, timeout: float) -> bytes:
        try:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        except (OSError, ValueError) as e:
            raise LinkClosed(f"serial link closed ({e})") from None
        if not ready:
            return b""
        try:
            data = self.sock.recv(n) if self.sock is not None else os.read(self.fd, n)
        except BlockingIOError:
            return b""
        except OSError as e:
            # EIO on a pty whose other side has closed: the device (or emulator) is gone.
            if e.errno in (errno.EIO, errno.EBADF, errno.ECONNRESET, errno.ENXIO):
                raise LinkClosed(f"serial link closed ({os.strerror(e.errno)})") from None
            raise
        if not data:
            raise LinkClosed("serial link closed (end of stream)")
        return data

    def write(self, data: bytes) -> None:
        try:
            if self.sock is not None:
                self.sock.sendall(data)
            else:
                os.write(self.fd, data)
        except OSError as e:
            raise LinkClosed(f"cannot write to serial link ({e.strerror})") from None

    def close(self) -> None:
        if not self.owns:
            return
        with contextlib.suppress(OSError):
            if self.sock is not None:
                self.sock.close()
            else:
                os.close(self.fd)


class _PySerialChannel:
    """A real serial port through pyserial (USB CDC of the Nano, CP2102 of the ESP-EYE)."""

    def __init__(self, port) -> None:  # serial.Serial
        self.port = port

    def read(self, n: int, timeout: float) -> bytes:
        import serial

        try:
            self.port.timeout = max(0.0, timeout)
            waiting = self.port.in_waiting
            data = self.port.read(max(1, min(n, waiting or 1)))
        except (serial.SerialException, OSError) as e:
            raise LinkClosed(f"serial port {self.port.port} vanished ({e})") from None
        return data

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as e:
            raise LinkClosed(f"cannot write to {self.port.port} ({e})") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.port.close()


class SerialLink:
    """Line reader over a byte channel. Lines are decoded leniently (garbage becomes U+FFFD, never an exception)."""

    def __init__(self, channel: _Channel, name: str) -> None:
        self._ch = channel
        self.name = name
        self._buf = bytearray()
        self._eof = False
        self.bytes_read = 0
        self.lines_read = 0

    # ---- constructors ----
    @classmethod
    def open_serial(cls, port: str, baudrate: int = 115200, open_timeout_s: float = 5.0, dtr: bool = True,
                    rts: bool = True) -> SerialLink:
        """Open a serial port; retried until open_timeout_s because a port re-enumerates after reset/upload.

        dtr/rts: line states set *before* opening. USB CDC boards (Nano 33 BLE) want DTR (the sketch's `Serial`
        is false without it); boards with an auto-reset circuit (ESP32 + CP2102) want both low, or they sit in reset.
        """
        import serial

        deadline = time.monotonic() + open_timeout_s
        last: Exception | None = None
        while True:
            try:
                s = serial.Serial(baudrate=baudrate, timeout=0.1, exclusive=True)
                s.port = port
                s.dtr, s.rts = dtr, rts
                s.open()
                return cls(_PySerialChannel(s), port)
            except (serial.SerialException, OSError, ValueError) as e:
                last = e
            if time.monotonic() >= deadline:
                raise LinkClosed(f"cannot open serial port {port}: {last}") from None
            time.sleep(0.2)

    @classmethod
    def open_pty(cls, path: str) -> SerialLink:
        """Open the far end of a pseudo-terminal (QEMU `-serial pty`) in raw mode."""
        import termios
        import tty

        try:
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            raise LinkClosed(f"cannot open pty {path}: {e.strerror}") from None
        with contextlib.suppress(termios.error):
            tty.setraw(fd)
        return cls(_FdChannel(fd=fd), path)

    @classmethod
    def from_socket(cls, sock: socket.socket, name: str = "socket") -> SerialLink:
        sock.setblocking(False)
        return cls(_FdChannel(sock=sock), name)

    @classmethod
    def connect_tcp(cls, host: str, port: int, connect_timeout_s: float = 5.0) -> SerialLink:
        """Connect to a TCP serial server (QEMU `-serial tcp:HOST:PORT,server=on`), retrying until the deadline."""
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                s = socket.create_connection((host, port), timeout=1.0)
                return cls.from_socket(s, f"tcp:{host}:{port}")
            except OSError as e:
                if time.monotonic() >= deadline:
                    raise LinkClosed(f"cannot connect to {host}:{port}: {e.strerror or e}") from None
                time.sleep(0.1)

    @classmethod
    def from_fd(cls, fd: int, name: str = "pipe", owns: bool = False) -> SerialLink:
        os.set_blocking(fd, False)
        return cls(_FdChannel(fd=fd, owns=owns), name)

    # ---- reading ----
    def readline(self, timeout: float) -> str | None:
        """The next line without its line ending; None if no complete line arrived within `timeout` seconds.

        At end of stream a trailing partial line is returned once, then LinkClosed is raised.
        """
        deadline = time.monotonic() + timeout
        while True:
            line = self._take_line()
            if line is not None:
                return line
            if self._eof:
                if self._buf:
                    rest = bytes(self._buf)
                    self._buf.clear()
                    return self._decode(rest)
                raise LinkClosed(f"{self.name}: link closed")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                data = self._ch.read(4096, min(left, 0.5))
            except LinkClosed:
                self._eof = True
                continue
            if data:
                self.bytes_read += len(data)
                self._buf += data

    def lines(self, idle_timeout: float, total_timeout: float) -> Iterator[str]:
        """Yield lines until the caller stops; LinkTimeout when the link is silent for idle_timeout seconds
        or total_timeout passes, LinkClosed when it closes."""
        t_end = time.monotonic() + total_timeout
        while True:
            left = t_end - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"{self.name}: no complete result within {total_timeout:g} s")
            line = self.readline(min(idle_timeout, left))
            if line is None:
                if time.monotonic() >= t_end:
                    raise LinkTimeout(f"{self.name}: no complete result within {total_timeout:g} s")
                raise LinkTimeout(f"{self.name}: device silent for {idle_timeout:g} s")
            yield line

    def _take_line(self) -> str | None:
        i = self._buf.find(b"\n")
        if i < 0:
            if len(self._buf) > MAX_LINE:  # no newline in sight: emit the garbage as one line and go on
                chunk = bytes(self._buf[:MAX_LINE])
                del self._buf[:MAX_LINE]
                return self._decode(chunk)
            return None
        raw = bytes(self._buf[:i])
        del self._buf[: i + 1]
        return self._decode(raw)

    def _decode(self, raw: bytes) -> str:
        self.lines_read += 1
        return raw.rstrip(b"\r").decode("ascii", errors="replace")

    def write(self, data: bytes) -> None:
        self._ch.write(data)

    def close(self) -> None:
        self._ch.close()

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
