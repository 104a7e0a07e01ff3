"""The runtime's short requantisation (ef_mbqm_fast) against TFLite's MultiplyByQuantizedMultiplier (ef_mbqm),
and the code generator's check of its preconditions (requant_fast_ok)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from edgefold.compiler.codegen import RUNTIME_DIR
from edgefold.compiler.codegen.quant import requant_fast_ok

CHECK_C = r"""
#include <stdio.h>
#include "ef_quant.h"
static uint64_t st = 88172645463325252ull;
static uint32_t rnd(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return (uint32_t)st; }
static long n = 0, bad = 0;
static void check(int32_t x, int32_t m, int32_t e) {
    ++n;
    if (ef_mbqm(x, m, -e) != ef_mbqm_fast(x, m, e) && bad++ < 3)
        printf("x=%d m=%d e=%d: %d != %d\n", x, m, e, ef_mbqm(x, m, -e), ef_mbqm_fast(x, m, e));
}
int main(void) {
    static const int32_t xs[] = {0, 1, -1, 2, -2, (1 << 30) - 1, -(1 << 30) + 1, 12345, -12345, 1 << 29, -(1 << 29)};
    static const int32_t ms[] = {1, 1 << 30, (1 << 30) + 1, 0x7fffffff, 0x55555555};
    for (unsigned i = 0; i < sizeof xs / sizeof *xs; ++i)
        for (unsigned j = 0; j < sizeof ms / sizeof *ms; ++j)
            for (int32_t e = 1; e <= 31; ++e) check(xs[i], ms[j], e);
    for (long i = 0; i < 4000000; ++i) {
        const int32_t m = (int32_t)((rnd() & 0x3fffffff) | 0x40000000), e = 1 + (int32_t)(rnd() % 31);
        const int32_t x = i % 2 ? (int32_t)(rnd() % (1u << 31)) - (1 << 30) : (int32_t)(rnd() % 4001) - 2000;
        check(x, m, e);
    }
    printf("%ld %ld\n", n, bad);
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs a host C compiler")
def test_fast_requant_equals_reference(tmp_path):
    src = tmp_path / "check.c"
    src.write_text(CHECK_C)
    exe = tmp_path / "check"
    subprocess.run(["gcc", "-O2", "-std=c99", f"-I{RUNTIME_DIR}", str(src), "-o", str(exe)], check=True)
    n, bad = map(int, subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()[-2:])
    assert n > 4_000_000 and bad == 0


def test_requant_fast_ok_checks_shift_multiplier_and_accumulator_bound():
    w = np.full((2, 1, 1, 8), 127, np.int8)  # OHWI: 2 channels, 8 taps
    ok = dict(weights=w, channel_axis=0, bias=np.zeros(2, np.int64), in_offset=128)
    assert requant_fast_ok(**ok, mult=(1 << 30, 1 << 30), shift=(-1, -7))
    assert not requant_fast_ok(**ok, mult=(1 << 30, 1 << 30), shift=(-1, 0))  # exponent 0
    assert not requant_fast_ok(**ok, mult=(1 << 30, 0), shift=(-1, -1))  # zero multiplier
    # 8 taps x 127 x 255 = 259,080: a bias that takes one channel to 2^30 disables the short form
    big = np.array([0, (1 << 30) - 259_080], np.int64)
    assert not requant_fast_ok(w, 0, big, 128, (1 << 30, 1 << 30), (-1, -1))
    assert requant_fast_ok(w, 0, big - 1, 128, (1 << 30, 1 << 30), (-1, -1))
    # depthwise weights (1HWO) sum over the leading axes per output channel
    dw = np.zeros((1, 3, 3, 4), np.int8)
    dw[..., 2] = -128
    assert requant_fast_ok(dw, 3, None, -5, (1 << 30,) * 4, (-3,) * 4)
