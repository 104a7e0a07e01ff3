"""The compress -> export -> build -> flash -> measure chain behind `edgefold deploy` and `edgefold bench`.

A deploy writes one run directory:

    DIR/compress/   model.pt, compress.json          (compression stage)
    DIR/build-input/  model_int8.tflite, model.onnx, check.json, codegen/, input.bin, ... (see targets/base.py)
    DIR/build/      firmware / remote bundle          (target build)
    DIR/result.json                                   (the measurement, schema edgefold-result/1)

Every stage's figures go into result.json; the run directory is what `edgefold bench` and `edgefold report` read.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgefold.core.errors import DeviceError, EdgefoldError
from edgefold.core.fsutil import ensure_dir, write_bytes, write_json
from edgefold.core.vocab import BACKENDS, FAULTS, METHODS, REPAIRS, check_choice

SCHEMA = "edgefold-result/1"
LINUX_ONNX_OPSET = 13

Progress = Callable[[str], None]


@dataclass
class DeployConfig:
    target: str
    out: Path
    model: str | None = None
    factory: str | None = None
    weights: str | None = None
    input_shape: str | None = None
    trust_checkpoint: bool = False
    method: str = "fold"
    ratio: float = 0.5
    repair: str = "ar"
    backend: str | None = None  # None: the target's first (edgefold on MCUs, onnxruntime on the Jetson)
    port: str | None = None
    runs: int = 10
    warmup: int = 2
    timeout_s: float = 300.0
    fault: str | None = None
    seed: int = 0
    target_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Reject bad flags before any work is done."""
        check_choice("method", self.method, METHODS)
        check_choice("repair", self.repair, REPAIRS)
        if not 0.0 <= self.ratio < 1.0:
            raise EdgefoldError(f"--ratio must be in [0, 1), got {self.ratio}")
        if self.backend is not None:
            check_choice("backend", self.backend, BACKENDS)
        if self.runs < 1 or self.warmup < 0:
            raise EdgefoldError("--runs must be >= 1 and --warmup >= 0")
        if self.fault is not None:
            check_choice("fault", self.fault, FAULTS)


