"""ESP-EYE: ESP32 (dual Xtensa LX6 240 MHz), 4 MB Flash, 8 MB PSRAM (4 MB mapped), 520 KB SRAM. PlatformIO project
(espressif32 / esp32cam + -DCAMERA_MODEL_ESP_EYE; PlatformIO has no esp-eye board id), esptool write-flash,
EF1 report over the CP2102 bridge. No Xtensa compiler can be installed offline, so here the project is generated
and checked; it builds wherever PlatformIO can fetch its toolchain."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edgefold.targets import platformio, usb
from edgefold.targets.base import BuildResult, DeviceSpec, FlashResult
from edgefold.targets.fit import BoardBudget
from edgefold.targets.serial_board import SerialBoardTarget

from edgefold.core.errors import DeviceError, EdgefoldError
from edgefold.core.vocab import MCU_BACKENDS

APP_PARTITION = 3 * 1024 * 1024  # huge_app.csv
PSRAM_MAPPED = 4 * 1024 * 1024
# Static DRAM (.data + .bss) as Arduino-ESP32 2.x links an ESP32 application: dram0_0_seg of its memory.ld,
# 0x3FFB0000 + 0xDB5C with length 0x2C200 - 0xDB5C (the Bluetooth controller's reserve is cut off the front).
STATIC_DRAM_ORIGIN = 0x3FFB_0000 + 0xDB5C
STATIC_DRAM = 0x2C200 - 0xDB5C  # 124,580 B
ESP_EYE = DeviceSpec(
    name="esp-eye", title="Espressif ESP-EYE", cpu="ESP32 dual Xtensa LX6", clock_hz=240_000_000,
    # arenas go to PSRAM (4 MB mapped) and the rest to internal SRAM (~320 KB of DRAM for the application)
    ram_bytes=PSRAM_MAPPED + 320 * 1024, flash_bytes=APP_PARTITION, kind="mcu", usb_modes=(("10c4:ea60", "cp2102"),),
    backends=MCU_BACKENDS)

# Estimated overhead of the Arduino-ESP32 core (WiFi not linked): ~260 KB Flash, ~30 KB DRAM; TFLM adds ~150 KB.
# The edgefold runtime's arena is a static array, i.e. .bss in static DRAM (the Arduino core does not put .bss in
# PSRAM), which the linker limits to STATIC_DRAM for everything static: the core's, the harness's and the arena.
# TFLM's arena comes from heap_caps_malloc and may use the 4 MB of PSRAM.
BUDGETS = {
    "edgefold": BoardBudget(flash_base=300 * 1024, ram_base=48 * 1024, ram_limit=STATIC_DRAM),
    "tflm": BoardBudget(flash_base=450 * 1024, ram_base=56 * 1024),
}


class EspEyeTarget(SerialBoardTarget):
    spec = ESP_EYE
    budgets = BUDGETS
    dtr = False  # DTR/RTS drive EN/IO0 through the auto-reset circuit: keep both released
    rts = False

    def flash(self, build: BuildResult, port: str | None = None) -> FlashResult:
        port = usb.pick_port(self.spec.name, port or self.port)
        out = Path(build.artifact).parent
        images = [("0x1000", out / "bootloader.bin"), ("0x8000", out / "partitions.bin"),
                  ("0x10000", out / "firmware.bin")]
        boot_app0 = next(iter((platformio.core_dir() / "packages").glob(
            "framework-arduinoespressif32*/tools/partitions/boot_app0.bin")), None)
        if boot_app0 is not None:
            images.insert(2, ("0xe000", boot_app0))
        missing = [str(p) for _, p in images if not p.is_file()]
        if missing:
            raise EdgefoldError(f"esp-eye: build output missing: {', '.join(missing)} (build first)")
        cmd = [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", port, "--baud", "921600",
               "write-flash", "-z"]
        for addr, p in images:
            cmd += [addr, str(p)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise DeviceError("esp-eye: esptool did not finish within 300 s") from None
        if r.returncode != 0:
            tail = (r.stdout + r.stderr).strip().splitlines()
            raise DeviceError(f"esp-eye: esptool write-flash failed: {tail[-1] if tail else '?'}")
        return FlashResult(port=port, log=r.stdout + r.stderr)
