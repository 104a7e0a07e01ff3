"""Hardware-in-the-loop matrix: deploy every cell of a TOML matrix to its device, gate the measurements, report.

    matrix (TOML) -> cells (model, method, ratio, repair, target, backend [, fault])
                  -> lanes: one per device (cells on one device run in sequence, lanes run in parallel)
                  -> each cell: `edgefold deploy ... --out DIR/cells/<id>/deploy` as a subprocess in its own
                     process group (a crash or hang cannot take the matrix down; a timeout kills the group)
                  -> DIR/cells/<id>/cell.json (written atomically: the unit of resume)
                  -> gates (agreement, accuracy, latency vs baseline, RAM/Flash budgets, output CRC)
                  -> DIR/hil.json, JUnit XML, DIR/summary.md, optionally a new baseline

Gates are evaluated from the stored measurements every time, so a resumed run (or a re-run with another baseline)
gives verdicts consistent with the baseline it was given, without deploying again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgefold.core.artifacts import DeployResult
from edgefold.core.errors import EdgefoldError
from edgefold.core.fsutil import ensure_dir, write_json, write_text
from edgefold.core.vocab import FAULTS, METHODS, REPAIRS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser from PyPI
    import tomli as tomllib

CELL_SCHEMA = "edgefold-hil-cell/1"
STATE_SCHEMA = "edgefold-hil-state/1"
HIL_SCHEMA = "edgefold-hil/1"
BASELINE_SCHEMA = "edgefold-hil-baseline/1"

AXES = ("model", "method", "ratio", "repair", "target", "backend")
AXIS_DEFAULTS: dict[str, Any] = {"method": "fold", "ratio": 0.0, "repair": "none", "backend": None}  # None: per target
CELL_OPTIONS = ("runs", "timeout", "fault", "weights", "args", "gates")

PASSED, FAILED, ERROR, SKIPPED, PENDING = "passed", "failed", "error", "skipped", "pending"


# --------------------------------------------------------------------------------------------------- matrix


@dataclass(frozen=True)
class Gates:
    """Thresholds a cell's measurements must meet. None = gate not applied."""

    agreement_min: float | None = None  # int8-vs-float top-1 agreement, percent
    accuracy_min: float | None = None  # int8 accuracy, percent
    accuracy_drop_max: float | None = None  # float - int8 accuracy, percentage points
    latency_regression: float | None = 0.10  # allowed slowdown vs baseline, fraction (0.10 = +10%)
    ram_max: int | None = None  # bytes (ram.total)
    flash_max: int | None = None  # bytes
    output_crc: bool = True  # the device must compute what the host computed

    @classmethod
    def parse(cls, raw: dict[str, Any], where: str, base: Gates | None = None) -> Gates:
        g = base or cls()
        known = {f for f in cls.__dataclass_fields__}
        vals: dict[str, Any] = {}
        for k, v in raw.items():
            if k not in known:
                raise EdgefoldError(f"{where}: unknown gate {k!r} (known: {', '.join(sorted(known))})")
            if k in ("ram_max", "flash_max"):
                vals[k] = None if v is False else parse_bytes(v, f"{where}: {k}")
            elif k == "latency_regression":
                vals[k] = None if v is False else parse_fraction(v, f"{where}: {k}")
            elif k == "output_crc":
                if not isinstance(v, bool):
                    raise EdgefoldError(f"{where}: output_crc must be true or false")
                vals[k] = v
            else:
                if v is not False and not isinstance(v, int | float):
                    raise EdgefoldError(f"{where}: {k} must be a number (percent), got {v!r}")
                vals[k] = None if v is False else float(v)
        return replace(g, **vals)


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


def parse_bytes(v: Any, where: str) -> int:
    """256K, 1M, 983040, "983,040" -> bytes (K = 1024)."""
    if isinstance(v, bool):
        raise EdgefoldError(f"{where}: expected a size like 256K or 983040, got {v!r}")
    if isinstance(v, int):
        return v
    m = re.fullmatch(r"\s*([\d.,_]+)\s*([kKmM]i?[bB]?|[bB])?\s*", str(v))
    if not m:
        raise EdgefoldError(f"{where}: expected a size like 256K or 983040, got {v!r}")
    num = float(m.group(1).replace(",", "").replace("_", ""))
    unit = (m.group(2) or "").lower()[:1]
    return int(num * {"k": 1024, "m": 1024 * 1024}.get(unit, 1))


