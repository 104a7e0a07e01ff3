"""USB-board run path (nano33ble / esp-eye) against a fake board on a pty: the real SerialLink (pyserial) and the
real EF1 parser; serial timeout, garbage, partial lines, reset mid-run, vanished port and CRC mismatch each end
in a clear DeviceError within a bounded time, and bounded retries recover from a transient failure."""

from __future__ import annotations

import time
import zlib
from types import SimpleNamespace

import pytest
from edgefold.targets import usb
from edgefold.targets.base import BuildResult, FlashResult
from edgefold.targets.esp_eye import EspEyeTarget
from edgefold.targets.nano33ble import Nano33BleTarget
from edgefold.targets.protocol import format_record
from fakeboard import FakeBoard, session

from edgefold.core.errors import DeviceError

OUT = bytes([1, 250, 3, 4, 5])
BUILD = BuildResult(artifact=None, extra={"model_id": "0123456789abcdef", "backend": "edgefold"})  # type: ignore


def run(script, target_cls=Nano33BleTarget, boot=(), timeout=3.0, **kw):
    board = FakeBoard(script, boot)
    try:
        t = target_cls(idle_timeout_s=kw.pop("idle", 1.0), open_timeout_s=1.0, **kw)
        t0 = time.monotonic()
        try:
            return t.run_benchmark(BUILD, FlashResult(port=board.port), timeout_s=timeout), board
        finally:
            assert time.monotonic() - t0 < 15  # bounded, whatever happened
    finally:
        board.stop()


def test_clean_run_through_pyserial():
    r, board = run(lambda b, n: session([1500, 1510, 1490], OUT), retries=0)
    assert r.per_run == [1500.0, 1510.0, 1490.0] and r.unit == "us" and r.output == OUT
    assert r.heap_free == 120000 and r.extra["attempts"] == 1 and board.requests == 1


def test_boot_noise_partial_lines_and_stale_records():
    stale = session([9, 9], b"zz")[2:]  # the end of the start-up run we attached to
    noise = ["mbed boot...", "\x00\xff\xfe garbage", "EF1 RUN i=0 t=12"]  # last one: cut off mid-line
    r, _ = run(lambda b, n: ["debug: hello"] + session([7, 8], OUT), boot=noise + stale, retries=0)
    assert r.per_run == [7.0, 8.0]


def test_esp_eye_same_path():
    r, _ = run(lambda b, n: session([100], OUT), target_cls=EspEyeTarget, retries=0)
    assert r.output_crc == zlib.crc32(OUT)


def test_serial_timeout():
    with pytest.raises(DeviceError, match="silent for 1 s.*no BEGIN yet.*2 attempts"):
        run(lambda b, n: ["<silence>"], retries=1)


def test_garbage_only():
    junk = [b"\xff\xfe\x00" * 50 + b"\n", "EF1 RUN i=0 t=5 *00000000", "~~~~"]
    with pytest.raises(DeviceError, match="corrupted|silent"):
        run(lambda b, n: junk, retries=0)


def test_reset_mid_run():
    def script(b, n):
        full = session([5, 6, 7], OUT)
        return full[:3] + ["mbed boot after reset"] + full  # a second BEGIN before END
    with pytest.raises(DeviceError, match="reset during the benchmark.*2 attempts"):
        run(script, retries=1)


def test_transient_reset_recovers_with_a_retry():
    def script(b, n):
        full = session([5, 6, 7], OUT)
        return full[:3] + full if n == 1 else full
    r, board = run(script, retries=1)
    assert r.per_run == [5.0, 6.0, 7.0] and r.extra["attempts"] == 2 and board.requests == 2


def test_port_vanishes():
    with pytest.raises(DeviceError, match="vanished|closed"):
        run(lambda b, n: session([5, 6, 7], OUT)[:2] + ["<close>"], retries=1)


def test_crc_mismatch_between_output_and_checksum():
    def script(b, n):
        lines = session([5], OUT)
        return [format_record("HEX", off=0, data="0000000000") if " HEX " in ln else ln for ln in lines]
    with pytest.raises(DeviceError, match="do not match their CRC"):
        run(script, retries=0)


def test_usb_recognition_and_reenumeration():
    def info(port, vid, pid):
        return SimpleNamespace(device=port, vid=vid, pid=pid, description="x", serial_number=None)

    devs = usb.list_devices(lambda: [info("/dev/ttyS0", None, None), info("/dev/ttyACM0", 0x2341, 0x805A),
                                     info("/dev/ttyUSB0", 0x10C4, 0xEA60)])
    assert [(d.port, d.target, d.mode) for d in devs[:2]] == [("/dev/ttyACM0", "nano33ble", "sketch"),
                                                              ("/dev/ttyUSB0", "esp-eye", "cp2102")]
    assert usb.pick_port("esp-eye", lister=lambda: [info("/dev/ttyUSB0", 0x10C4, 0xEA60)]) == "/dev/ttyUSB0"
    with pytest.raises(DeviceError, match="no nano33ble attached"):
        usb.pick_port("nano33ble", lister=lambda: [])
    # after the 1200-baud touch the board comes back as the bootloader on another port
    calls = {"n": 0}

    def lister():
        calls["n"] += 1
        return [info("/dev/ttyACM0", 0x2341, 0x805A)] if calls["n"] < 3 else [info("/dev/ttyACM1", 0x2341, 0x005A)]

    assert usb.wait_for("nano33ble", {"bootloader"}, timeout_s=5, poll_s=0.01, lister=lister).port == "/dev/ttyACM1"
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="did not re-appear"):
        usb.wait_for("nano33ble", {"bootloader"}, timeout_s=0.3, poll_s=0.05, lister=lambda: [])
    assert time.monotonic() - t0 < 2


def test_touch_1200_on_a_port():
    board = FakeBoard(lambda b, n: [])
    try:
        usb.touch_1200(board.port)  # opens at 1200 baud and closes; must not raise on a real tty
    finally:
        board.stop()
    with pytest.raises(DeviceError, match="1200-baud touch"):
        usb.touch_1200("/dev/does-not-exist")
