"""ADD / SUB / MUL on every pair of int8 values at random scales and zero points: the generated C (portable and
packed) equals the TFLM host interpreter byte for byte. The exporter's random single-op tests see a few thousand
pairs at two scale settings; a requantisation constant computed with different precision than TFLM's shows up only
in ~1 output in 10^5 (SUB's multipliers once were combined in float instead of double)."""

from __future__ import annotations

import numpy as np
import pytest
import tflite
from _ef_tflite_builder import all_pairs_model

CODES = {"ADD": tflite.BuiltinOperator.ADD, "SUB": tflite.BuiltinOperator.SUB, "MUL": tflite.BuiltinOperator.MUL}
SETTINGS = 8
# scales and zero points of the folded vit_tiny's LayerNorm x - mean, where float-combined multipliers put 2 of the
# 65536 SUB outputs 1 LSB off
FIXED = [((0.009403504431247711, 0.0012631919234991074, 0.009134425781667233), (11, 5, 8))]


@pytest.mark.parametrize("op", sorted(CODES))
def test_all_pairs_at_random_scales(op: str, tmp_path) -> None:
    from edgefold.compiler.check.tflm import tflm_invoke
    from edgefold.compiler.codegen import generate
    from edgefold.compiler.codegen.host import build_model

    rng = np.random.default_rng(sorted(CODES).index(op))
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256, 1)
    settings = FIXED + [(tuple(float(np.float32(10 ** rng.uniform(-3, 0))) for _ in range(3)),
                         tuple(int(v) for v in rng.integers(-128, 128, 3))) for _ in range(SETTINGS)]
    for i, (scales, zps) in enumerate(settings):
        blob = all_pairs_model(CODES[op], scales, zps)
        want = np.asarray(tflm_invoke(blob, x)).reshape(1, -1)
        generate(blob, tmp_path / f"gen{i}")
        for variant in ("portable", "packed"):
            got = build_model(tmp_path / f"gen{i}", tmp_path / f"build-{variant}", variant).run(x).reshape(1, -1)
            assert np.array_equal(got, want), (
                f"{op} scales {scales} zero points {zps} {variant}: {(got != want).sum()} of 65536 outputs differ")
