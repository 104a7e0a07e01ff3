"""USB-board run path (nano33ble / esp-eye) against a fake board on a pty: the real SerialLink (pyserial) and the
real EF1 parser; serial timeout, garbage, partial lines, reset mid-run, vanished port and CRC mismatch each end
in a clear DeviceError within a bounded time, and bounded retries recover from a transient failure."""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from edgefold.targets import platformio, usb
from edgefold.targets.base import BuildResult, FlashResult
from edgefold.targets.esp_eye import EspEyeTarget
from edgefold.targets.nano33ble import Nano33BleTarget
from edgefold.targets.protocol import format_record
from edgefold.targets.serial_board import check_output
from fakeboard import FakeBoard, session

from edgefold.core.errors import DeviceError
from edgefold.pipeline import output_match

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


# ------------------------------------------------------------------ tflm backend: the board's own TFLM library

EXPECTED = bytes(np.array([12, -40, 7, 90, -128, 3, 0, -5, 66, 1], dtype=np.int8).tobytes())


def _shifted(delta: dict[int, int]) -> bytes:
    a = np.frombuffer(EXPECTED, np.int8).astype(np.int16)
    for i, d in delta.items():
        a[i] += d
    return np.clip(a, -128, 127).astype(np.int8).tobytes()


def _run_backend(backend: str, device_out: bytes):
    build = BuildResult(artifact=None, extra={"model_id": "0123456789abcdef", "backend": backend,  # type: ignore
                                              "expected_output": EXPECTED.hex()})
    board = FakeBoard(lambda b, n: session([100, 101], device_out, backend=backend))
    try:
        t = Nano33BleTarget(idle_timeout_s=5.0, open_timeout_s=5.0, retries=0)
        return t.run_benchmark(build, FlashResult(port=board.port), timeout_s=30)
    finally:
        board.stop()


def test_tflm_library_difference_is_reported_not_a_crc_failure():
    """The board's library TFLM rounds MEAN differently: 3 LSB off is reported with its reason, and the deploy's
    output check (pipeline.output_match) passes on it instead of raising a CRC mismatch."""
    r = _run_backend("tflm", _shifted({0: 3, 4: 1, 9: -2}))
    chk = r.extra["output_check"]
    assert chk["verdict"] == "within_tolerance" and chk["max_abs_diff_lsb"] == 3 and chk["compared"] == 10
    assert platformio.TFLM_LIB in chk["reason"] and "max |Δ| = 3 LSB" in chk["reason"]
    assert r.output_crc != zlib.crc32(EXPECTED)  # the CRC really differs: this is not passed off as bit-exact
    assert output_match(r, None, "mcu") is True  # type: ignore[arg-type]


@pytest.mark.parametrize("backend, out, verdict", [
    ("tflm", EXPECTED, "exact"),
    ("tflm", _shifted({3: 40, 5: -17}), "mismatch"),  # another model's logits: far outside the library's rounding
    ("tflm", _shifted({2: platformio.TFLM_LIBRARY_TOLERANCE_LSB + 1}), "mismatch"),
    ("edgefold", _shifted({0: 1}), "mismatch"),  # the edgefold runtime is bit-exact: 1 LSB is already wrong
])
def test_output_check_verdicts(backend, out, verdict):
    r = _run_backend(backend, out)
    assert r.extra["output_check"]["verdict"] == verdict, r.extra["output_check"]
    assert output_match(r, None, "mcu") is (verdict == "exact")  # type: ignore[arg-type]


def test_unmeasurable_difference_is_unverified_not_a_mismatch():
    chk = check_output(None, 123, EXPECTED, "tflm")
    assert chk["verdict"] == "unverified" and "no output bytes" in chk["reason"]
    assert check_output(EXPECTED + b"\0", 1, EXPECTED, "tflm")["verdict"] == "mismatch"


def test_tflm_library_is_pinned_in_projects_and_docs():
    assert platformio.TFLM_LIB == f"{platformio.TFLM_LIBRARY}@{platformio.TFLM_LIBRARY_VERSION}"
    assert not any(c in platformio.TFLM_LIBRARY_VERSION for c in "^~<>=*")  # an exact version, not a range
    docs = (Path(__file__).resolve().parents[2] / "docs" / "targets.md").read_text()
    assert platformio.TFLM_LIB in docs and f"{platformio.TFLM_LIBRARY_TOLERANCE_LSB} LSB" in docs
