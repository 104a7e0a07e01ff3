"""The matrix file (TOML): axes expanded into cells, per-device settings, validated up front.

    [defaults] / [gates] / [devices.<target>] / [[matrix]] blocks
        -> cells (model, method, ratio, repair, target, backend [, fault]) with their gates
        -> devices: how each target is reached (twin | serial | ssh), from the targets registry

Every mistake is a one-line EdgefoldError naming the file and key.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefold.core.errors import EdgefoldError
from edgefold.core.vocab import FAULTS, METHODS, REPAIRS
from edgefold.hil.gates import Gates

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser from PyPI
    import tomli as tomllib

AXES = ("model", "method", "ratio", "repair", "target", "backend")
AXIS_DEFAULTS: dict[str, Any] = {"method": "fold", "ratio": 0.0, "repair": "none", "backend": None}  # None: per target
CELL_OPTIONS = ("runs", "timeout", "fault", "weights", "args", "gates")


@dataclass(frozen=True)
class Cell:
    model: str
    method: str
    ratio: float
    repair: str
    target: str
    backend: str
    runs: int | None = None
    timeout_s: float = 900.0
    fault: str | None = None
    weights: str | None = None
    args: tuple[str, ...] = ()
    gates: Gates = field(default_factory=Gates)
    weights_digest: str | None = None

    @property
    def id(self) -> str:
        s = f"{self.target}.{self.backend}.{self.model}.{self.method}.r{self.ratio:g}.{self.repair}"
        return s + (f".fault-{self.fault}" if self.fault else "")

    @property
    def baseline_key(self) -> str:
        return f"{self.target}.{self.backend}.{self.model}.{self.method}.r{self.ratio:g}.{self.repair}"

    def key(self) -> dict[str, Any]:
        """What makes two cells the same deployment (gates are not part of it: they are re-evaluated)."""
        return {"model": self.model, "method": self.method, "ratio": self.ratio, "repair": self.repair,
                "target": self.target, "backend": self.backend, "runs": self.runs, "fault": self.fault,
                "weights": self.weights_digest, "args": list(self.args)}

    def params(self) -> dict[str, Any]:
        d = self.key()
        d["weights"] = self.weights
        d["timeout_s"] = self.timeout_s
        return d


@dataclass
class DeviceConfig:
    target: str
    kind: str  # serial | ssh | twin
    usb: list[str] = field(default_factory=list)  # "vvvv:pppp", lower case
    port: str | None = None  # named serial port
    options: dict[str, str] = field(default_factory=dict)  # target options: `deploy --option KEY=VALUE`
    args: list[str] = field(default_factory=list)  # extra deploy arguments for this device


@dataclass
class Matrix:
    path: Path
    cells: list[Cell]
    devices: dict[str, DeviceConfig]
    gates: Gates
    notices: list[str] = field(default_factory=list)  # e.g. cells dropped as the same deployment as another


# Arguments that let a deploy choose its own ratios or train: with them, method matters even at ratio 0.
_RATIO_ARGS = ("--fit", "--ratios", "--recover")


def deployment_key(c: Cell) -> tuple[Any, ...]:
    """What the deployed model depends on: at ratio 0 no channel is removed or merged, so the method does not
    matter (fold and mag1 at r=0 deploy the same model); repair still does (`repair` re-estimates BatchNorm)."""
    k = c.key()
    if c.ratio == 0 and not any(a.startswith(_RATIO_ARGS) for a in c.args):
        k["method"] = None
    return tuple(sorted((n, repr(v)) for n, v in k.items()))



def target_info(name: str) -> dict[str, Any] | None:
    """How a target is reached (kind: twin | serial | ssh), its USB ids and backends, from the targets registry."""
    from edgefold.targets import registry

    if name not in registry.names():
        return None
    spec = registry.spec(name)
    info: dict[str, Any] = {"kind": spec.reach, "backends": list(spec.backends)}
    if spec.reach == "serial":
        info["usb"] = list(spec.usb_ids)
    return info


def _target_names() -> list[str]:
    from edgefold.targets import registry

    return registry.names()


def _table(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise EdgefoldError(f"{where}: must be a table, got {type(v).__name__} {v!r:.40}")
    return v


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list) else [v]


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_matrix(path: str | os.PathLike) -> Matrix:
    """Read and validate a matrix file; every mistake is a one-line EdgefoldError naming the file and key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgefoldError(f"matrix file {path} not found") from None
    except OSError as e:
        raise EdgefoldError(f"matrix file {path} cannot be read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise EdgefoldError(f"matrix {path}: not UTF-8 text (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        raise EdgefoldError(f"matrix {path}: {e}") from None
    where = f"matrix {path.name}"
    unknown = set(raw) - {"defaults", "gates", "devices", "matrix"}
    if unknown:
        raise EdgefoldError(f"{where}: unknown table {sorted(unknown)[0]!r} (known: defaults, gates, devices, matrix)")
    gates = Gates.parse(_table(raw.get("gates", {}), f"{where} [gates]"), f"{where} [gates]")
    defaults = _table(raw.get("defaults", {}), f"{where} [defaults]")
    blocks = raw.get("matrix", [])
    if isinstance(blocks, dict):
        blocks = [blocks]
    if not isinstance(blocks, list) or not blocks:
        raise EdgefoldError(f"{where}: no [[matrix]] blocks")

    cells: list[Cell] = []
    seen: dict[str, int] = {}
    same: dict[tuple[Any, ...], Cell] = {}
    notices: list[str] = []
    digests: dict[str, str] = {}
    for i, block in enumerate(blocks, 1):
        bw = f"{where} [[matrix]] #{i}"
        merged = {**defaults, **_table(block, bw)}
        bad = set(merged) - set(AXES) - set(CELL_OPTIONS)
        if bad:
            raise EdgefoldError(f"{bw}: unknown key {sorted(bad)[0]!r} (axes: {', '.join(AXES)}; "
                                f"options: {', '.join(CELL_OPTIONS)})")
        for axis in ("model", "target"):
            if axis not in merged:
                raise EdgefoldError(f"{bw}: {axis!r} is required")
        axes = {a: _as_list(merged.get(a, AXIS_DEFAULTS.get(a))) for a in AXES}
        faults = _as_list(merged.get("fault")) if merged.get("fault") is not None else [None]
        cell_gates = Gates.parse(_table(merged.get("gates", {}), f"{bw} gates"), f"{bw} gates", base=gates)
        runs = merged.get("runs")
        if runs is not None and (not isinstance(runs, int) or isinstance(runs, bool) or runs < 1):
            raise EdgefoldError(f"{bw}: runs must be a positive integer, got {runs!r}")
        timeout = merged.get("timeout", 900)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout < math.inf:
            raise EdgefoldError(f"{bw}: timeout must be a positive number of seconds, got {timeout!r}")
        extra = merged.get("args", [])
        if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
            raise EdgefoldError(f"{bw}: args must be a list of strings")
        weights = merged.get("weights")
        wdigest = None
        if weights is not None:
            expanded = os.path.expandvars(str(weights))
            unset = re.search(r"\$\{?(\w+)", expanded)
            if unset:
                raise EdgefoldError(f"{bw}: weights {weights!r} uses ${unset.group(1)}, which is not set")
            wpath = (path.parent / expanded).resolve()
            if not wpath.is_file():
                raise EdgefoldError(f"{bw}: weights file {wpath} not found")
            weights = str(wpath)
            if weights not in digests:
                digests[weights] = _digest(wpath)
            wdigest = digests[weights]
        for model in axes["model"]:
            for method in axes["method"]:
                for ratio in axes["ratio"]:
                    for repair in axes["repair"]:
                        for target in axes["target"]:
                            for backend in axes["backend"]:
                                for fault in faults:
                                    c = _make_cell(bw, model, method, ratio, repair, target, backend, fault, runs,
                                                   float(timeout), weights, wdigest, tuple(extra), cell_gates)
                                    if c.id in seen:
                                        raise EdgefoldError(f"{bw}: cell {c.id} already defined by block "
                                                            f"#{seen[c.id]}")
                                    seen[c.id] = i
                                    first = same.setdefault(deployment_key(c), c)
                                    if first is not c:
                                        if first.gates != c.gates:
                                            raise EdgefoldError(
                                                f"{bw}: cell {c.id} is the same deployment as {first.id} (ratio 0: "
                                                f"the method does not matter) but has other gates; keep one")
                                        notices.append(f"{where}: {c.id} dropped: the same deployment as "
                                                       f"{first.id} (at ratio 0 nothing is removed, so the method "
                                                       f"does not matter)")
                                        continue
                                    cells.append(c)

    devices: dict[str, DeviceConfig] = {}
    raw_dev = _table(raw.get("devices", {}), f"{where} [devices]")
    for t in sorted({c.target for c in cells} | set(raw_dev)):
        info = target_info(t)
        if info is None:
            raise EdgefoldError(f"{where}: unknown target {t!r} (known: {', '.join(_target_names())})")
        d = _table(raw_dev.get(t, {}), f"{where} [devices.{t}]")
        bad = set(d) - {"usb", "port", "options", "args"}
        if bad:
            raise EdgefoldError(f"{where} [devices.{t}]: unknown key {sorted(bad)[0]!r} "
                                f"(known: usb, port, options, args)")
        opts = d.get("options", {})
        if not isinstance(opts, dict):
            raise EdgefoldError(f"{where} [devices.{t}]: options must be a table, e.g. options = {{host = \"ip\"}}")
        args = d.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise EdgefoldError(f"{where} [devices.{t}]: args must be a list of strings")
        usb = [str(u).lower() for u in _as_list(d.get("usb", info.get("usb", [])))]
        for u in usb:
            if not re.fullmatch(r"[0-9a-f]{4}:[0-9a-f]{4}", u):
                raise EdgefoldError(f"{where} [devices.{t}]: usb id {u!r} is not VID:PID like 2341:805a")
        devices[t] = DeviceConfig(t, info["kind"], usb, d.get("port"), {str(k): str(v) for k, v in opts.items()},
                                  list(args))
    return Matrix(path, cells, devices, gates, notices)


def _make_cell(where: str, model: Any, method: Any, ratio: Any, repair: Any, target: Any, backend: Any,
               fault: Any, runs: int | None, timeout: float, weights: str | None, wdigest: str | None,
               extra: tuple[str, ...], gates: Gates) -> Cell:
    def check(name: str, v: Any, allowed: Iterable[str]) -> str:
        if v not in allowed:
            raise EdgefoldError(f"{where}: {name} {v!r} is not one of {', '.join(allowed)}")
        return v

    if not isinstance(model, str) or not model:
        raise EdgefoldError(f"{where}: model must be a name, got {model!r}")
    if not isinstance(ratio, int | float) or isinstance(ratio, bool) or not 0 <= ratio < 1:
        raise EdgefoldError(f"{where}: ratio must be a number in [0, 1), got {ratio!r}")
    info = target_info(str(target))
    if info is None:
        raise EdgefoldError(f"{where}: unknown target {target!r} (known: {', '.join(_target_names())})")
    backends = info.get("backends") or ["edgefold"]
    backend = backends[0] if backend is None else backend  # the target's first backend is its default
    if fault is not None:
        check("fault", fault, FAULTS)
        if info["kind"] != "twin":
            raise EdgefoldError(f"{where}: fault injection ({fault}) exists only for emulated targets, not {target}")
    return Cell(model, check("method", method, METHODS), float(ratio), check("repair", repair, REPAIRS), str(target),
                check(f"backend for {target}", backend, backends), runs, timeout, fault, weights, extra, gates, wdigest)

