"""Arena planner invariants, TFLite quantisation arithmetic, and clean builds of generated code."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from _ef_tflite_builder import fc_model
from edgefold.compiler.codegen import RUNTIME_DIR, generate
from edgefold.compiler.codegen.planner import Buffer, plan
from edgefold.compiler.codegen.quant import quantize_multiplier


def test_planner_reuses_dead_buffers() -> None:
    bufs = {"a": Buffer("a", 1000, 0, 1), "b": Buffer("b", 1000, 1, 2), "c": Buffer("c", 1000, 2, 3)}
    p = plan(bufs)
    assert p.arena_bytes == 2016  # a and c share, b sits beside them (16-byte aligned)
    assert p.offsets["a"] == p.offsets["c"]


def test_planner_in_place_chain_is_smaller_and_verified() -> None:
    bufs = {"a": Buffer("a", 4096, 0, 1), "b": Buffer("b", 4096, 1, 2), "s": Buffer("s", 64, 1, 1)}
    p = plan(bufs, [("b", "a", 544)])
    assert p.in_place == [("b", "a", 544)]
    assert p.offsets["a"] - p.offsets["b"] == 544
    assert p.arena_bytes < 2 * 4096


def test_planner_refuses_in_place_over_live_input() -> None:
    # a is still read at step 2, so b may not overwrite it
    bufs = {"a": Buffer("a", 4096, 0, 2), "b": Buffer("b", 4096, 1, 2)}
    p = plan(bufs, [("b", "a", 0)])
    assert p.in_place == [] and p.arena_bytes == 8192


@pytest.mark.parametrize("m,expect", [(0.5, (1 << 30, 0)), (1.0, (1 << 30, 1)), (0.75, (3 << 29, 0)),
                                      (2.0 ** -40, (0, 0)), (0.0, (0, 0))])
def test_quantize_multiplier(m: float, expect: tuple[int, int]) -> None:
    assert quantize_multiplier(m) == expect


def test_handmade_fc_matches_tflm(tmp_path) -> None:
    from edgefold.compiler.check.tflm import tflm_invoke
    from edgefold.compiler.codegen.host import build_model

    for seed in range(3):
        blob = fc_model(fin=5 + 7 * seed, fout=3 + seed, seed=seed)
        generate(blob, tmp_path / str(seed))
        x = np.random.default_rng(seed).integers(-128, 128, (20, 5 + 7 * seed), dtype=np.int8)
        ref = np.asarray(tflm_invoke(blob, x)).reshape(20, -1)
        for variant in ("portable", "packed"):
            assert np.array_equal(build_model(tmp_path / str(seed), tmp_path, variant).run(x), ref)


STRICT = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-c"]
M4 = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]


@pytest.mark.parametrize("cc,flags", [("gcc", []), ("gcc", ["-DEF_PACKED_EMULATE"]), ("arm-none-eabi-gcc", M4)])
def test_generated_code_builds_warning_free(tmp_path, cc: str, flags: list[str]) -> None:
    if not shutil.which(cc):
        pytest.skip(f"{cc} not installed")
    generate(fc_model(), tmp_path)
    for src in [tmp_path / "model.c", *sorted(RUNTIME_DIR.glob("*.c"))]:
        r = subprocess.run([cc, *STRICT, *flags, f"-I{RUNTIME_DIR}", f"-I{tmp_path}", str(src), "-o",
                            str(tmp_path / (src.stem + ".o"))], capture_output=True, text=True)
        assert r.returncode == 0, f"{cc} {src.name}: {r.stderr[:1000]}"
