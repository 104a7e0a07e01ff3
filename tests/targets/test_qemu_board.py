"""The QEMU mps2-an386 twin's board layer: UART, FPU at reset, instruction counting, memory limits, timeouts."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from edgefold.targets import qemu

from edgefold.core.errors import DeviceError, EdgefoldError, ToolchainMissing

HERE = Path(__file__).parent
pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in (qemu.GCC, qemu.QEMU)), reason="arm-none-eabi-gcc / qemu-system-arm absent"
)


@pytest.fixture(scope="module")
def selftest_elf(tmp_path_factory):
    out = tmp_path_factory.mktemp("qemu") / "selftest.elf"
    return qemu.build_elf([HERE / "c" / "selftest.c"], out)


def _check_selftest(lines: list[str]) -> None:
    assert lines[0] == "hello from qemu_an386"
    assert lines[1] == "float ok 3375"  # 1.5 * 2.25 with the FPU enabled by the reset handler
    loop = int(lines[2].split()[-1])
    # the asm loop executes exactly 2,000,000 instructions; SysTick resolution is 40 instructions
    assert abs(loop - 2_000_000) <= 2 * qemu.INSNS_PER_TICK
    assert int(lines[3].split()[-1]) <= 2 * qemu.INSNS_PER_TICK
    assert 0 < int(lines[4].split()[-1]) < 4096  # stack painting sees a small, non-zero high-water mark


@pytest.mark.parametrize("serial", ["tcp", "pty", "stdio"])
def test_selftest_runs_on_every_serial_mode(selftest_elf, serial):
    run = qemu.run_elf(selftest_elf.elf, timeout_s=20, serial=serial)
    _check_selftest(run.lines)


def test_sizes_and_deterministic_counts(selftest_elf):
    s = selftest_elf.sizes
    assert 0 < s.text < 16_384 and s.boot > 0 and s.static_ram == s.data + s.bss
    a = qemu.run_elf(selftest_elf.elf, timeout_s=20).lines
    b = qemu.run_elf(selftest_elf.elf, timeout_s=20).lines
    assert a == b  # -icount shift=0: instruction counts are reproducible


def test_without_newlib(tmp_path):
    b = qemu.build_elf([HERE / "c" / "selftest.c"], tmp_path / "nolibc.elf", newlib=False)
    _check_selftest(qemu.run_elf(b.elf, timeout_s=20).lines)


def test_flash_and_ram_limits_come_from_the_linker(tmp_path):
    big_flash = tmp_path / "flash.c"
    big_flash.write_text("const unsigned char w[1000000] = {1};\nvolatile int i = 12345;\n"
                         "int main(void){return w[i];}\n")
    with pytest.raises(qemu.LinkOverflow, match="Flash overflowed") as e:
        qemu.build_elf([big_flash], tmp_path / "flash.elf")
    assert e.value.flash_over > 0
    big_ram = tmp_path / "ram.c"
    big_ram.write_text("unsigned char a[255000];\nint main(void){a[7]=1;return a[100];}\n")
    with pytest.raises(qemu.LinkOverflow, match="RAM"):
        qemu.build_elf([big_ram], tmp_path / "ram.elf")


def test_hung_program_times_out(tmp_path):
    src = tmp_path / "hang.c"
    src.write_text('#include "ef_board.h"\nint main(void){ef_board_init(); ef_board_write("x\\n",2); for(;;){}}\n')
    b = qemu.build_elf([src], tmp_path / "hang.elf")
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="did not finish"):
        qemu.run_elf(b.elf, timeout_s=1.5)
    assert time.monotonic() - t0 < 60  # the program never ends: only the timeout can stop it


def test_fault_is_reported(tmp_path):
    src = tmp_path / "fault.c"
    src.write_text('#include "ef_board.h"\nint main(void){ef_board_init(); return *(volatile int*)0x70000000;}\n')
    b = qemu.build_elf([src], tmp_path / "fault.elf")
    assert any(line.startswith("EF1 FAULT type=") for line in qemu.run_elf(b.elf, timeout_s=10).lines)


def test_missing_toolchain(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainMissing, match="apt-get install gcc-arm-none-eabi"):
        qemu.build_elf([HERE / "c" / "selftest.c"], tmp_path / "x.elf")


def test_missing_qemu(monkeypatch, selftest_elf, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainMissing, match="apt-get install qemu-system-arm"):
        qemu.run_elf(selftest_elf.elf, timeout_s=5)


def test_not_an_elf_and_cpu_lockup(tmp_path):
    bad = tmp_path / "bad.elf"
    bad.write_bytes(b"not an elf at all")
    with pytest.raises(EdgefoldError, match="not an ELF"):
        qemu.run_elf(bad, timeout_s=10)
    # a fault inside the fault handler locks the CPU up; QEMU aborts and we say so
    src = tmp_path / "lockup.c"
    src.write_text('#include "ef_board.h"\nvoid BusFault_Handler(void){ *(volatile int*)0x70000000 = 1; }\n'
                   'void HardFault_Handler(void){ *(volatile int*)0x70000000 = 1; }\n'
                   'int main(void){ef_board_init(); return *(volatile int*)0x70000004;}\n')
    b = qemu.build_elf([src], tmp_path / "lockup.elf")  # the board's fault handlers are weak
    with pytest.raises(DeviceError, match="Lockup"):
        qemu.run_elf(b.elf, timeout_s=10)