def _stage(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def fixed_input(input_shape: tuple[int, ...]) -> torch.Tensor:
    """The input every device runs: the first image of the digits test split (1 x C x H x W, float)."""
    from edgefold.compiler import data

    return data.load(input_shape, "test").x[:1].contiguous()


def _compress_stage(cfg: DeployConfig, loaded, calib: torch.Tensor | None, out: Path) -> tuple[torch.nn.Module, dict]:
    from edgefold.compiler import data
    from edgefold.compiler.checkpoint import save_model
    from edgefold.compiler.compress import compress

    shape = loaded.spec.input_shape
    example = torch.zeros(shape).contiguous()
    model, rep = compress(loaded.model, example, cfg.method, cfg.ratio, cfg.repair, calib_data=calib, seed=cfg.seed)
    summary = rep.to_dict()
    summary.pop("groups", None)
    summary["model"] = loaded.spec.label
    if calib is not None:
        test = data.load(shape, "test")
        summary["accuracy_before"] = data.accuracy(loaded.model, test)
        summary["accuracy_after"] = data.accuracy(model, test)
    cdir = ensure_dir(out / "compress")
    save_model(cdir / "model.pt", model, loaded.spec, {**loaded.meta, "compress": summary})
    write_json(cdir / "compress.json", {**summary, "model": loaded.spec.to_dict()})
    return model, summary


def _digits_fit(shape: tuple[int, ...]) -> bool:
    """The built-in data can feed any N,C,H,W input (it is resized); other ranks need user data."""
    return len(shape) == 4


def prepare_build_input(model: torch.nn.Module, shape: tuple[int, ...], kind: str, backend: str, bdir: Path,
                        calib: torch.Tensor | None, label: str, progress: Progress | None = None) -> dict[str, Any]:
    """Export what the target needs into `bdir` (see targets/base.py), plus the fixed input and expected output."""
    from edgefold.compiler.export import export_all

    formats = ["tflite-int8"] if kind == "mcu" else ["onnx"]
    # Linux boards: opset 13, what JetPack 4.6 (onnxruntime 1.11, TensorRT 8.2) reads.
    rep = export_all(model, shape, bdir, formats=formats, calib=calib, target_backend=backend if kind == "mcu"
                     else "tflm", label=label, on_stage=lambda s: _stage(progress, f"export: {s}"),
                     onnx_opset=None if kind == "mcu" else LINUX_ONNX_OPSET)
    x = fixed_input(shape) if calib is not None else torch.zeros(shape)
    info: dict[str, Any] = {"export": rep.to_dict()}
    write_bytes(bdir / "input.npy", _npy(x.numpy().astype(np.float32)))
    if kind == "mcu":
        from edgefold.compiler.check.fidelity import io_params, quantize_input
        from edgefold.compiler.check.tflm import tflm_invoke

        blob = (bdir / "model_int8.tflite").read_bytes()
        (in_scale, in_zp), _, _ = io_params(blob)
        qx = quantize_input(x, in_scale, in_zp)
        qin = qx.tobytes()
        write_bytes(bdir / "input.bin", qin)
        expected = tflm_invoke(blob, qx).astype(np.int8).tobytes()
        write_bytes(bdir / "expected_output.bin", expected)
        if backend == "edgefold":
            from edgefold.compiler.codegen import generate

            _stage(progress, "codegen: model.c / model.h")
            cg = generate(blob, bdir / "codegen")
            info["codegen"] = {"arena_bytes": cg.arena_bytes, "weights_bytes": cg.weights_bytes, "macs": cg.macs,
                               "model_id": cg.model_id}
    return info


def _npy(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _accuracy(export: dict[str, Any]) -> dict[str, float | None]:
    fid = export.get("fidelity", {})
    q = fid.get("tflite-int8-tflm") or fid.get("tflite-int8") or {}
    return {"float": fid.get("torch", {}).get("accuracy"), "int8": q.get("accuracy"),
            "agreement": q.get("agreement"), "onnx": fid.get("onnx", {}).get("accuracy")}


def deploy(cfg: DeployConfig, progress: Progress | None = None) -> dict[str, Any]:
    """compress -> export -> (codegen) -> fit check -> build -> flash -> measure; writes DIR/result.json."""
    from edgefold.compiler import data
    from edgefold.compiler.checkpoint import resolve
    from edgefold.targets.registry import get_target

    cfg.validate()
    options = dict(cfg.target_options)
    if cfg.fault is not None:
        options["fault"] = cfg.fault
    target = get_target(cfg.target, **options)
    cfg.backend = cfg.backend or target.spec.backends[0]
    if cfg.backend not in target.spec.backends:
        raise EdgefoldError(f"{cfg.target} supports backend {', '.join(target.spec.backends)}, not {cfg.backend}")
    out = ensure_dir(cfg.out)
    t_start = time.perf_counter()
    seconds: dict[str, float] = {}

    def timed(name: str, text: str):
        _stage(progress, text)
        seconds[name] = time.perf_counter()

    def done(name: str) -> None:
        seconds[name] = round(time.perf_counter() - seconds[name], 3)

    timed("load", "loading model")
    loaded = resolve(cfg.model, cfg.factory, cfg.weights, cfg.input_shape, cfg.trust_checkpoint)
    shape = loaded.spec.input_shape
    calib = data.calibration_batch(shape) if _digits_fit(shape) else None
    if calib is None and cfg.repair in ("repair",):
        raise EdgefoldError("--repair repair needs calibration data; the built-in data fits N,C,H,W inputs only")
    done("load")

    timed("compress", f"compress: {cfg.method} ratio {cfg.ratio} repair {cfg.repair}")
    model, comp = _compress_stage(cfg, loaded, calib, out)
    done("compress")

    if target.spec.kind == "mcu":
        early_fit_check(target.spec, comp, cfg.ratio)

    timed("export", "export")
    bdir = out / "build-input"
    info = prepare_build_input(model, shape, target.spec.kind, cfg.backend, bdir, calib, loaded.spec.label, progress)
    done("export")

    timed("fit", f"fit check for {cfg.target}")
    fit = target.fit_check(bdir, cfg.backend)
    if not fit.fits:
        raise EdgefoldError(fit.message or f"model does not fit {cfg.target}")
    done("fit")

    timed("build", f"build for {cfg.target}")
    build = target.build(bdir, out / "build", cfg.backend, cfg.runs, cfg.warmup)
    done("build")
    timed("flash", f"flash {cfg.target}")
    flashed = target.flash(build, cfg.port)
    done("flash")
    timed("run", f"run {cfg.warmup} warm-up + {cfg.runs} timed inferences")
    bench = target.run_benchmark(build, flashed, cfg.timeout_s)
    done("run")

    result = assemble_result(cfg, target, build, bench, bdir, comp, info)
    result["seconds"] = seconds
    result["wall_seconds"] = round(time.perf_counter() - t_start, 3)
    write_json(out / "result.json", result)
    return result


def early_fit_check(spec, comp: dict[str, Any], ratio: float) -> None:
    """Before minutes of export: int8 weights alone (one byte per parameter) must fit the device's Flash.
    The exact check (arena, code size, the linker) comes after export; this only stops hopeless cases early."""
    import math

    weights = int(comp.get("params_after") or 0)
    if weights <= spec.flash_bytes:
        return
    keep = (1.0 - ratio) * math.sqrt(spec.flash_bytes * 0.9 / weights)  # weights scale ~ (1-r)^2
    sug = math.ceil((1.0 - keep) * 20) / 20
    hint = f"; try --ratio {sug:.2f}" if sug < 0.96 else "; no ratio would fit: choose a smaller model"
    raise EdgefoldError(f"model does not fit: needs at least {weights / 1024:,.0f} KB Flash for its int8 weights "
                        f"alone, {spec.name} has {spec.flash_bytes / 1024:,.0f} KB Flash{hint}")


def output_match(bench, bdir: Path, kind: str) -> bool | None:
    """Did the device compute what the host computed? MCU: CRC32 of the int8 output against the TFLM host.
    Linux/ONNX: the device's float output against onnxruntime here (tolerance: different CPUs/libraries)."""
    if kind == "mcu":
        exp = bdir / "expected_output.bin"
        if not exp.is_file() or bench.output_crc is None:
            return None
        return bench.output_crc == crc32(exp.read_bytes())
    match = bench.extra.get("output_crc_match", bench.extra.get("output_match"))
    return bool(match) if match is not None else None


def assemble_result(cfg: DeployConfig, target, build, bench, bdir: Path, comp: dict[str, Any],
                    info: dict[str, Any]) -> dict[str, Any]:
    """The result.json record (schema edgefold-result/1)."""
    spec = target.spec
    export = info.get("export", {})
    est = bench.extra.get("latency_estimate")
    if bench.unit == "instructions":
        instructions: float | None = bench.median
        latency = dict(est) if est else {"value": None, "unit": "ms", "kind": "estimated"}
        latency.update(runs=bench.runs, per_run_instructions=bench.per_run)
        estimate = est
    else:
        instructions = None
        latency = {"value": bench.median, "unit": bench.unit, "kind": bench.kind, "runs": bench.runs,
                   "per_run": bench.per_run}
        estimate = None
    arena = bench.arena_bytes if bench.arena_bytes is not None else info.get("codegen", {}).get("arena_bytes")
    static = build.static_ram
    ram = {"static": static, "arena": arena, "stack": bench.stack_bytes,
           "total": (static or 0) + (0 if spec.kind == "mcu" else (arena or 0)) or None}
    if spec.kind != "mcu":
        ram = {"static": None, "arena": None, "stack": None, "total": bench.extra.get("ram_bytes"),
               "source": bench.extra.get("ram_source"), "peak_rss": bench.extra.get("peak_rss_bytes")}
    match = output_match(bench, bdir, spec.kind)
    if match is False:
        raise DeviceOutputMismatch(f"{cfg.target}: the device's output differs from the host's (CRC mismatch): "
                                   "the firmware computed something else")
    return {
        "schema": SCHEMA, "target": cfg.target, "device": bench.extra.get("device") or spec.title,
        "emulated": spec.emulated,
        "backend": cfg.backend, "model": comp.get("model") or cfg.model or cfg.factory, "method": cfg.method,
        "ratio": cfg.ratio, "repair": cfg.repair, "latency": latency, "instructions": instructions, "ram": ram,
        "flash": build.flash if build.flash is not None else bench.extra.get("flash_bytes"),
        "output_crc_match": match, "accuracy": _accuracy(export),
        "params": comp.get("params_after"), "macs": comp.get("macs_after"),
        "params_before": comp.get("params_before"), "macs_before": comp.get("macs_before"),
        "compress": comp, "estimate": estimate, "bench": bench.to_dict(),
        "tflm_arena_bytes": export.get("tflm_arena_bytes"), "codegen": info.get("codegen"),
        "config": _config_dict(cfg),
    }


def _config_dict(cfg: DeployConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["out"] = str(cfg.out)
    return d


class DeviceOutputMismatch(DeviceError):
    """The device ran, but its output CRC differs from the host's: never report such a number as a result."""


def bench(target_name: str, run_dir: Path, runs: int | None = None, warmup: int | None = None,
          port: str | None = None, timeout_s: float = 300.0, target_options: dict[str, Any] | None = None,
          progress: Progress | None = None) -> dict[str, Any]:
    """Re-measure an earlier deploy's model (DIR/build-input) on `target_name`; rewrites DIR/result.json
    (the previous record is appended to DIR/history.jsonl first, so nothing is lost)."""
    import json

    from edgefold.targets.registry import get_target

    run_dir = Path(run_dir)
    bdir = run_dir / "build-input"
    if not bdir.is_dir():
        raise EdgefoldError(f"{run_dir} is not an edgefold deploy folder (no build-input/): run edgefold deploy first")
    prev: dict[str, Any] = {}
    if (run_dir / "result.json").is_file():
        try:
            prev = json.loads((run_dir / "result.json").read_text())
        except json.JSONDecodeError:
            raise EdgefoldError(f"{run_dir / 'result.json'} is not valid JSON") from None
    pc = prev.get("config", {})
    cfg = DeployConfig(target=target_name, out=run_dir, model=pc.get("model"), method=pc.get("method", "fold"),
                       ratio=float(pc.get("ratio", 0.0)), repair=pc.get("repair", "none"),
                       backend=pc.get("backend"), port=port, runs=runs or int(pc.get("runs", 10)),
                       warmup=int(pc.get("warmup", 2)) if warmup is None else warmup, timeout_s=timeout_s,
                       target_options=dict(target_options or {}))
    cfg.validate()
    target = get_target(target_name, **cfg.target_options)
    if cfg.backend not in target.spec.backends:
        cfg.backend = target.spec.backends[0]
    kind_needs = "model_int8.tflite" if target.spec.kind == "mcu" else "model.onnx"
    if not (bdir / kind_needs).is_file():
        raise EdgefoldError(f"{bdir} has no {kind_needs} for {target_name}: deploy to a target of that kind first")
    t0 = time.perf_counter()
    _stage(progress, f"build for {target_name}")
    build = target.build(bdir, run_dir / "build", cfg.backend, cfg.runs, cfg.warmup)
    _stage(progress, f"flash {target_name}")
    flashed = target.flash(build, port)
    _stage(progress, f"run {cfg.warmup} warm-up + {cfg.runs} timed inferences")
    measured = target.run_benchmark(build, flashed, timeout_s)
    info = {"export": _read_json(bdir / "check.json"), "codegen": prev.get("codegen", {})}
    result = assemble_result(cfg, target, build, measured, bdir, prev.get("compress", {}), info)
    result["wall_seconds"] = round(time.perf_counter() - t0, 3)
    if prev:
        with open(run_dir / "history.jsonl", "a") as f:
            f.write(json.dumps(prev, sort_keys=True) + "\n")
    write_json(run_dir / "result.json", result)
    return result


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}
