"""Generated PlatformIO projects for nano33ble and esp-eye: `pio project config` passes offline, their C sources
(harness + runtime + model) compile and run on the host with the host board layer and compute what the host
computes; fit checks; missing toolchains give a one-line hint."""

from __future__ import annotations

import os
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from edgefold.targets import fit, harness, platformio, registry
from edgefold.targets.esp_eye import EspEyeTarget
from edgefold.targets.harness import BOARDS_DIR, HARNESS_DIR, default_input
from edgefold.targets.nano33ble import Nano33BleTarget
from edgefold.targets.protocol import BenchParser

from edgefold.core.errors import DeviceError, EdgefoldError, ToolchainMissing

HERE = Path(__file__).parent
TINY = HERE / "data" / "tiny_int8.tflite"


@pytest.fixture(scope="module")
def build_input(tmp_path_factory):
    bi = tmp_path_factory.mktemp("bi") / "build-input"
    (bi / "codegen").mkdir(parents=True)
    for f in ("model.c", "model.h", "model.json"):
        shutil.copy(HERE / "c" / f, bi / "codegen" / f)
    shutil.copy(TINY, bi / "model_int8.tflite")
    return bi


def _reference(x: bytes) -> bytes:
    from test_qemu_harness import reference_output

    return reference_output(x)


@pytest.mark.parametrize("target_cls,platform,board", [(Nano33BleTarget, "nordicnrf52", "nano33ble"),
                                                       (EspEyeTarget, "espressif32", "esp32cam")])
@pytest.mark.parametrize("backend", ["edgefold", "tflm"])
def test_project_config_offline(build_input, tmp_path, target_cls, platform, board, backend):
    proj, fw = target_cls().generate(build_input, tmp_path, backend, runs=3, warmup=1)
    cfg = platformio.project_config(proj)
    env = cfg[f"env:{target_cls.spec.name}"]
    fw_ = env["framework"]
    pinned = platformio.PROJECTS[target_cls.spec.name].version
    assert env["platform"] == f"platformio/{platform}@{pinned}" and env["board"] == board
    assert "arduino" in ([fw_] if isinstance(fw_, str) else fw_)
    flags = " ".join(env["build_flags"]) if isinstance(env["build_flags"], list) else env["build_flags"]
    assert "-DEF_RUNS=3" in flags and "-DEF_WARMUP=1" in flags
    if board == "esp32cam":
        assert "-DCAMERA_MODEL_ESP_EYE" in flags and "-DBOARD_HAS_PSRAM" in flags
    libs = env.get("lib_deps", [])
    assert (platformio.TFLM_LIB in libs) == (backend == "tflm")
    assert platformio.TFLM_LIB.endswith("@2.0.0")  # an exact version, not a range
    src = {p.name for p in (proj / "src").iterdir()}
    assert {"main.cpp", "board.cpp", "harness.c", "ef_proto.c", "input.h", "model.h", "ef_stack.h"} <= src
    if backend == "tflm":
        assert {"ef_tflm.cpp", "ef_tflm_ops.h", "model_int8_tflite.c"} <= src
        ops = (proj / "src" / "ef_tflm_ops.h").read_text()
        assert "AddDepthwiseConv2D" in ops and "AddMean" in ops and "AddFullyConnected" in ops
        assert "EF_TFLM_NUM_OPS 3" in ops  # exactly the model's ops


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
def test_generated_sources_compile_and_run_on_the_host(build_input, tmp_path):
    proj, fw = Nano33BleTarget().generate(build_input, tmp_path, "edgefold", runs=3, warmup=1)
    # the project's C sources + the host board layer and the bare-metal main (the Arduino main.cpp needs Arduino)
    srcs = sorted(str(p) for p in (proj / "src").glob("*.c")) + [str(BOARDS_DIR / "host" / "board.c"),
                                                               str(HARNESS_DIR / "main.c")]
    exe = tmp_path / "fw"
    r = subprocess.run(["gcc", "-std=c99", "-O1", "-Wall", "-Werror", "-Wno-unused-function", "-DEF_RUNS=3",
                        "-DEF_WARMUP=1", f"-I{proj / 'src'}", *srcs, "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=20).stdout
    p = BenchParser(expect_model=fw.header.model_id, expect_input_crc=fw.input_crc)
    for line in out.splitlines():
        p.feed(line)
    r = p.result()
    assert r.output == _reference(default_input(96)) and r.output_crc == zlib.crc32(r.output) and r.runs == 3


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
def test_tflm_project_c_sources_compile(build_input, tmp_path):
    proj, fw = EspEyeTarget().generate(build_input, tmp_path, "tflm", runs=2, warmup=0)
    src = proj / "src"
    for c in ("harness.c", "ef_proto.c", "model_int8_tflite.c"):
        subprocess.run(["gcc", "-std=c99", "-fsyntax-only", "-Wall", "-Werror", f"-I{src}", str(src / c)],
                       check=True, capture_output=True)
    assert fw.header.input_bytes == 64 and fw.header.output_bytes == 3 and fw.header.arena_bytes > 1792


def test_offline_build_without_platform_is_toolchain_missing(build_input, tmp_path, monkeypatch):
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(tmp_path / "core"))
    t = Nano33BleTarget(offline=True)
    with pytest.raises(ToolchainMissing, match=r"pio pkg install -g -p platformio/nordicnrf52@10\.11\.0"):
        t.build(build_input, tmp_path / "b", "edgefold", runs=1, warmup=0)


def test_only_the_pinned_platform_version_counts_as_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(tmp_path))
    d = tmp_path / "platforms" / "nordicnrf52"
    d.mkdir(parents=True)
    (d / "platform.json").write_text('{"name": "nordicnrf52", "version": "9.6.0"}')
    pinned = platformio.NORDICNRF52_VERSION
    assert platformio.platform_installed("nordicnrf52") and not platformio.platform_installed("nordicnrf52", pinned)
    other = tmp_path / "platforms" / f"nordicnrf52@{pinned}"
    other.mkdir()
    (other / "platform.json").write_text(f'{{"name": "nordicnrf52", "version": "{pinned}"}}')
    assert platformio.platform_installed("nordicnrf52", pinned)


