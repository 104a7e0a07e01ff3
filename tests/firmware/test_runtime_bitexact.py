"""The host-compiled edgefold runtime gives exactly TFLM's int8 outputs on the zoo models (digits test images).

Default run (`make test`): resnet8, dscnn, mobilenetv1_025 and vit_tiny, uncompressed and folded at r=0.5, 100 inputs
each, through both kernel variants (portable C and the Cortex-M4 SMLAD path with the DSP instructions emulated).
EDGEFOLD_FULL_BITEXACT=1 (`make test-full`) adds vgg11_bn and resnet18, plain and folded (minutes: TFLM's reference
kernels need ~1 s per ResNet-18 inference on this host)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from _ef_runtime_support import digits_inputs, host_model, tflm, zoo_blob

FULL = os.environ.get("EDGEFOLD_FULL_BITEXACT") == "1"
N_INPUTS = 100

CASES = [("resnet8", None), ("dscnn", None), ("mobilenetv1_025", None), ("vit_tiny", None), ("resnet8", 0.5),
         ("dscnn", 0.5), ("mobilenetv1_025", 0.5), ("vit_tiny", 0.5)]
FULL_CASES = [("vgg11_bn", None), ("resnet18", None), ("vgg11_bn", 0.5), ("resnet18", 0.5)]


def _check(name: str, ratio: float | None) -> None:
    blob = zoo_blob(name, ratio)
    x = digits_inputs(blob, N_INPUTS)
    assert len(x) == N_INPUTS
    ref = tflm(blob, x)
    for variant in ("portable", "packed"):
        ours = host_model(blob, variant).run(x)
        bad = np.flatnonzero((ours != ref).any(axis=1))
        assert bad.size == 0, (f"{name} (fold {ratio}) {variant}: {bad.size}/{len(x)} inputs differ from TFLM, "
                               f"first #{bad[:1]}: {ours[bad[:1]]} vs {ref[bad[:1]]}")


# Known differences from TFLM (none today). The folded vit_tiny was one until SUB's multipliers were computed in
# double as TFLM does: its LayerNorm's x - mean was 1 LSB off in one element of one of these 100 inputs.
KNOWN: dict[tuple[str, float | None], str] = {}


def _params(cases: list[tuple[str, float | None]]) -> list:
    return [pytest.param(n, r, id=f"{n}-{'fold' if r else 'base'}",
                         marks=[pytest.mark.xfail(reason=KNOWN[(n, r)], strict=False)] if (n, r) in KNOWN else [])
            for n, r in cases]


@pytest.mark.parametrize("name,ratio", _params(CASES))
def test_zoo_bit_exact(name: str, ratio: float | None) -> None:
    _check(name, ratio)


FULL_PARAMS = _params(FULL_CASES)


@pytest.mark.skipif(not FULL, reason="set EDGEFOLD_FULL_BITEXACT=1 (several minutes)")
@pytest.mark.parametrize("name,ratio", FULL_PARAMS)
def test_zoo_bit_exact_full(name: str, ratio: float | None) -> None:
    _check(name, ratio)
