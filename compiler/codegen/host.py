"""Build generated models with the host C compiler into shared libraries and run them through ctypes.

The runtime is compiled once per (variant, build dir) into position-independent objects; each model then costs
one compile of its model.c and a link. Variants: "portable" (plain C kernels) and "packed" (the Cortex-M4 SMLAD
code path, with the DSP instructions emulated in C, so hosts test the very algorithm the MCU runs)."""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np

from edgefold.core.errors import EdgefoldError, ToolchainMissing

VARIANTS = {"portable": [], "packed": ["-DEF_PACKED_EMULATE"]}
CFLAGS = ["-std=c99", "-O2", "-fPIC", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]


def runtime_dir() -> Path:
    from edgefold.compiler.codegen import RUNTIME_DIR

    return RUNTIME_DIR


def _cc() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise ToolchainMissing("no host C compiler (install gcc)")
    return cc


def _run(cmd: list[str]) -> None:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise EdgefoldError(f"host build failed: {' '.join(cmd[:3])} ...\n{p.stderr.strip()[:2000]}")


def build_runtime(build_dir: str | Path, variant: str = "portable") -> list[Path]:
    """Compile every firmware/runtime/*.c once; returns the object files (cached by source hash)."""
    srcs = sorted(runtime_dir().glob("*.c"))
    h = hashlib.sha256()
    for f in sorted(runtime_dir().glob("*.[ch]")):
        h.update(f.name.encode() + f.read_bytes())
    h.update(" ".join(CFLAGS + VARIANTS[variant]).encode())
    out = Path(build_dir) / f"runtime-{variant}-{h.hexdigest()[:12]}"
    objs = [out / (s.stem + ".o") for s in srcs]
    if all(o.exists() for o in objs):
        return objs
    out.mkdir(parents=True, exist_ok=True)
    for s, o in zip(srcs, objs, strict=True):
        _run([_cc(), *CFLAGS, *VARIANTS[variant], f"-I{runtime_dir()}", "-c", str(s), "-o", str(o)])
    return objs


class HostModel:
    """A generated model loaded from a shared library: run(int8 batch) -> int8 outputs."""

    def __init__(self, lib_path: Path, in_bytes: int, out_bytes: int):
        self.lib = ctypes.CDLL(str(lib_path))
        self.fn = self.lib.ef_model_run
        self.fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.fn.restype = ctypes.c_int
        self.in_bytes, self.out_bytes = in_bytes, out_bytes

    def run(self, x: np.ndarray) -> np.ndarray:
        """x: int8 array of shape (n, ...) with EF_INPUT_BYTES per sample."""
        x = np.ascontiguousarray(x, dtype=np.int8).reshape(-1, self.in_bytes)
        y = np.zeros((len(x), self.out_bytes), np.int8)
        for i in range(len(x)):
            rc = self.fn(x[i].ctypes.data, y[i].ctypes.data)
            if rc != 0:
                raise EdgefoldError(f"ef_model_run failed at step {rc}")
        return y


def _define(header: str, name: str) -> int:
    for line in header.splitlines():
        if line.startswith(f"#define {name} "):
            return int(line.split()[2].rstrip("UL"))
    raise EdgefoldError(f"{name} missing from model.h")


def build_model(model_dir: str | Path, build_dir: str | Path, variant: str = "portable") -> HostModel:
    """Compile model_dir/model.c against the runtime objects into a shared library and load it."""
    model_dir, build_dir = Path(model_dir), Path(build_dir)
    objs = build_runtime(build_dir, variant)
    header = (model_dir / "model.h").read_text()
    # the library depends on the model source and on the runtime build (its folder name carries the hash)
    tag = hashlib.sha256((model_dir / "model.c").read_bytes() + objs[0].parent.name.encode()).hexdigest()[:12]
    lib = build_dir / f"model-{variant}-{tag}.so"
    if not lib.exists():
        mobj = build_dir / f"model-{variant}-{tag}.o"
        _run([_cc(), *CFLAGS, *VARIANTS[variant], f"-I{runtime_dir()}", f"-I{model_dir}", "-c",
              str(model_dir / "model.c"), "-o", str(mobj)])
        _run([_cc(), "-shared", "-o", str(lib), str(mobj), *map(str, objs), "-lm"])
    return HostModel(lib, _define(header, "EF_INPUT_BYTES"), _define(header, "EF_OUTPUT_BYTES"))
