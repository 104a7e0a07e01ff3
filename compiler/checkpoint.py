"""Model specs, checkpoints and compressed-model artifacts.

A checkpoint is a plain dict of tensors and primitives, so it loads with `torch.load(weights_only=True)`:

    {"format": "edgefold-model/1", "spec": {...}, "plan": {...}, "state_dict": {...}, "meta": {...}}

`spec` says how to build the original architecture (zoo name or `module:callable` factory), `plan` lists the
module attributes that compression changed (channel counts, heads), so a compressed model is rebuilt
without unpickling any code: build the original, apply the plan, resize tensors, load the state_dict.
A bare `state_dict` file (what `torch.save(model.state_dict())` writes) is accepted as weights too.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from edgefold.compiler import zoo
from torch import nn

from edgefold.core.errors import EdgefoldError
from edgefold.core.fsutil import atomic_path

FORMAT = "edgefold-model/1"


@dataclass
class ModelSpec:
    """How to build the uncompressed architecture."""

    name: str | None = None  # zoo name
    factory: str | None = None  # "package.module:callable"
    input_shape: tuple[int, ...] = ()
    num_classes: int = 10

    def build(self) -> nn.Module:
        if self.name is not None:
            return zoo.build(self.name, self.num_classes)
        if self.factory is None:
            raise EdgefoldError("no model given: pass --model NAME or --factory module:callable")
        fn = import_factory(self.factory)
        try:
            model = fn()
        except Exception as e:  # user code: report, don't crash
            raise EdgefoldError(f"factory {self.factory}() failed: {type(e).__name__}: {e}") from None
        if not isinstance(model, nn.Module):
            raise EdgefoldError(f"factory {self.factory}() returned {type(model).__name__}, not a torch.nn.Module")
        return model

    @property
    def label(self) -> str:
        return self.name or self.factory or "?"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        return cls(d.get("name"), d.get("factory"), tuple(int(v) for v in d.get("input_shape", ())),
                   int(d.get("num_classes", 10)))


@dataclass
class LoadedModel:
    model: nn.Module
    spec: ModelSpec
    meta: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, dict[str, Any]] = field(default_factory=dict)


def import_factory(path: str) -> Callable[..., Any]:
    """module:callable, imported as `python -m` would: the current folder comes first on the import path (the
    `edgefold` console script's own path starts with its bin folder instead)."""
    if ":" not in path:
        raise EdgefoldError(f"--factory must look like package.module:callable, got '{path}'")
    mod_name, attr = path.split(":", 1)
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)
        importlib.invalidate_caches()
    try:
        mod = importlib.import_module(mod_name)
    except Exception as e:
        raise EdgefoldError(f"cannot import factory module '{mod_name}': {type(e).__name__}: {e}") from None
    fn: Any = mod
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise EdgefoldError(f"module '{mod_name}' has no attribute '{attr}'")
    if not callable(fn):
        raise EdgefoldError(f"factory '{path}' is not callable")
    return fn


def parse_input_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise EdgefoldError(f"--input-shape must be comma-separated integers like 1,3,32,32, got '{text}'") from None
    if len(shape) != 4 or any(v <= 0 for v in shape):
        raise EdgefoldError(f"--input-shape must be 4 positive integers N,C,H,W, got '{text}'")
    return shape


# What torch.load raises on a corrupt or truncated file (zip container, weights-only unpickler, storages); the
# unpickler checks its input with assertions and memo lookups, so those are the file's fault too.
_LOAD_ERRORS = (RuntimeError, EOFError, zipfile.BadZipFile, zlib.error, OSError, ValueError, AttributeError, KeyError,
                IndexError, TypeError, struct.error, OverflowError, MemoryError, NotImplementedError, RecursionError,
                AssertionError)


