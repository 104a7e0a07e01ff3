"""The ESP-EYE's Xtensa twin (esp-eye-qemu): gcc-xtensa-lx106 + qemu-system-xtensa -M sim -cpu lx106 -icount
shift=0. Semihosting console, CCOUNT instruction counts, the integer helpers the lx106 libgcc lacks, the ESP32's
linker limits, and resnet8 deployed with `edgefold deploy` bit-exact against the TFLM host."""

from __future__ import annotations

import json
import shutil
import time
import zlib
from pathlib import Path

import pytest
from edgefold.targets.fit import DoesNotFit
from edgefold.targets.harness import default_input
from edgefold.targets.qemu import esp_eye as xt
from xtensa_helpers import program

from edgefold.core.errors import DeviceError, EdgefoldError, ToolchainMissing

HERE = Path(__file__).parent
TINY = HERE / "data" / "tiny_int8.tflite"
pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in (xt.GCC, xt.QEMU)), reason="gcc-xtensa-lx106 / qemu-system-xtensa absent"
)


@pytest.fixture(scope="module")
def selftest_elf(tmp_path_factory):
    return xt.build_elf([HERE / "c" / "xtensa_selftest.c"], tmp_path_factory.mktemp("xt") / "selftest.elf")


@pytest.mark.parametrize("serial", ["tcp", "stdio"])
def test_console_counting_and_stack(selftest_elf, serial):
    lines = xt.run_elf(selftest_elf.elf, timeout_s=20, serial=serial).lines
    assert lines[0] == "hello from qemu_lx106"
    # the asm loop executes exactly 2,000,000 instructions; CCOUNT ticks once per 25 of them under -icount shift=0,
    # and the two timer reads themselves cost one or two ticks ("empty")
    loop, empty = int(lines[1].split()[-1]), int(lines[2].split()[-1])
    assert empty <= 2 * xt.INSNS_PER_TICK and abs(loop - empty - 2_000_000) <= xt.INSNS_PER_TICK
    assert 4 * 512 <= int(lines[3].split()[-1]) < 4 * 512 + 512  # four 512-byte frames below the mark


def test_counts_are_deterministic_and_pty_is_refused(selftest_elf):
    assert xt.run_elf(selftest_elf.elf, timeout_s=20).lines == xt.run_elf(selftest_elf.elf, timeout_s=20).lines
    with pytest.raises(EdgefoldError, match="tcp or stdio"):
        xt.run_elf(selftest_elf.elf, timeout_s=5, serial="pty")


def test_integer_helpers_match_python(tmp_path):
    """64-bit multiply and the divisions (firmware/boards/xtensa_sim/lx106_libgcc.c) on the twin, against Python."""
    src = tmp_path / "helpers.c"
    src.write_text(program(n=300))
    lines = xt.run_elf(xt.build_elf([src], tmp_path / "helpers.elf").elf, timeout_s=30).lines
    assert len(lines) == 8
    for line in lines:
        name, bad, _, total = line.split()
        assert bad == "0" and int(total) > 250, line


def test_fault_is_reported(tmp_path):
    src = tmp_path / "fault.c"
    src.write_text('#include "ef_board.h"\nint main(void){ef_board_init(); return *(volatile int*)0x70000000;}\n')
    lines = xt.run_elf(xt.build_elf([src], tmp_path / "fault.elf").elf, timeout_s=10).lines
    assert any(line.startswith("EF1 FAULT type=load-store-pif-address-error cause=0x0000000f") for line in lines)


def test_hung_program_times_out(tmp_path):
    src = tmp_path / "hang.c"
    src.write_text('#include "ef_board.h"\nint main(void){ef_board_init(); ef_board_write("x\\n",2); for(;;){}}\n')
    b = xt.build_elf([src], tmp_path / "hang.elf")
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="did not finish"):
        xt.run_elf(b.elf, timeout_s=1.5)
    assert time.monotonic() - t0 < 60  # the program never ends: only the timeout can stop it


def test_esp32_limits_come_from_the_linker(tmp_path):
    flash = tmp_path / "flash.c"
    flash.write_text("const unsigned char w[3200000] = {1};\nvolatile int i = 12345;\nint main(void){return w[i];}\n")
    with pytest.raises(xt.LinkOverflow, match=r"Flash overflowed by [\d,]+ bytes \(application partition 3,145,728\)"):
        xt.build_elf([flash], tmp_path / "flash.elf")
    dram = tmp_path / "dram.c"
    dram.write_text("unsigned char a[125000];\nint main(void){a[7]=1;return a[100];}\n")
    with pytest.raises(xt.LinkOverflow, match=r"DRAM overflowed by [\d,]+ bytes \(static DRAM 124,580\)"):
        xt.build_elf([dram], tmp_path / "dram.elf")


def test_float_arithmetic_is_a_one_line_error(tmp_path):
    src = tmp_path / "f.c"
    src.write_text("volatile float a = 1.5f, b = 2.0f;\nint main(void){return (int)(a * b + a);}\n")
    with pytest.raises(EdgefoldError, match=r"floating-point arithmetic \(__addsf3, __mulsf3\)") as e:
        xt.build_elf([src], tmp_path / "f.elf")
    assert "\n" not in str(e.value)


def test_missing_tools(monkeypatch, selftest_elf, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainMissing, match="apt-get install gcc-xtensa-lx106"):
        xt.build_elf([HERE / "c" / "xtensa_selftest.c"], tmp_path / "x.elf")
    with pytest.raises(ToolchainMissing, match="apt-get install qemu-system-misc"):
        xt.run_elf(selftest_elf.elf, timeout_s=5)


