"""The words every layer shares, defined once: compression methods, repairs, backends, fault kinds.

argparse choices, the pipeline, hil, the compressor and the benchmarks all read these tuples.
"""

from __future__ import annotations

from edgefold.core.errors import EdgefoldError

METHODS = ("fold", "mag1", "mag2")
REPAIRS = ("none", "repair", "ar", "dir")
MCU_BACKENDS = ("edgefold", "tflm")
LINUX_BACKENDS = ("onnxruntime", "tensorrt")
BACKENDS = MCU_BACKENDS + LINUX_BACKENDS
FAULTS = ("kill", "garble", "stall")  # serial-path fault injection on the emulated twins


def check_choice(what: str, value: str, allowed: tuple[str, ...]) -> str:
    """`value` if it is one of `allowed`, else a one-line EdgefoldError naming the choices."""
    if value not in allowed:
        raise EdgefoldError(f"unknown {what} {value!r}; choose one of: {', '.join(allowed)}")
    return value