def test_missing_platformio(monkeypatch, tmp_path):
    monkeypatch.setattr(platformio.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainMissing, match="pip install"):
        platformio.pio_exe()


def test_size_parsing():
    log = ("RAM:   [=         ]  12.3% (used 32244 bytes from 262144 bytes)\n"
           "Flash: [==        ]  19.4% (used 190600 bytes from 983040 bytes)\n")
    assert platformio.parse_sizes(log) == (32244, 190600, 262144, 983040)


def test_fit_check_and_ratio_suggestion(build_input):
    rep = Nano33BleTarget().fit_check(build_input, "tflm")
    assert rep.fits and rep.flash_needed < rep.flash_available
    spec = Nano33BleTarget.spec
    budget = Nano33BleTarget.budgets["edgefold"]
    big = fit.Footprint(weights=2_000_000, model_bytes=2_000_000, arena=150_000, arena_source="test")
    rep = fit.check(spec, budget, big, ratio=0.0)
    assert not rep.fits and "needs" in rep.message and "nano33ble has 960 KB Flash / 256 KB RAM" in rep.message
    r = fit.suggest_ratio(big, budget, spec, 0.0)
    assert r is not None and f"try --ratio {r:.2f}" in rep.message

    def scaled(ratio):  # the first-order model the suggestion is based on
        k = 1 - ratio
        return fit.Footprint(int(big.weights * k * k), int(big.model_bytes * k * k), int(big.arena * k), "")

    assert fit.check(spec, budget, scaled(r)).fits and not fit.check(spec, budget, scaled(r - 0.05)).fits
    huge = fit.Footprint(weights=10**9, model_bytes=10**9, arena=10**6, arena_source="")
    assert "try --ratio" in fit.check(spec, budget, huge).message or "no compression" in \
        fit.check(spec, budget, huge).message


