"""Faults injected on the twin's serial path for the HIL tests: a forwarding thread between QEMU's UART and the
reader that, after the first `after_lines` protocol lines, kills QEMU ("kill"), flips bits ("garble") or swallows
everything while keeping the link open ("stall")."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from edgefold.targets.serial_link import LinkClosed, SerialLink


def inject(raw: SerialLink, fault: str, after_lines: int, kill: Callable[[], None], closing: threading.Event,
           name: str) -> tuple[SerialLink, threading.Thread, list[socket.socket]]:
    """The link the reader gets, the forwarding thread (started) and the sockets to close when the session ends."""
    ours, theirs = socket.socketpair()
    t = threading.Thread(target=_forward, args=(raw, theirs, fault, after_lines, kill, closing), daemon=True,
                         name="qemu-fault")
    t.start()
    return SerialLink.from_socket(ours, f"{name}+fault:{fault}"), t, [ours, theirs]


def _forward(raw: SerialLink, out: socket.socket, fault: str, after_lines: int, kill: Callable[[], None],
             closing: threading.Event) -> None:
    n = 0
    try:
        while not closing.is_set():
            line = raw.readline(0.2)
            if line is None:
                continue
            if line.startswith("EF"):
                n += 1
            data = (line + "\n").encode("ascii", errors="replace")
            if n > after_lines:
                if fault == "kill":
                    kill()
                    break
                if fault == "stall":
                    continue  # swallow everything from here on, keep the link open
                if fault == "garble":
                    data = bytes(b ^ 0x20 if (i * 7 + n) % 5 == 0 else b for i, b in enumerate(data))
            out.sendall(data)
    except (LinkClosed, OSError):
        pass  # QEMU or the reader went away: nothing left to forward
    finally:
        if fault != "stall":
            with contextlib.suppress(OSError):
                out.shutdown(socket.SHUT_WR)
        raw.close()
