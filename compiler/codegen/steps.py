"""What lowering produces: the runtime calls (steps) with their constant arrays and pointer arguments, and the
buffers and in-place pairs the arena planner places."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from edgefold.compiler.codegen.planner import Buffer


@dataclass
class ConstArray:
    name: str
    ctype: str  # int8_t, int32_t, float
    values: np.ndarray


@dataclass
class Ref:
    """A pointer argument: a tensor (arena, model input, or constant) or an op's scratch buffer."""
    kind: str  # "tensor" | "scratch" | "const" | "null"
    key: str | int
    ctype: str
    offset: int = 0  # bytes into the tensor (CONCATENATION writes bands of its output)


@dataclass
class Step:
    fn: str
    struct: str | None
    fields: dict
    args: list[Ref]
    op: str
    op_index: int = -1  # the TFLite op it lowers (set by Lowerer.add_step): joins a profile to the model's layers


@dataclass
class Lowered:
    steps: list[Step] = field(default_factory=list)
    consts: list[ConstArray] = field(default_factory=list)
    buffers: dict[str, Buffer] = field(default_factory=dict)
    overlaps: list[tuple[str, str, int]] = field(default_factory=list)
    storage: dict[int, int] = field(default_factory=dict)  # tensor -> storage root tensor
    input_root: int = -1
    output_root: int = -1