def test_registry():
    assert {"nano33ble", "esp-eye", "nano33ble-qemu"} <= set(registry.names())
    assert registry.get_target("nano33ble", port="/dev/null").port == "/dev/null"
    with pytest.raises(EdgefoldError, match="unknown target"):
        registry.get_target("arduino-uno")
    with pytest.raises(EdgefoldError, match="runs backends"):
        Nano33BleTarget().fit_check(Path("."), "onnxruntime")


def test_targets_command(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one line per row: the checks below read whole cells
    rc, out, err = cli("targets", "--no-usb")
    assert rc == 0 and "nano33ble-qemu" in out and "esp-eye" in out and "2341:805a" in out
    assert "))" not in out and "[emulated]" in out  # CPU in its own column; the twin label is not eaten as markup
    local = next(ln for ln in out.splitlines() if "jetson-local" in ln)
    assert "4 GB" not in local and "(host)" in local  # the twin's figures are this machine's, not the Jetson's


def _stubs(port: str) -> list[str]:
    """Include flags for a port's stub headers: its core's additions first, then the shared Arduino API."""
    core = {"nano33ble": "mbed", "esp32": "esp32"}[port]
    return [f"-I{HERE / 'stubs' / core}", f"-I{HERE / 'stubs'}", f"-I{BOARDS_DIR}", f"-I{HARNESS_DIR}"]


# (port, extra flags): the ESP32 port also without pxTaskGetStackStart (its high-water-mark fallback)
PORT_VARIANTS = [("nano33ble", []), ("esp32", []), ("esp32", ["-DINCLUDE_pxTaskGetStackStart=0"])]


@pytest.mark.skipif(shutil.which("g++") is None, reason="no host g++")
@pytest.mark.parametrize("port,extra", PORT_VARIANTS)
def test_arduino_ports_parse(port, extra):
    """Syntax check of the Arduino board ports against declaration-only stubs (tests/targets/stubs, faithful to the
    real headers' names and signatures): catches C++ errors here; the real Arduino cores compile them in PlatformIO."""
    for f in ("board.cpp", "main.cpp"):
        r = subprocess.run(["g++", "-std=gnu++17", "-fsyntax-only", "-Wall", "-Werror", *extra, *_stubs(port),
                            str(BOARDS_DIR / port / f)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    # and the inline assembly assembles for the port's ISA: Thumb-2 (Nano), Xtensa (ESP32; lx106 is what is here)
    cross = {"nano33ble": ["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
             "esp32": ["xtensa-lx106-elf-g++", "-mlongcalls"]}[port]
    if shutil.which(cross[0]):
        r = subprocess.run([*cross, "-std=gnu++17", "-O2", "-fno-exceptions", "-fno-rtti", "-c", *extra, *_stubs(port),
                            str(BOARDS_DIR / port / "board.cpp"), "-o", os.devnull], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("gcc") is None, reason="no host gcc/g++")
def test_esp32_port_logic_runs_through_the_harness(tmp_path):
    """The ESP32 port's own code, built for the host with the ESP-IDF/Arduino calls implemented there
    (tests/targets/c/esp32_host.cpp): a board without PSRAM is a named error over EF1, not a fallback; heap_free is
    the largest internal block."""
    objs = []
    for src in (BOARDS_DIR / "esp32" / "board.cpp", BOARDS_DIR / "esp32" / "main.cpp", HERE / "c" / "esp32_host.cpp"):
        obj = tmp_path / (src.stem + "_cpp.o")
        subprocess.run(["g++", "-std=gnu++17", "-O1", "-Wall", "-Werror", "-DEF_PSRAM_THRESHOLD=256", *_stubs("esp32"),
                        "-c", str(src), "-o", str(obj)], check=True, capture_output=True)
        objs.append(str(obj))
    srcs = [HARNESS_DIR / "harness.c", HARNESS_DIR / "ef_proto.c", HERE / "c" / "model.c",
            HERE / "c" / "backend_heap_arena.c"]
    (tmp_path / "input.h").write_text(harness.input_header(default_input(96)))
    exe = tmp_path / "esp32_port"
    r = subprocess.run(["gcc", "-std=c99", "-O1", "-Wall", "-Werror", "-DEF_RUNS=2", "-DEF_WARMUP=0", f"-I{tmp_path}",
                        f"-I{HERE / 'c'}", f"-I{BOARDS_DIR}", f"-I{HARNESS_DIR}", *map(str, srcs), *objs, "-lstdc++",
                        "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    def run(psram: str):
        out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=20,
                             env={**os.environ, "EF_TEST_PSRAM": psram}).stdout
        p = BenchParser(expect_model="0123456789abcdef")
        for line in out.splitlines():
            p.feed(line)
        return p.result()

    with pytest.raises(DeviceError, match=r"set-up failed with code -26: the tensor arena needs PSRAM .*psramFound"):
        run("0")
    res = run("1")  # the 512-byte arena (over the test's 256-byte threshold) went to PSRAM
    assert res.output == _reference(default_input(96)) and res.arena_bytes == 512
    assert res.heap_free == 110592  # the largest internal block, not the total free heap nor PSRAM


def test_esp_eye_arena_limits_per_backend():
    fp = fit.Footprint(weights=200_000, model_bytes=200_000, arena=400_000, arena_source="test")
    static = fit.check(EspEyeTarget.spec, EspEyeTarget.budgets["edgefold"], fp)
    assert not static.fits and "for this backend" in static.message  # static arena: internal DRAM only
    assert fit.check(EspEyeTarget.spec, EspEyeTarget.budgets["tflm"], fp).fits  # TFLM arena: PSRAM


def test_missing_bossac(monkeypatch, tmp_path):
    from edgefold.targets.nano33ble import find_bossac

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", str(tmp_path / "core"))
    with pytest.raises(ToolchainMissing, match="bossa-cli"):
        find_bossac()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no host gcc")
def test_profile_project_stamps_every_kernel_call_on_the_host(tmp_path):
    from edgefold.compiler import codegen

    bi = tmp_path / "build-input"
    bi.mkdir()
    blob = TINY.read_bytes()
    (bi / "model_int8.tflite").write_bytes(blob)
    cg = codegen.generate(blob, bi / "codegen")
    proj, fw = Nano33BleTarget().generate(bi, tmp_path / "b", "edgefold", runs=2, warmup=0, profile=True)
    assert "-DEF_PROFILE=1" in (proj / "platformio.ini").read_text()
    assert (proj / "src" / "ef_profile.h").is_file()
    plain, _ = Nano33BleTarget().generate(bi, tmp_path / "c", "edgefold", runs=2, warmup=0)
    assert "EF_PROFILE" not in (plain / "platformio.ini").read_text() and not (plain / "src/ef_profile.h").exists()
    # the project's sources as the board compiles them (host board layer: the timer is in us)
    srcs = sorted(str(p) for p in (proj / "src").glob("*.c")) + [str(BOARDS_DIR / "host" / "board.c"),
                                                               str(HARNESS_DIR / "main.c")]
    exe = tmp_path / "fw"
    r = subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function",
                        "-DEF_PROFILE=1", f"-I{proj / 'src'}", *srcs, "-o", str(exe), "-lm"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=20).stdout
    p = BenchParser(expect_model=fw.header.model_id, expect_profile=True)
    for line in out.splitlines():
        p.feed(line)
    prof = p.result().extra["profile"]
    assert prof["unit"] == "us" and prof["steps"] == len(cg.steps) == 3 and len(prof["values"]) == 3
    with pytest.raises(EdgefoldError, match="backend tflm has none"):
        Nano33BleTarget().generate(bi, tmp_path / "d", "tflm", runs=1, warmup=0, profile=True)