def test_codegen_model_matches_host_tflm_and_too_big_is_refused(tmp_path):
    codegen = pytest.importorskip("edgefold.compiler.codegen")
    import numpy as np
    from edgefold.compiler.check.tflm import tflm_invoke

    bi = tmp_path / "build-input"
    bi.mkdir()
    blob = TINY.read_bytes()
    (bi / "model_int8.tflite").write_bytes(blob)
    cg = codegen.generate(blob, bi / "codegen")
    t = xt.EspEyeQemuTarget()
    b = t.build(bi, tmp_path / "build", "edgefold", runs=2, warmup=1)
    r = t.run_benchmark(b, t.flash(b), timeout_s=60)
    host = tflm_invoke(blob, np.frombuffer(default_input(64), dtype=np.int8).reshape(1, 8, 8, 1)).tobytes()
    assert r.output == host and r.output_crc == zlib.crc32(host) and r.arena_bytes == cg.arena_bytes
    assert r.extra["board"] == "qemu_lx106" and "lx106" in r.extra["device"] and "LX6" in r.extra["device"]
    assert r.extra["latency_estimate"]["kind"] == "estimated" and r.extra["latency_estimate"]["clock_hz"] == 240e6
    # an arena larger than the ESP32's static DRAM: the real linker limit decides, with the ratio hint
    src = (bi / "codegen" / "model.c").read_text()
    big = src.replace("#include", "static volatile unsigned char ef_big[130000];\n#include", 1)
    big = big.replace("int ef_model_run(const int8_t *input, int8_t *output) {",
                      "int ef_model_run(const int8_t *input, int8_t *output) {\n    ef_big[input[0] & 127] = 1;", 1)
    assert big.count("ef_big") == 2
    (bi / "codegen" / "model.c").write_text(big)
    with pytest.raises(DoesNotFit, match=r"DRAM overflowed by [\d,]+ bytes.*has 3072 KB Flash / 121 KB RAM$"):
        t.build(bi, tmp_path / "build2", "edgefold", runs=1, warmup=0)


@pytest.fixture(scope="module")
def harness_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("xtwin")
    (root / "build-input" / "codegen").mkdir(parents=True)
    for f in ("model.c", "model.h", "model.json"):
        shutil.copy(HERE / "c" / f, root / "build-input" / "codegen" / f)
    return xt.EspEyeQemuTarget().build(root / "build-input", root / "build", "edgefold", runs=3, warmup=1)


def test_harness_figures_and_fault_injection(harness_build):
    from test_qemu_harness import reference_output

    t = xt.EspEyeQemuTarget()
    r = t.run_benchmark(harness_build, t.flash(harness_build), timeout_s=30)
    assert r.output == reference_output(default_input(96)) and r.unit == "instructions" and len(set(r.per_run)) <= 2
    assert r.arena_bytes == 512 and 0 < r.stack_bytes < 1024 and r.heap_free is None  # no heap on the twin
    assert r.extra["instruction_resolution"] == 25 and "stack_warning" not in r.extra
    t = xt.EspEyeQemuTarget(fault="kill", idle_timeout_s=3.0, retries=1)
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="device vanished or was reset.*2 attempts"):
        t.run_benchmark(harness_build, t.flash(harness_build), timeout_s=600)
    assert time.monotonic() - t0 < 300  # bounded by the fault, not by the total timeout


def test_deploy_resnet8_bit_exact_and_deterministic(trained, tmp_path, cli):
    out = tmp_path / "r8"
    rc, _, err = cli("deploy", "--target", "esp-eye-qemu", "--model", "resnet8", "--weights", trained("resnet8", 1),
                     "--ratio", "0", "--repair", "none", "--runs", "2", "--warmup", "1", "--out", out)
    assert rc == 0, err
    r = json.loads((out / "result.json").read_text())
    assert r["target"] == "esp-eye-qemu" and r["emulated"] is True and r["backend"] == "edgefold"
    assert r["output_crc_match"] is True  # the lx106 computed exactly what the TFLM host interpreter computed
    assert r["instructions"] > r["macs"] > 0 and r["latency"]["kind"] == "estimated"
    assert "lx106" in r["device"] and "estimate" not in r["device"]
    assert 0 < r["flash"] <= 3 * 1024 * 1024 and 0 < r["ram"]["static"] <= 124_580 and r["ram"]["stack"] > 0
    first = r["latency"]["per_run_instructions"]
    rc, _, err = cli("bench", "--target", "esp-eye-qemu", "--from", out, "--runs", "2")
    assert rc == 0, err
    again = json.loads((out / "result.json").read_text())
    assert again["output_crc_match"] is True
    # the same instructions each run; CCOUNT reads them in 25-instruction ticks, and where a run starts within a
    # tick depends on how long the harness polled for the host's command, so two readings differ by at most a tick
    runs = first + again["latency"]["per_run_instructions"]
    assert max(runs) - min(runs) <= xt.INSNS_PER_TICK, runs


def test_bad_input_is_one_line(tmp_path, cli):
    rc, _, err = cli("deploy", "--target", "esp-eye-qemu", "--model", "dscnn", "--backend", "tflm",
                     "--out", tmp_path / "o")
    assert rc != 0 and "tflm" in err and "Traceback" not in err
    rc, _, err = cli("deploy", "--target", "esp-eye-qemu", "--model", "vgg11_bn", "--ratio", "0", "--repair", "none",
                     "--out", tmp_path / "v")
    assert rc != 0 and "Traceback" not in err and "--ratio" in err.strip().splitlines()[-1]
    assert not (tmp_path / "v" / "result.json").exists()