def parse_fraction(v: Any, where: str) -> float:
    """'10%' or 0.10 -> 0.10."""
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            return float(v.strip()[:-1]) / 100.0
        except ValueError:
            pass
    elif isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    raise EdgefoldError(f"{where}: expected a fraction like 0.10 or '10%', got {v!r}")


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
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise EdgefoldError(f"matrix file {path} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise EdgefoldError(f"matrix {path}: {e}") from None
    where = f"matrix {path.name}"
    unknown = set(raw) - {"defaults", "gates", "devices", "matrix"}
    if unknown:
        raise EdgefoldError(f"{where}: unknown table {sorted(unknown)[0]!r} (known: defaults, gates, devices, matrix)")
    gates = Gates.parse(raw.get("gates", {}), f"{where} [gates]")
    defaults = raw.get("defaults", {})
    blocks = raw.get("matrix", [])
    if isinstance(blocks, dict):
        blocks = [blocks]
    if not blocks:
        raise EdgefoldError(f"{where}: no [[matrix]] blocks")

    cells: list[Cell] = []
    seen: dict[str, int] = {}
    digests: dict[str, str] = {}
    for i, block in enumerate(blocks, 1):
        bw = f"{where} [[matrix]] #{i}"
        merged = {**defaults, **block}
        bad = set(merged) - set(AXES) - set(CELL_OPTIONS)
        if bad:
            raise EdgefoldError(f"{bw}: unknown key {sorted(bad)[0]!r} (axes: {', '.join(AXES)}; "
                                f"options: {', '.join(CELL_OPTIONS)})")
        for axis in ("model", "target"):
            if axis not in merged:
                raise EdgefoldError(f"{bw}: {axis!r} is required")
        axes = {a: _as_list(merged.get(a, AXIS_DEFAULTS.get(a))) for a in AXES}
        faults = _as_list(merged.get("fault")) if merged.get("fault") is not None else [None]
        cell_gates = Gates.parse(merged.get("gates", {}), f"{bw} gates", base=gates)
        runs = merged.get("runs")
        if runs is not None and (not isinstance(runs, int) or isinstance(runs, bool) or runs < 1):
            raise EdgefoldError(f"{bw}: runs must be a positive integer, got {runs!r}")
        timeout = merged.get("timeout", 900)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
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
                                    cells.append(c)

    devices: dict[str, DeviceConfig] = {}
    raw_dev = raw.get("devices", {})
    for t in sorted({c.target for c in cells} | set(raw_dev)):
        info = target_info(t)
        if info is None:
            raise EdgefoldError(f"{where}: unknown target {t!r} (known: {', '.join(_target_names())})")
        d = raw_dev.get(t, {})
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
    return Matrix(path, cells, devices, gates)


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


# --------------------------------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class SerialPort:
    port: str
    vid: int | None
    pid: int | None
    description: str = ""

    @property
    def usb_id(self) -> str | None:
        return f"{self.vid:04x}:{self.pid:04x}" if self.vid is not None and self.pid is not None else None


def list_serial_ports() -> list[SerialPort]:
    """Attached serial devices with VID:PID: edgefold.targets.usb when it offers a lister, else pyserial."""
    try:
        from edgefold.targets import usb  # type: ignore[attr-defined]

        for name in ("list_devices", "list_ports", "scan", "find_devices", "attached"):
            fn = getattr(usb, name, None)
            if callable(fn):
                return [p for p in (_coerce_port(d) for d in fn()) if p is not None]
    except Exception:  # noqa: BLE001 - module absent or different API: pyserial sees the same devices
        pass
    try:
        from serial.tools import list_ports
    except ImportError:
        return []
    return [SerialPort(p.device, p.vid, p.pid, p.description or "") for p in list_ports.comports()]


def _coerce_port(d: Any) -> SerialPort | None:
    """Accept objects or dicts with port/device and vid/pid (ints or hex strings) or usb_id 'vvvv:pppp'."""
    get = d.get if isinstance(d, dict) else lambda k, default=None: getattr(d, k, default)
    port = get("port") or get("device") or get("path")
    vid, pid = get("vid"), get("pid")
    usb_id = get("usb_id") or get("vid_pid")
    if (vid is None or pid is None) and isinstance(usb_id, str) and ":" in usb_id:
        vid, pid = usb_id.split(":", 1)
    vid = int(vid, 16) if isinstance(vid, str) else vid
    pid = int(pid, 16) if isinstance(pid, str) else pid
    return SerialPort(str(port), vid, pid, str(get("description") or get("name") or "")) if port else None


@dataclass
class Lane:
    """One device: its cells run in sequence. `absent` holds the reason when it cannot be reached."""

    name: str
    target: str
    port: str | None = None
    absent: str | None = None
    device: DeviceConfig | None = None


def _ssh_reachable(host: str, timeout: float = 3.0) -> str | None:
    """None if host[:port] accepts TCP on its SSH port, else the reason."""
    h = host.rsplit("@", 1)[-1]
    port = 22
    if re.fullmatch(r"[^:]+:\d+", h):
        h, p = h.rsplit(":", 1)
        port = int(p)
    try:
        with socket.create_connection((h, port), timeout=timeout):
            return None
    except OSError as e:
        return f"{h}:{port} unreachable ({e.strerror or e})"


def _configured_ssh_host(target: str) -> str | None:
    """host[:port] from the targets configuration `edgefold deploy` uses for SSH targets, if any."""
    try:
        from edgefold.targets import jetson  # type: ignore[attr-defined]

        o = jetson.load_options(target, {})
    except Exception:  # noqa: BLE001 - no such module/section yet, or a broken file: deploy will say so
        return None
    return f"{o['host']}:{o.get('port', 22)}" if o.get("host") else None


def resolve_lane(dev: DeviceConfig, ports: list[SerialPort] | None = None) -> Lane:
    """Find the device for a target now: by named port, by VID:PID, by SSH host; twins are always here."""
    if dev.kind == "twin":
        return Lane(dev.target, dev.target, None, None, dev)
    if dev.kind == "ssh":
        host = (f"{dev.options['host']}:{dev.options.get('port', 22)}" if dev.options.get("host")
                else _configured_ssh_host(dev.target))
        if not host:
            return Lane(dev.target, dev.target, None,
                        f"no host configured for {dev.target} (set host/user in the targets.toml [{dev.target}] "
                        f"section that `edgefold deploy` reads, or [devices.{dev.target}] options)", dev)
        why = _ssh_reachable(host)
        # probed here only: deploy connects with its own configuration plus the device's options
        return Lane(f"{dev.target}@{host}", dev.target, None, why and f"{dev.target}: {why}", dev)
    ports = list_serial_ports() if ports is None else ports
    if dev.port:
        if dev.port in {p.port for p in ports} or os.path.exists(dev.port):
            return Lane(f"{dev.target}@{dev.port}", dev.target, dev.port, None, dev)
        return Lane(f"{dev.target}@{dev.port}", dev.target, dev.port, f"{dev.target}: port {dev.port} not present", dev)
    found = sorted((p for p in ports if p.usb_id in dev.usb), key=lambda p: p.port)
    if not found:
        ids = ", ".join(dev.usb) or "none configured"
        return Lane(dev.target, dev.target, None, f"{dev.target}: no device with USB id {ids} attached", dev)
    return Lane(f"{dev.target}@{found[0].port}", dev.target, found[0].port, None, dev)


# --------------------------------------------------------------------------------------------------- one cell


def validate_result(res: Any) -> str | None:
    """None if `res` is an edgefold-result/1 document with a latency, else what is wrong with it."""
    try:
        result = DeployResult.from_dict(res, "result.json")
    except EdgefoldError as e:
        return str(e)
    if result.latency_value is None or "unit" not in result.latency:
        return "result.json has no latency value"
    return None


def _descendants(pid: int) -> list[int]:
    """All processes below `pid` (Linux /proc): children that started their own session escape killpg."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_tree(proc: subprocess.Popen, grace_s: float = 3.0) -> None:
    """SIGTERM the cell's process group and every descendant, then SIGKILL what is left after `grace_s`."""
    victims = _descendants(proc.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        try:
            proc.wait(timeout=grace_s)
            if sig == signal.SIGTERM and not any(_alive(p) for p in victims):
                return
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _reason_from_stderr(path: Path) -> str:
    for line in reversed(_tail(path, 50).splitlines()):
        if line.strip():
            return line.strip()[:500]
    return ""


class Interrupted(Exception):
    """The matrix run was asked to stop; the cell in flight is not finished."""


def deploy_argv(cell: Cell, lane: Lane, out: Path, base: list[str]) -> list[str]:
    argv = base + ["deploy", "--target", cell.target, "--model", cell.model, "--method", cell.method,
                   "--ratio", f"{cell.ratio:g}", "--repair", cell.repair, "--backend", cell.backend, "--out", str(out)]
    if cell.weights:
        argv += ["--weights", cell.weights]
    if cell.runs is not None:
        argv += ["--runs", str(cell.runs)]
    if lane.port:
        argv += ["--port", lane.port]
    if cell.fault:
        argv += ["--fault", cell.fault]
    if lane.device is not None:
        for k, v in sorted(lane.device.options.items()):
            argv += ["--option", f"{k}={v}"]
        argv += lane.device.args
    return argv + list(cell.args)


def run_cell(cell: Cell, lane: Lane, out_dir: Path, base_argv: list[str], run_id: str,
             stop: threading.Event, on_start: Callable[[subprocess.Popen], None] | None = None) -> dict[str, Any]:
    """Deploy one cell in its own process group; return its record (also written to cell.json atomically).

    Raises Interrupted (and leaves no cell.json) if `stop` is set while it runs, so a resumed run redoes it.
    """
    cdir = ensure_dir(out_dir / "cells" / cell.id)
    ddir = cdir / "deploy"
    shutil.rmtree(ddir, ignore_errors=True)  # a half-finished earlier attempt must not leak into this one
    argv = deploy_argv(cell, lane, ddir, base_argv)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}
    t0 = time.time()
    record: dict[str, Any] = {"schema": CELL_SCHEMA, "id": cell.id, "key": cell.key(), "params": cell.params(),
                              "device": {"lane": lane.name, "port": lane.port}, "run_id": run_id,
                              "argv": argv, "started": t0, "log": "deploy.log", "stderr": "stderr.log"}
    with open(cdir / "deploy.log", "wb") as so, open(cdir / "stderr.log", "wb") as se:
        try:
            proc = subprocess.Popen(argv, stdout=so, stderr=se, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        except OSError as e:
            return _finish(cdir, record, ERROR, f"could not start deploy: {e}", None, None, t0)
        if on_start:
            on_start(proc)
        deadline = t0 + cell.timeout_s
        while True:
            try:
                rc = proc.wait(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                if stop.is_set():
                    kill_tree(proc)
                    raise Interrupted(cell.id) from None
                if time.time() > deadline:
                    kill_tree(proc)
                    return _finish(cdir, record, ERROR, f"timed out after {cell.timeout_s:g} s (process group killed)",
                                   None, proc.returncode, t0)
    if stop.is_set() and rc != 0:  # killed by the same Ctrl-C that stops the matrix: not a real failure
        raise Interrupted(cell.id)
    if rc != 0:
        why = _reason_from_stderr(cdir / "stderr.log")
        if rc < 0:
            sig = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
            why = f"deploy killed by {sig}" + (f": {why}" if why else "")
        return _finish(cdir, record, ERROR, f"deploy exited {rc}: {why or 'no error message'}", None, rc, t0)
    try:
        res = json.loads((ddir / "result.json").read_text())
    except FileNotFoundError:
        return _finish(cdir, record, ERROR, "deploy exited 0 but wrote no result.json", None, rc, t0)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return _finish(cdir, record, ERROR, f"result.json is not valid JSON: {e}", None, rc, t0)
    bad = validate_result(res)
    if bad:
        return _finish(cdir, record, ERROR, bad, res, rc, t0)
    return _finish(cdir, record, "ok", "", res, rc, t0)


def _finish(cdir: Path, record: dict[str, Any], outcome: str, reason: str, result: dict[str, Any] | None,
            rc: int | None, t0: float) -> dict[str, Any]:
    record.update(outcome=outcome, reason=reason, result=result, rc=rc, finished=time.time(),
                  wall_seconds=round(time.time() - t0, 3))
    if outcome != "ok":
        record["stderr_tail"] = _tail(cdir / "stderr.log")
    write_json(cdir / "cell.json", record)  # last: its presence means "this cell is done"
    return record


# --------------------------------------------------------------------------------------------------- gates


@dataclass
class GateResult:
    name: str  # agreement | accuracy | accuracy_drop | latency | ram | flash | output_crc
    ok: bool
    message: str
    applied: bool = True  # False: noted only (e.g. no baseline for this cell)


def _fmt_lat(v: float, unit: str) -> str:
    return f"{v:,.0f} {unit}" if unit == "instructions" else f"{v:,.4g} {unit}"


def _to_ms(v: float, unit: str) -> float | None:
    return {"ms": v, "us": v / 1000.0, "s": v * 1000.0}.get(unit)


def evaluate_gates(cell: Cell, res: dict[str, Any], baseline: dict[str, Any] | None,
                   skip_latency: bool = False) -> list[GateResult]:
    g = cell.gates
    out: list[GateResult] = []
    acc = res.get("accuracy") or {}

    def pct(name: str, key: str, limit: float | None) -> None:
        if limit is None:
            return
        v = acc.get(key)
        if not isinstance(v, int | float):
            out.append(GateResult(name, False, f"{name} gate: int8 {key} not reported (need >= {limit:g}%)"))
        elif v < limit:
            out.append(GateResult(name, False, f"{name} gate: {key} {v:.2f}% < {limit:g}%"))
        else:
            out.append(GateResult(name, True, f"{key} {v:.2f}% >= {limit:g}%"))

    pct("agreement", "agreement", g.agreement_min)
    pct("accuracy", "int8", g.accuracy_min)
    if g.accuracy_drop_max is not None:
        f, q = acc.get("float"), acc.get("int8")
        if not isinstance(f, int | float) or not isinstance(q, int | float):
            out.append(GateResult("accuracy_drop", False, "accuracy_drop gate: float/int8 accuracy not reported"))
        else:
            ok = f - q <= g.accuracy_drop_max
            out.append(GateResult("accuracy_drop", ok, f"{'' if ok else 'accuracy_drop gate: '}float {f:.2f}% -> "
                                  f"int8 {q:.2f}% drops {f - q:.2f} points ({'<=' if ok else '>'} "
                                  f"{g.accuracy_drop_max:g})"))
    if g.output_crc:
        m = res.get("output_crc_match")
        if m is not True:
            why = "not reported" if m is None else "device output differs from the host's"
            out.append(GateResult("output_crc", False, f"output_crc gate: {why}"))
        else:
            out.append(GateResult("output_crc", True, "output CRC matches the host"))
    ram = (res.get("ram") or {}).get("total")
    for name, v, limit in (("ram", ram, g.ram_max), ("flash", res.get("flash"), g.flash_max)):
        if limit is None:
            continue
        if not isinstance(v, int | float):
            out.append(GateResult(name, False, f"{name} gate: {name} not reported (budget {limit:,} B)"))
        else:
            ok = v <= limit
            out.append(GateResult(name, ok, f"{'' if ok else f'{name} gate: '}{name} {int(v):,} B "
                                  f"{'<=' if ok else '>'} budget {limit:,} B"))
    if g.latency_regression is not None:
        if skip_latency:
            out.append(GateResult("latency", True, "latency gate skipped: baseline being updated", applied=False))
        else:
            out.append(_latency_gate(res, baseline, g.latency_regression))
    return out


def _latency_gate(res: dict[str, Any], base: dict[str, Any] | None, tol: float) -> GateResult:
    if not base:
        return GateResult("latency", True, "no baseline for this cell", applied=False)
    # Instruction counts are deterministic on the twins: compare them when both sides have them.
    if isinstance(res.get("instructions"), int | float) and isinstance(base.get("instructions"), int | float):
        v, b, unit = float(res["instructions"]), float(base["instructions"]), "instructions"
    else:
        lat, blat = res["latency"], base.get("latency") or {}
        if not isinstance(blat.get("value"), int | float):
            return GateResult("latency", True, "baseline has no latency for this cell", applied=False)
        v, unit = float(lat["value"]), lat["unit"]
        b = float(blat["value"])
        if blat.get("unit") != unit:
            vm, bm = _to_ms(v, unit), _to_ms(b, blat.get("unit", ""))
            if vm is None or bm is None:
                return GateResult("latency", False, f"latency gate: unit {unit} not comparable with baseline unit "
                                                    f"{blat.get('unit')}")
            v, b, unit = vm, bm, "ms"
    limit = b * (1.0 + tol)
    ok = v <= limit
    msg = (f"{_fmt_lat(v, unit)} vs baseline {_fmt_lat(b, unit)} ({(v / b - 1) * 100 if b else 0:+.1f}%, "
           f"limit +{tol * 100:g}% = {_fmt_lat(limit, unit)})")
    return GateResult("latency", ok, msg if ok else f"latency gate: regression {msg}")


def load_baseline(path: str | os.PathLike | None, must_exist: bool = True) -> dict[str, Any]:
    if path is None:
        return {}
    if not Path(path).exists():
        if must_exist:
            raise EdgefoldError(f"baseline {path} not found (create it with --update-baseline)")
        return {}
    try:
        doc = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, OSError) as e:
        raise EdgefoldError(f"baseline {path}: cannot read ({e})") from None
    if not isinstance(doc, dict) or doc.get("schema") != BASELINE_SCHEMA:
        raise EdgefoldError(f"baseline {path}: not an {BASELINE_SCHEMA} file")
    return dict(doc.get("cells", {}))


def baseline_entry(res: dict[str, Any]) -> dict[str, Any]:
    lat = res["latency"]
    return {"latency": {"value": lat["value"], "unit": lat["unit"], "kind": lat.get("kind")},
            "instructions": res.get("instructions"), "ram_total": (res.get("ram") or {}).get("total"),
            "flash": res.get("flash"), "device": res.get("device")}


# --------------------------------------------------------------------------------------------------- run


@dataclass
class CellOutcome:
    cell: Cell
    status: str  # passed | failed | error | skipped | pending
    reason: str = ""
    record: dict[str, Any] | None = None
    gates: list[GateResult] = field(default_factory=list)
    reused: bool = False  # taken from an earlier (interrupted) run without deploying again
    lane: str = ""


@dataclass
class HilRun:
    out_dir: Path
    outcomes: list[CellOutcome]
    run_id: str
    interrupted: bool
    wall_seconds: float
    baseline_path: str | None = None

    def counts(self) -> dict[str, int]:
        c = {k: 0 for k in (PASSED, FAILED, ERROR, SKIPPED, PENDING)}
        for o in self.outcomes:
            c[o.status] += 1
        return c

    @property
    def ok(self) -> bool:
        c = self.counts()
        return not self.interrupted and c[FAILED] == 0 and c[ERROR] == 0 and c[PENDING] == 0


def _load_done(out_dir: Path, cell: Cell, retry_errors: bool) -> dict[str, Any] | None:
    """A finished record for this exact cell from an earlier run, or None (then it is deployed)."""
    try:
        rec = json.loads((out_dir / "cells" / cell.id / "cell.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if rec.get("schema") != CELL_SCHEMA or rec.get("key") != cell.key():
        return None
    if rec.get("outcome") == "error" and retry_errors:
        return None
    return rec if rec.get("outcome") in ("ok", "error") else None


class _State:
    """DIR/state.json: which cells are pending/running/done; rewritten atomically on every change."""

    def __init__(self, path: Path, run_id: str, matrix: Path, cells: list[Cell]):
        self.path, self.lock = path, threading.Lock()
        self.doc = {"schema": STATE_SCHEMA, "run_id": run_id, "matrix": str(matrix), "started": time.time(),
                    "cells": {c.id: PENDING for c in cells}, "finished": None}
        self.flush()

    def set(self, cell_id: str, status: str) -> None:
        with self.lock:
            self.doc["cells"][cell_id] = status
            self.flush()

    def close(self, interrupted: bool) -> None:
        with self.lock:
            self.doc["finished"] = time.time()
            self.doc["interrupted"] = interrupted
            self.flush()

    def flush(self) -> None:
        self.doc["updated"] = time.time()
        write_json(self.path, self.doc)


@contextlib.contextmanager
def _exclusive(out: Path):
    """One `edgefold hil` per output folder: two runs resuming the same cells would deploy them twice."""
    import fcntl

    f = open(out / ".hil.lock", "w")  # noqa: SIM115 - held for the whole run
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise EdgefoldError(f"another `edgefold hil` is running with --out {out}") from None
        yield
    finally:
        f.close()  # closing releases the lock


def run_matrix(matrix: Matrix, out_dir: str | os.PathLike, baseline: str | os.PathLike | None = None,
               update_baseline: bool = False, jobs: int | None = None, retry_errors: bool = False,
               fresh: bool = False, deploy_base: list[str] | None = None, console: Any = None,
               ports: list[SerialPort] | None = None, stop: threading.Event | None = None,
               junit: str | os.PathLike | None = None) -> HilRun:
    """Run every cell (resuming finished ones from `out_dir`), gate them and write all outputs.

    `deploy_base` is the command that provides `deploy` (default: this Python's `-m edgefold`).
    On KeyboardInterrupt the cells in flight are killed, everything finished is kept, and the outputs are
    written with the unfinished cells as pending; the exception is then re-raised.
    """
    out = ensure_dir(out_dir)
    with _exclusive(out):
        return _run_matrix(matrix, out, baseline, update_baseline, jobs, retry_errors, fresh, deploy_base, console,
                           ports, stop, junit)


def _run_matrix(matrix: Matrix, out: Path, baseline: str | os.PathLike | None, update_baseline: bool,
                jobs: int | None, retry_errors: bool, fresh: bool, deploy_base: list[str] | None, console: Any,
                ports: list[SerialPort] | None, stop: threading.Event | None,
                junit: str | os.PathLike | None) -> HilRun:
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True, highlight=False)
    base = deploy_base or [sys.executable, "-m", "edgefold"]
    stop = stop or threading.Event()
    run_id = uuid.uuid4().hex[:12]
    t0 = time.time()
    if fresh:
        shutil.rmtree(out / "cells", ignore_errors=True)
    base_cells = load_baseline(baseline, must_exist=not update_baseline)

    ports = list_serial_ports() if ports is None and any(d.kind == "serial" for d in matrix.devices.values()) \
        else (ports or [])
    lanes = {t: resolve_lane(d, ports) for t, d in matrix.devices.items()}
    outcomes = {c.id: CellOutcome(c, PENDING, lane=lanes[c.target].name) for c in matrix.cells}
    state = _State(out / "state.json", run_id, matrix.path, matrix.cells)

    todo: dict[str, list[Cell]] = {}
    reused = 0
    for c in matrix.cells:
        lane = lanes[c.target]
        rec = _load_done(out, c, retry_errors)
        if rec is not None:
            outcomes[c.id].record, outcomes[c.id].reused = rec, True
            state.set(c.id, rec["outcome"])
            reused += 1
        elif lane.absent:
            outcomes[c.id].status, outcomes[c.id].reason = SKIPPED, lane.absent
            state.set(c.id, SKIPPED)
        else:
            todo.setdefault(lane.name, []).append(c)
    if reused:
        console.print(f"hil: resuming in {out}: {reused} of {len(matrix.cells)} cells already done, not redeployed",
                      markup=False)

    running: dict[str, subprocess.Popen] = {}
    lock = threading.Lock()
    n_todo = sum(len(v) for v in todo.values())

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=False)

    def lane_worker(lane_name: str, cells: list[Cell]) -> None:
        lane = next(lane for lane in lanes.values() if lane.name == lane_name)
        for c in cells:
            if stop.is_set():
                return
            if lane.device and lane.device.kind == "serial":  # the board may have gone since the last cell
                lane = resolve_lane(lane.device)
            o = outcomes[c.id]
            if lane.absent:  # not persisted: the cell never ran, a resumed run tries it again
                o.record = {"outcome": "error", "reason": f"device lost before this cell: {lane.absent}",
                            "run_id": run_id, "result": None}
                state.set(c.id, ERROR)
                progress.console.print(f"[red]error[/] {c.id}: {escape(o.record['reason'])}")
                progress.advance(overall)
                continue
            state.set(c.id, "running")
            progress.update(overall, description=f"{c.id}")

            def started(p: subprocess.Popen, cid: str = c.id) -> None:
                with lock:
                    running[cid] = p

            try:
                rec = run_cell(c, lane, out, base, run_id, stop, started)
            except Interrupted:
                state.set(c.id, PENDING)
                return
            except Exception as e:  # noqa: BLE001 - e.g. a full disk: this cell errs, the matrix goes on
                rec = {"outcome": "error", "reason": f"hil could not run the cell: {type(e).__name__}: {e}",
                       "run_id": run_id, "result": None, "wall_seconds": 0.0}
            finally:
                with lock:
                    running.pop(c.id, None)
            if rec["outcome"] == "error" and lane.device and lane.device.kind == "serial":
                now = resolve_lane(lane.device)
                if now.absent:  # say so: "deploy exited 4" alone hides that the board vanished
                    rec["reason"] = f"device lost during the cell ({now.absent}): {rec['reason']}"
                    write_json(out / "cells" / c.id / "cell.json", rec)
            o.record = rec
            state.set(c.id, rec["outcome"])
            mark = "[green]done[/]" if rec["outcome"] == "ok" else "[red]error[/]"
            progress.console.print(f"{mark} {c.id} ({rec['wall_seconds']:.1f} s)"
                                   + (f": {escape(rec['reason'])}" if rec["reason"] else ""))
            progress.advance(overall)

    interrupted = False
    with progress:
        overall = progress.add_task("hil", total=n_todo)
        workers = max(1, min(jobs or len(todo) or 1, len(todo) or 1))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hil-lane")
        futures = {pool.submit(lane_worker, name, cells): name for name, cells in todo.items()}
        try:
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                if stop.is_set():
                    interrupted = True
            for f in futures:
                f.result()  # a bug in the scheduler itself must not pass silently
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            with lock:
                procs = list(running.values())
            for p in procs:
                kill_tree(p, grace_s=2.0)
            pool.shutdown(wait=True, cancel_futures=True)
        finally:
            pool.shutdown(wait=True)
    if stop.is_set():
        interrupted = True

    for o in outcomes.values():
        if o.record is None:
            continue
        if o.record["outcome"] == "error":
            o.status, o.reason = ERROR, o.record.get("reason", "")
            continue
        res = o.record["result"]
        o.gates = evaluate_gates(o.cell, res, base_cells.get(o.cell.baseline_key), skip_latency=update_baseline)
        failed = [g for g in o.gates if not g.ok]
        o.status = FAILED if failed else PASSED
        o.reason = "; ".join(g.message for g in failed)

    state.close(interrupted)
    run = HilRun(out, [outcomes[c.id] for c in matrix.cells], run_id, interrupted, time.time() - t0,
                 str(baseline) if baseline else None)
    write_outputs(run, matrix, junit)
    if update_baseline and not interrupted:
        write_baseline(run, baseline or out / "baseline.json", base_cells)
    if interrupted:
        raise KeyboardInterrupt
    return run


def write_baseline(run: HilRun, path: str | os.PathLike, old: dict[str, Any]) -> Path:
    """Keep entries for cells not in this run; replace those measured now (fault cells never count)."""
    cells = dict(old)
    for o in run.outcomes:
        if o.record and o.record.get("outcome") == "ok" and not o.cell.fault:
            cells[o.cell.baseline_key] = baseline_entry(o.record["result"])
    doc = {"schema": BASELINE_SCHEMA, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "cells": dict(sorted(cells.items()))}
    return write_json(path, doc)


# --------------------------------------------------------------------------------------------------- outputs


def _cell_json(o: CellOutcome, out_dir: Path) -> dict[str, Any]:
    rec = o.record or {}
    return {"id": o.cell.id, "status": o.status, "reason": o.reason, "lane": o.lane, "reused": o.reused,
            "params": o.cell.params(), "gates": [asdict(g) for g in o.gates],
            "result": rec.get("result"), "rc": rec.get("rc"), "wall_seconds": rec.get("wall_seconds"),
            "run_id": rec.get("run_id"),
            "log": str((out_dir / "cells" / o.cell.id / "deploy.log").relative_to(out_dir)) if rec else None}


def write_outputs(run: HilRun, matrix: Matrix, junit: str | os.PathLike | None = None) -> dict[str, Path]:
    out = run.out_dir
    doc = {"schema": HIL_SCHEMA, "run_id": run.run_id, "matrix": str(matrix.path), "interrupted": run.interrupted,
           "wall_seconds": round(run.wall_seconds, 3), "baseline": run.baseline_path, "counts": run.counts(),
           "cells": [_cell_json(o, out) for o in run.outcomes]}
    paths = {"json": write_json(out / "hil.json", doc),
             "junit": write_text(Path(junit) if junit else out / "junit.xml", junit_xml(run)),
             "summary": write_text(out / "summary.md", summary_markdown(run))}
    return paths


def _num(v: Any, fmt: str = "{:,}") -> str:
    if isinstance(v, float) and v.is_integer() and fmt == "{:,}":
        v = int(v)  # counts arrive as medians (floats); 18,073,960 reads better than 18,073,960.0
    return fmt.format(v) if isinstance(v, int | float) and not isinstance(v, bool) else "–"


def _latency_text(res: dict[str, Any] | None) -> str:
    if not res:
        return "–"
    lat = res.get("latency") or {}
    v = lat.get("value")
    if not isinstance(v, int | float):
        return "–"
    s = _fmt_lat(v, lat.get("unit", ""))
    return s + (" (est.)" if lat.get("kind") == "estimated" else "")


def junit_xml(run: HilRun) -> str:
    c = run.counts()
    suites = ET.Element("testsuites", name="edgefold-hil", tests=str(len(run.outcomes)), failures=str(c[FAILED]),
                        errors=str(c[ERROR] + c[PENDING]), skipped=str(c[SKIPPED]), time=f"{run.wall_seconds:.3f}")
    by_target: dict[str, list[CellOutcome]] = {}
    for o in run.outcomes:
        by_target.setdefault(o.cell.target, []).append(o)
    for target, outs in by_target.items():
        cnt = {k: sum(o.status == k for o in outs) for k in (FAILED, ERROR, SKIPPED, PENDING)}
        suite = ET.SubElement(suites, "testsuite", name=f"hil.{target}", tests=str(len(outs)),
                              failures=str(cnt[FAILED]), errors=str(cnt[ERROR] + cnt[PENDING]),
                              skipped=str(cnt[SKIPPED]),
                              time=f"{sum((o.record or {}).get('wall_seconds') or 0 for o in outs):.3f}")
        for o in outs:
            rec = o.record or {}
            tc = ET.SubElement(suite, "testcase", classname=f"hil.{target}.{o.cell.backend}", name=o.cell.id,
                               time=f"{rec.get('wall_seconds') or 0:.3f}")
            if o.status == FAILED:
                failed = [g for g in o.gates if not g.ok]
                el = ET.SubElement(tc, "failure", message=o.reason, type=",".join(g.name for g in failed))
                el.text = "\n".join(g.message for g in o.gates)
            elif o.status == ERROR:
                el = ET.SubElement(tc, "error", message=o.reason or "error", type="error")
                el.text = rec.get("stderr_tail", "")
            elif o.status == PENDING:
                ET.SubElement(tc, "error", message="not run: the matrix run was interrupted", type="interrupted")
            elif o.status == SKIPPED:
                ET.SubElement(tc, "skipped", message=o.reason)
            res = rec.get("result")
            if res:
                lines = [f"latency: {_latency_text(res)}", f"instructions: {_num(res.get('instructions'))}",
                         f"ram: {json.dumps(res.get('ram'))}", f"flash: {_num(res.get('flash'))}",
                         f"accuracy: {json.dumps(res.get('accuracy'))}",
                         f"output_crc_match: {res.get('output_crc_match')}"]
                lines += [f"gate {g.name}: {'ok' if g.ok else 'FAIL'}: {g.message}" for g in o.gates]
                ET.SubElement(tc, "system-out").text = "\n".join(lines)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


_ICON = {PASSED: "✅", FAILED: "❌", ERROR: "💥", SKIPPED: "⏭️", PENDING: "⏸️"}


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def summary_markdown(run: HilRun) -> str:
    c = run.counts()
    head = (f"## edgefold HIL: {len(run.outcomes)} cells — {c[PASSED]} passed, {c[FAILED]} failed, "
            f"{c[ERROR]} errors, {c[SKIPPED]} skipped")
    head += f", {c[PENDING]} not run (interrupted)" if c[PENDING] else ""
    lines = [head, ""]
    reused = sum(o.reused for o in run.outcomes)
    if reused:
        lines += [f"{reused} cells resumed from an earlier run (not redeployed).", ""]
    lines += ["| | cell | device | latency | instructions | RAM (B) | Flash (B) | agreement | int8 acc. | notes |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for o in run.outcomes:
        res = (o.record or {}).get("result") or {}
        acc = res.get("accuracy") or {}
        notes = o.reason if o.status != PASSED else "; ".join(g.message for g in o.gates if g.name == "latency")
        dev = o.lane + (" (twin)" if res.get("emulated") else "")
        lines.append("| " + " | ".join([
            _ICON[o.status] + " " + o.status, f"`{o.cell.id}`", _md(dev),
            _latency_text(res), _num(res.get("instructions")), _num((res.get("ram") or {}).get("total")),
            _num(res.get("flash")), _num(acc.get("agreement"), "{:.1f}%"), _num(acc.get("int8"), "{:.1f}%"),
            _md(notes)]) + " |")
    lines += ["", "Latency marked *(est.)* is an estimate (instructions × CPI ÷ clock on an emulated twin), not a "
              "measurement on the board.", ""]
    return "\n".join(lines)
