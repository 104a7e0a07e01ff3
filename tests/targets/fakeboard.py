"""A fake USB board for the serial-board tests: the far side of a pty pair, played by a thread that behaves like
the benchmark firmware (waits for 'B', prints EF1 records). The host side goes through the real SerialLink
(pyserial on the pty's slave path) and the real protocol parser -- only the board is simulated."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
import zlib

from edgefold.targets.protocol import format_record


def session(times, output: bytes, model: str = "0123456789abcdef", backend: str = "edgefold",
            in_crc: int | None = None) -> list[str]:
    crc = f"{zlib.crc32(output):08x}"
    begin = dict(v=1, board="nano33ble", backend=backend, model=model, unit="us", clock_hz=64000000, warmup=1,
                 runs=len(times), out=len(output), macs=100)
    begin["in"] = 16
    if in_crc is not None:
        begin["in_crc"] = f"{in_crc:08x}"
    lines = [format_record("BEGIN", **begin)]
    lines += [format_record("RUN", i=i, t=t, crc=crc) for i, t in enumerate(times)]
    lines.append(format_record("MEM", arena=2048, stack=700, heap_free=120000))
    lines.append(format_record("OUT", n=len(output), crc=crc))
    lines.append(format_record("HEX", off=0, data=output.hex()))
    lines.append(format_record("END", status="ok", runs=len(times)))
    return lines


class FakeBoard:
    """script(board, n_request) -> list of lines (or bytes) to send for the n-th 'B' request.

    Special items: "<close>" closes the pty master (the USB port vanishes), "<silence>" stops answering.
    """

    def __init__(self, script, boot_lines=()) -> None:
        self.master, slave = os.openpty()
        self.port = os.ttyname(slave)
        tty.setraw(slave)  # no echo: what the board prints must not come back to it as input
        os.close(slave)  # the host opens the slave by path, like /dev/ttyACM0
        self.script = script
        self.boot_lines = list(boot_lines)
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._closed = False
        self._thread.start()

    def _send(self, items) -> bool:
        for item in items:
            if item == "<close>":
                self.close()
                return False
            if item == "<silence>":
                return True
            data = item if isinstance(item, bytes) else (item + "\r\n").encode()
            with contextlib.suppress(OSError):
                os.write(self.master, data)
            time.sleep(0.001)
        return True

    def _run(self) -> None:
        self._send(self.boot_lines)
        while not self._stop.is_set() and not self._closed:
            try:
                r, _, _ = select.select([self.master], [], [], 0.05)
                if not r:
                    continue
                data = os.read(self.master, 64)
            except OSError:
                time.sleep(0.05)  # no reader on the slave side yet
                continue
            for b in data:
                if b in (ord("B"), ord("b")):
                    self.requests += 1
                    if not self._send(self.script(self, self.requests)):
                        return

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                os.close(self.master)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.close()
