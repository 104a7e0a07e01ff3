"""The .tflite as C: compiles as C99, C11 and C++, is 16-byte aligned and holds exactly the model bytes."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from edgefold.compiler.export.carray import HEADER, SOURCE, tflite_to_c

MAIN = r"""
#include <stdint.h>
#include <stdio.h>
#include "model_int8_tflite.h"
int main(void) {
  if (((uintptr_t)ef_model_tflite) % 16u != 0u) return 3;
  fwrite(ef_model_tflite, 1, ef_model_tflite_len, stdout);
  return 0;
}
"""


@pytest.fixture
def blob() -> bytes:
    # a real-looking header followed by every byte value, and an odd length
    return b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 3 + b"\x7f"


def _write(tmp_path, blob: bytes):
    h, c = tflite_to_c(blob)
    (tmp_path / HEADER).write_text(h)
    (tmp_path / SOURCE).write_text(c)
    (tmp_path / "main.c").write_text(MAIN)


@pytest.mark.parametrize("std", ["c99", "c11"])
def test_compiles_and_round_trips(tmp_path, blob, std):
    gcc = shutil.which("gcc") or pytest.skip("gcc not installed")
    _write(tmp_path, blob)
    exe = tmp_path / "a.out"
    subprocess.run([gcc, f"-std={std}", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(tmp_path / SOURCE),
                    str(tmp_path / "main.c")], check=True, capture_output=True)
    run = subprocess.run([str(exe)], capture_output=True, check=False)
    assert run.returncode == 0, "array not 16-byte aligned"
    assert run.stdout == blob


def test_symbols_and_cxx_linkage(tmp_path, blob):
    h, c = tflite_to_c(blob)
    assert "alignas(16) const unsigned char ef_model_tflite[]" in c
    assert f"const unsigned int ef_model_tflite_len = {len(blob)}u;" in c
    assert 'extern "C"' in h and "extern const unsigned char ef_model_tflite[];" in h
    gxx = shutil.which("g++") or pytest.skip("g++ not installed")
    _write(tmp_path, blob)
    subprocess.run([gxx, "-std=c++11", "-Wall", "-Werror", "-x", "c++", "-c", "-o", str(tmp_path / "m.o"),
                    str(tmp_path / SOURCE)], check=True, capture_output=True)


def test_cortex_m4_object_is_aligned(tmp_path, blob):
    cc = shutil.which("arm-none-eabi-gcc") or pytest.skip("arm-none-eabi-gcc not installed")
    _write(tmp_path, blob)
    obj = tmp_path / "m.o"
    subprocess.run([cc, "-mcpu=cortex-m4", "-mthumb", "-std=c99", "-Os", "-Wall", "-Werror", "-c", "-o", str(obj),
                    str(tmp_path / SOURCE)], check=True, capture_output=True)
    objdump = shutil.which("arm-none-eabi-objdump") or pytest.skip("arm-none-eabi-objdump not installed")
    out = subprocess.run([objdump, "-h", str(obj)], capture_output=True, text=True, check=True).stdout
    rodata = [line for line in out.splitlines() if ".rodata" in line]
    assert rodata and rodata[0].split()[-1] in ("2**4", "2**5", "2**6")  # section alignment >= 16