def load_file(path: str | os.PathLike, trust: bool = False) -> Any:
    """torch.load with weights_only=True unless the user opted in; every failure is one line."""
    p = Path(path)
    if not p.is_file():
        raise EdgefoldError(f"checkpoint not found: {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e) or "GLOBAL" in str(e):
            raise EdgefoldError(
                f"checkpoint {p} contains pickled code objects and was not loaded (safe mode); re-save it "
                "as a state_dict, or pass --trust-checkpoint if you trust its source"
            ) from None
        raise EdgefoldError(f"checkpoint {p} is not a readable torch file (corrupt or truncated)") from None
    except _LOAD_ERRORS as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgefoldError(f"checkpoint {p} is not a readable torch file: {first}") from None


def _module_attrs(m: nn.Module) -> dict[str, Any]:
    """The structural attributes of a module: ints and tuples of ints (channels, heads, groups)."""
    out = {}
    for k, v in vars(m).items():
        if k.startswith("_") or k == "training" or isinstance(v, bool):
            continue
        if isinstance(v, int) or (isinstance(v, (tuple, list)) and v and all(isinstance(i, int) for i in v)):
            out[k] = list(v) if isinstance(v, (tuple, list)) else v
    return out


def structural_plan(model: nn.Module, reference: nn.Module) -> dict[str, dict[str, Any]]:
    """Attributes of `model` that differ from the freshly built `reference`, per module path."""
    ref = dict(reference.named_modules())
    plan: dict[str, dict[str, Any]] = {}
    for name, m in model.named_modules():
        if name not in ref:
            continue
        a, b = _module_attrs(m), _module_attrs(ref[name])
        diff = {k: v for k, v in a.items() if k in b and b[k] != v}
        if diff:
            plan[name] = diff
    return plan


def apply_plan(model: nn.Module, plan: dict[str, dict[str, Any]], state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """Resize `model` in place to match `plan` and the tensor shapes in `state_dict`."""
    modules = dict(model.named_modules())
    for name, attrs in plan.items():
        m = modules.get(name)
        if m is None:
            raise EdgefoldError(f"compressed model refers to module '{name}' that the architecture lacks")
        for k, v in attrs.items():
            cur = getattr(m, k, None)
            setattr(m, k, tuple(v) if isinstance(cur, tuple) else v)
    for key, t in state_dict.items():
        mod_name, _, tname = key.rpartition(".")
        m = modules.get(mod_name)
        if m is None:
            continue
        cur = m._parameters.get(tname) if tname in m._parameters else m._buffers.get(tname)
        if cur is not None and cur.shape != t.shape:
            new = torch.empty(t.shape, dtype=cur.dtype)
            if tname in m._parameters:
                m._parameters[tname] = nn.Parameter(new, requires_grad=cur.requires_grad)
            else:
                m._buffers[tname] = new
    return model


def save_model(path: str | os.PathLike, model: nn.Module, spec: ModelSpec, meta: dict[str, Any] | None = None,
               plan: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write a checkpoint atomically (state_dict + spec + structural plan + metadata)."""
    if plan is None:
        plan = structural_plan(model, spec.build())
    blob = {
        "format": FORMAT,
        "spec": spec.to_dict(),
        "plan": plan,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
    except OSError as e:  # disk full, read-only, quota: the partial temp file is already removed
        raise EdgefoldError(f"cannot write checkpoint {path}: {e.strerror or e}") from None
    return Path(path)


def check_finite(state_dict: dict[str, torch.Tensor], where: str) -> None:
    """Refuse NaN/Inf weights: compression, calibration and export would carry them silently into the device."""
    for key, t in state_dict.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise EdgefoldError(f"{where}: tensor '{key}' has {bad} NaN/Inf value(s) of {t.numel()}: "
                                    "refusing non-finite weights")


def _spec_mismatch(path: str | os.PathLike, ck: ModelSpec, asked: ModelSpec) -> str | None:
    """Why the checkpoint's architecture is not the one the user named, or None when they agree."""
    if asked.name and ck.name and asked.name != ck.name:
        return f"checkpoint {path} is a '{ck.name}', not a '{asked.name}'"
    if asked.name and ck.factory and not ck.name:
        return f"checkpoint {path} holds --factory {ck.factory}, not zoo model '{asked.name}'"
    if asked.factory and ck.name:
        return (f"checkpoint {path} holds zoo model '{ck.name}', not --factory {asked.factory}: "
                f"pass --model {ck.name}")
    return None


def _edgefold_parts(obj: dict[str, Any], path: str | os.PathLike) -> tuple[ModelSpec, Any, Any, Any]:
    """spec, state_dict, plan, meta of an edgefold checkpoint, each checked for type (one line when malformed)."""
    sd, plan, meta = obj.get("state_dict"), obj.get("plan", {}), obj.get("meta", {})
    try:
        if not isinstance(obj.get("spec"), dict):
            raise TypeError("'spec' is not a table")
        ck_spec = ModelSpec.from_dict(obj["spec"])
        for k in ("name", "factory"):
            if getattr(ck_spec, k) is not None and not isinstance(getattr(ck_spec, k), str):
                raise TypeError(f"spec.{k} is not a string")
    except (TypeError, ValueError) as e:
        raise EdgefoldError(f"checkpoint {path} has a malformed spec: {e}") from None
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise EdgefoldError(f"checkpoint {path}: 'state_dict' is not a mapping of names to tensors")
    if not isinstance(plan, dict) or not all(isinstance(v, dict) for v in plan.values()):
        raise EdgefoldError(f"checkpoint {path}: 'plan' is not a mapping of module names to attributes")
    return ck_spec, sd, plan, meta if isinstance(meta, dict) else {}


def load_model(path: str | os.PathLike, spec: ModelSpec | None = None, trust: bool = False) -> LoadedModel:
    """Load an edgefold checkpoint, or a bare state_dict for `spec`'s architecture.

    Refused with one line: non-finite weights (naming the tensor), a checkpoint of another architecture than the
    --model/--factory named, and a state_dict whose tensors do not match the architecture (never resized: only an
    edgefold checkpoint's compression plan may change shapes)."""
    obj = load_file(path, trust)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        ck_spec, sd, plan, meta = _edgefold_parts(obj, path)
        if spec is not None:
            why = _spec_mismatch(path, ck_spec, spec)
            if why:
                raise EdgefoldError(why)
            if spec.factory and not ck_spec.name:
                ck_spec.factory = spec.factory  # the user's name for the same factory wins (a moved module)
        spec = ck_spec
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if spec is None:
            raise EdgefoldError(f"{path} is a bare state_dict: say which architecture with --model or --factory")
        sd, plan, meta = obj, {}, {}
    elif isinstance(obj, nn.Module):  # only reachable with trust=True
        check_finite(obj.state_dict(), f"checkpoint {path}")
        if spec is None:
            spec = ModelSpec(factory=None)
        return LoadedModel(obj.eval(), spec, {})
    else:
        raise EdgefoldError(f"{path} is not an edgefold checkpoint or a state_dict")
    check_finite(sd, f"checkpoint {path}")
    model = spec.build()
    if plan:
        try:
            apply_plan(model, plan, sd)
        except (TypeError, ValueError, RuntimeError) as e:
            raise EdgefoldError(f"checkpoint {path}: its compression plan does not fit {spec.label}: {e}") from None
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise EdgefoldError(f"weights in {path} do not fit {spec.label}: {' '.join(first[:2])[:300]}") from None
    if not spec.input_shape:
        spec.input_shape = tuple(meta.get("input_shape", ())) or (zoo.input_shape(spec.name) if spec.name else ())
    return LoadedModel(model.eval(), spec, meta, plan)


def resolve(model: str | None = None, factory: str | None = None, weights: str | None = None,
            input_shape: str | None = None, trust: bool = False) -> LoadedModel:
    """What the CLI flags --model/--factory/--weights/--input-shape name, built and loaded."""
    if model and factory:
        raise EdgefoldError("pass either --model or --factory, not both")
    shape = parse_input_shape(input_shape) if input_shape else ()
    if model:
        zoo.input_shape(model)  # validates the name
        spec = ModelSpec(name=model, input_shape=shape or zoo.input_shape(model))
    elif factory:
        if not shape:
            raise EdgefoldError("--factory needs --input-shape N,C,H,W")
        spec = ModelSpec(factory=factory, input_shape=shape)
    elif weights:
        spec = None
    else:
        raise EdgefoldError("no model given: pass --model NAME (see `edgefold zoo`) or --factory module:callable")
    if weights:
        loaded = load_model(weights, spec, trust)
        if shape:
            loaded.spec.input_shape = shape
    else:
        assert spec is not None  # without --weights, --model or --factory built it (or the checks above raised)
        loaded = LoadedModel(spec.build().eval(), spec)
    check_input_shape(loaded.model, loaded.spec.input_shape)
    return loaded


def check_input_shape(model: nn.Module, shape: tuple[int, ...]) -> None:
    """Run one forward pass so a wrong --input-shape fails here, with one line, not deep in export."""
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(shape))
    except Exception as e:
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise EdgefoldError(f"input shape {','.join(map(str, shape))} does not fit the model: {msg}") from None
