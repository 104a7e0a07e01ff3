"""Arduino Nano 33 BLE (Sense): nRF52840, Cortex-M4F 64 MHz, 1 MB Flash (983,040 B after the bootloader),
256 KB RAM. PlatformIO project (nordicnrf52 / nano33ble / arduino), upload with `pio run -t upload` or bossac
after the 1200-baud touch, port re-detected after re-enumeration, EF1 report over USB CDC."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from edgefold.targets import platformio, usb
from edgefold.targets.base import BuildResult, DeviceSpec, FlashResult
from edgefold.targets.fit import BoardBudget
from edgefold.targets.serial_board import SerialBoardTarget

from edgefold.core.errors import DeviceError, EdgefoldError, ToolchainMissing
from edgefold.core.vocab import MCU_BACKENDS

NANO33BLE = DeviceSpec(
    name="nano33ble", title="Arduino Nano 33 BLE Sense", cpu="nRF52840 Cortex-M4F", clock_hz=64_000_000,
    ram_bytes=256 * 1024, flash_bytes=983_040, kind="mcu",
    # some Nano 33 BLE Sense revisions enumerate their sketch as 805B
    usb_modes=(("2341:805a", "sketch"), ("2341:805b", "sketch"), ("2341:005a", "bootloader")),
    backends=MCU_BACKENDS)

# Estimated firmware overhead (Arduino mbed core + USB CDC + harness): an empty mbed sketch is ~80 KB Flash and
# ~45 KB static RAM; the micro runtime's kernels add ~15 KB, the TFLM interpreter with a handful of int8 kernels
# ~110 KB Flash and ~8 KB RAM (+ the 16 KB painted stack region both need).
BUDGETS = {
    "edgefold": BoardBudget(flash_base=96 * 1024, ram_base=64 * 1024),
    "tflm": BoardBudget(flash_base=192 * 1024, ram_base=72 * 1024),
}


def find_bossac() -> str:
    """bossac from PATH or PlatformIO's tool package (installed with the nordicnrf52 platform)."""
    found = shutil.which("bossac")
    if found:
        return found
    for d in sorted((platformio.core_dir() / "packages").glob("tool-bossac*")):
        exe = d / "bossac"
        if exe.is_file():
            return str(exe)
    raise ToolchainMissing("bossac not found: apt-get install bossa-cli, or `pio pkg install -g -t "
                           "platformio/tool-bossac-nordicnrf52`")


class Nano33BleTarget(SerialBoardTarget):
    spec = NANO33BLE
    budgets = BUDGETS
    dtr = True  # mbed's USB CDC `Serial` is only true once the host raises DTR
    rts = True

    def _preflight_upload(self) -> None:
        if self.upload == "bossac":
            find_bossac()

    def flash(self, build: BuildResult, port: str | None = None) -> FlashResult:
        port = usb.pick_port(self.spec.name, port or self.port)
        if self.upload == "bossac":
            log = self._bossac(build, port)
        elif self.upload == "pio":
            proj = Path(build.extra["project"])
            r = subprocess.run([platformio.pio_exe(), "run", "-d", str(proj), "-e", "nano33ble", "-t", "upload",
                                "--upload-port", port], capture_output=True, text=True, timeout=300)
            log = r.stdout + r.stderr
            if r.returncode != 0:
                raise DeviceError(f"nano33ble: upload failed: {log.strip().splitlines()[-1] if log.strip() else '?'}")
        else:
            raise EdgefoldError(f"unknown upload method {self.upload!r} (pio, bossac)")
        # the sketch re-enumerates after the upload, possibly on another port: find it again (bounded wait)
        return FlashResult(port=usb.wait_for_sketch(timeout_s=15.0), log=log)

    def _bossac(self, build: BuildResult, port: str) -> str:
        exe = find_bossac()
        binary = Path(build.artifact)
        if binary.suffix != ".bin":
            raise EdgefoldError(f"bossac needs firmware.bin, got {binary.name}")
        boot = usb.enter_bootloader(port, timeout_s=10.0)  # 1200-baud touch + wait for 2341:005A
        cmd = [exe, "-d", f"--port={Path(boot).name if boot.startswith('/dev/') else boot}", "-U", "-i", "-e", "-w",
               str(binary), "-R"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            raise DeviceError("nano33ble: bossac did not finish within 180 s") from None
        if r.returncode != 0:
            raise DeviceError(f"nano33ble: bossac failed: {(r.stdout + r.stderr).strip()[-300:]}")
        return r.stdout + r.stderr
