"""`edgefold build` / `deploy --no-flash`: the board's PlatformIO project (checked by `pio project config`, offline)
and, for a twin, real firmware with the linker's sizes; nothing is flashed."""

from __future__ import annotations

import shutil

import pytest
from edgefold.targets import platformio

from edgefold.core.artifacts import FirmwareBuild
from edgefold.core.errors import ToolchainMissing


@pytest.mark.parametrize("target,platform,board", [("nano33ble", "nordicnrf52", "nano33ble"),
                                                   ("esp-eye", "espressif32", "esp32cam")])
def test_build_writes_a_project_pio_accepts(cli, tmp_path, target, platform, board):
    try:
        platformio.pio_exe()
    except ToolchainMissing:
        pytest.skip("platformio is not installed (pip install 'edgefold[boards]')")
    out = tmp_path / "run"
    rc, stdout, err = cli("build", "--target", target, "--model", "dscnn", "--method", "mag1", "--repair", "none",
                          "--runs", "4", "--warmup", "1", "--offline", "--out", out)
    assert rc == 0, err
    rec = FirmwareBuild.read(out / FirmwareBuild.FILE)
    assert rec.target == target and rec.backend == "edgefold" and rec.project == "build/project"
    assert rec.model_id and rec.arena_bytes and rec.arena_bytes > 0
    version = platformio.PROJECTS[target].version
    if not platformio.platform_installed(platform, version):  # offline: the project is there, the firmware is not
        assert rec.firmware is None and rec.flash is None and "pio pkg install" in (rec.not_built or "")
        assert "no firmware" in stdout
    cfg = platformio.project_config(out / rec.project)
    env = cfg[f"env:{target}"]
    assert env["platform"] == f"platformio/{platform}@{version}" and env["board"] == board  # pinned
    flags = " ".join(env["build_flags"]) if isinstance(env["build_flags"], list) else env["build_flags"]
    assert "-DEF_RUNS=4" in flags and "-DEF_WARMUP=1" in flags
    src = {p.name for p in (out / rec.project / "src").iterdir()}
    assert {"main.cpp", "harness.c", "model.c", "model.h", "input.h", "conv_2d.c"} <= src
    assert not (out / "result.json").exists()  # nothing was flashed or measured


@pytest.mark.parametrize("command,target,compiler", [("deploy --no-flash", "nano33ble-qemu", "arm-none-eabi-gcc"),
                                                     ("build", "esp-eye-qemu", "xtensa-lx106-elf-gcc")])
def test_twin_build_gives_firmware_with_the_linkers_sizes(cli, tmp_path, command, target, compiler):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed (tools/install-debian.sh)")
    out = tmp_path / "run"
    rc, stdout, err = cli(*command.split(), "--target", target, "--model", "dscnn", "--method", "mag1", "--repair",
                          "none", "--out", out)
    assert rc == 0, err
    rec = FirmwareBuild.read(out / FirmwareBuild.FILE)
    assert rec.firmware == "build/firmware.elf" and (out / rec.firmware).is_file() and rec.not_built is None
    assert rec.flash_total and rec.ram_total
    assert rec.arena_bytes is not None and rec.static_ram is not None and rec.flash is not None
    # the linker's figures: the arena is static, so it is inside static RAM; the model's weights are in Flash
    assert rec.arena_bytes < rec.static_ram <= rec.ram_total and 0 < rec.flash <= rec.flash_total
    assert f"{rec.flash:,} B" in stdout and not (out / "result.json").exists()


def test_build_rejects_bad_flags_before_work(cli, tmp_path):
    rc, _, err = cli("build", "--target", "nano33ble", "--model", "dscnn", "--runs", "0", "--out", tmp_path / "x")
    assert rc != 0 and "--runs" in err and not (tmp_path / "x").exists()
    rc, _, err = cli("build", "--target", "no-such-board", "--model", "dscnn", "--out", tmp_path / "y")
    assert rc != 0 and "unknown target" in err and not (tmp_path / "y").exists()
