"""The compress -> export -> build -> flash -> measure chain behind `edgefold deploy` and `edgefold bench`
(reached through edgefold.api.deploy / bench).

A deploy writes one run directory, each stage handing the next a typed record (edgefold.core.artifacts):

    DIR/compress/     model.pt, compress.json (CompressSummary)                     compression stage
    DIR/build-input/  model_int8.tflite, model.onnx, check.json (ExportSummary), codegen/ (model.json:
                      CodegenManifest), input.bin, ..., build_input.json (BuildInput; see targets/base.py)
    DIR/build/        firmware / remote bundle                                      target build
    DIR/result.json   the measurement (DeployResult, schema edgefold-result/1)

Every stage's figures go into result.json; the run directory is what `edgefold bench` and `edgefold report` read.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from edgefold.api import DeployConfig, Progress
from edgefold.core.artifacts import BuildInput, CompressSummary, DeployResult, FirmwareBuild
from edgefold.core.errors import DeviceError, EdgefoldError, ToolchainMissing
from edgefold.core.fsutil import write_bytes
from edgefold.fitting import EpochHook

if TYPE_CHECKING:
    from edgefold.targets.base import BenchResult, BuildResult, DeviceSpec, Target

LINUX_ONNX_OPSET = 13

__all__ = ["BUILD_ENTRIES", "RUN_ENTRIES", "DeployConfig", "DeviceOutputMismatch", "bench", "build_firmware", "deploy",
           "prepare_build_input"]


def _stage(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def fixed_input(input_shape: tuple[int, ...], source: torch.Tensor | None = None) -> torch.Tensor:
    """The input every device runs: the first held-out sample (the model's own data), else the first image of the
    digits test split for image models, else zeros (1 x input shape, float)."""
    from edgefold.compiler import data

    if source is not None and len(source):
        return source[:1].contiguous()
    if len(input_shape) == 4:
        return data.load(input_shape, "test").x[:1].contiguous()
    return torch.zeros((1, *input_shape[1:]))


def prepare_build_input(model: torch.nn.Module, shape: tuple[int, ...], kind: str, backend: str, bdir: Path,
                        calib: torch.Tensor | None, label: str, ratio: float = 0.0,
                        progress: Progress | None = None, eval_x: torch.Tensor | None = None,
                        eval_y: torch.Tensor | None = None) -> BuildInput:
    """Export what the target needs into `bdir` (see targets/base.py), plus the fixed input and expected output;
    build_input.json records what the folder holds. eval_x/eval_y: what the fidelity check scores (the model's own
    labelled data; inputs alone give agreement only); calib None: only for float exports."""
    from edgefold.api import codegen_to_dir, export_model

    formats = ["tflite-int8"] if kind == "mcu" else ["onnx"]
    if calib is None:
        if kind == "mcu":
            raise EdgefoldError("int8 export needs calibration inputs: pass --data FILE (or --data digits, or "
                                "--data-free)")
        calib = torch.zeros((2, *shape[1:]))  # a float ONNX export calibrates nothing
    if eval_x is None:
        eval_x = calib[:256]
    # Linux boards: opset 13, what JetPack 4.6 (onnxruntime 1.11, TensorRT 8.2) reads.
    check = export_model(model, shape, bdir, formats, calib, target_backend=backend if kind == "mcu" else "tflm",
                         label=label, onnx_opset=None if kind == "mcu" else LINUX_ONNX_OPSET,
                         progress=lambda s: _stage(progress, f"export: {s}"), eval_x=eval_x, eval_y=eval_y)
    x = fixed_input(shape, eval_x)
    write_bytes(bdir / "input.npy", _npy(x.numpy().astype(np.float32)))
    if kind == "mcu":
        from edgefold.compiler.check.fidelity import quantize_input
        from edgefold.compiler.check.tflm import tflm_invoke

        blob = (bdir / "model_int8.tflite").read_bytes()
        q_in = check.tflite_io["input"]  # the export made it full-integer: int8, one scale and zero point
        qx = quantize_input(x, float(q_in["scale"][0]), int(q_in["zero_point"][0]))
        write_bytes(bdir / "input.bin", qx.tobytes())
        expected = tflm_invoke(blob, qx).astype(np.int8).tobytes()
        write_bytes(bdir / "expected_output.bin", expected)
        if backend == "edgefold":
            codegen_to_dir(blob, bdir / "codegen", progress)
    bi = BuildInput.open(bdir)
    bi.model, bi.kind, bi.backend, bi.ratio = label, kind, backend, ratio
    bi.write(bdir / BuildInput.FILE)
    return bi


def _npy(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


RUN_ENTRIES = ("compress", "build-input", "build", "result.json")  # what a deploy writes anew in its run folder


def deploy(cfg: DeployConfig, progress: Progress | None = None, on_epoch: EpochHook | None = None,
           target: Target | None = None) -> DeployResult:
    """(fit) -> compress -> (recover) -> export -> (codegen) -> fit check -> build -> flash -> measure; writes
    DIR/result.json, with the fitted footprint's prediction next to what the build measured.

    Every flag and precondition is checked first (edgefold.api.preflight), then the model and the data; the run is
    staged in a temporary sibling of DIR that replaces DIR only when everything succeeded, so a failed or
    interrupted deploy leaves DIR as it was (its stages go to cfg.keep_failed when that is set).

    The device has the last word on instructions: when a fitted model counts more than --max-instructions on the
    twin, the fit runs once more with the instruction model rescaled by measured / predicted."""
    from edgefold.api import preflight
    from edgefold.core.fsutil import staged_output

    if target is None:
        target = preflight(cfg)
    try:
        _stage(progress, "loading model")
        t0 = time.perf_counter()
        loaded, plan = _load(cfg, target)
        load_s = round(time.perf_counter() - t0, 3)
        with staged_output(cfg.out, cfg.keep_failed, replace=RUN_ENTRIES) as stage:
            result = _deploy_in(cfg, target, stage, loaded, plan, progress, on_epoch, retry=True, load_s=load_s)
    finally:
        close = getattr(target, "close", None)
        if callable(close):
            close()
    return result


def _load(cfg: DeployConfig, target: Target) -> tuple[Any, Any]:
    """The model and the data plan (the data rule), checked before any work."""
    from edgefold.fitting import data_plan

    loaded = cfg.model_request.load()
    plan = data_plan(loaded, cfg.data)
    if plan.inputs is None and not cfg.data.data_free:
        if target.spec.kind == "mcu":
            plan.require_inputs("int8 calibration for an MCU")
        if cfg.repair == "repair" or cfg.recover.enabled or cfg.fit.enabled:
            plan.require_inputs("--repair repair, --fit and --recover")
    return loaded, plan


def _deploy_in(cfg: DeployConfig, target: Target, out: Path, loaded: Any, plan: Any, progress: Progress | None,
               on_epoch: EpochHook | None, retry: bool, load_s: float = 0.0) -> DeployResult:
    """The deploy chain into the staging folder `out` (cfg.out is where it will be)."""
    from edgefold.api import compress_model
    from edgefold.fitting import ShrinkRequest

    assert cfg.backend is not None  # preflight resolved it
    t_start = time.perf_counter() - load_s
    seconds: dict[str, float] = {"load": load_s}

    def timed(name: str, text: str) -> None:
        _stage(progress, text)
        seconds[name] = time.perf_counter()

    def done(name: str) -> None:
        seconds[name] = round(time.perf_counter() - seconds[name], 3)

    shape = loaded.spec.input_shape
    timed("compress", f"compress: {cfg.method}, repair {cfg.repair}")
    shrink = ShrinkRequest(cfg.method, cfg.ratio, cfg.repair, cfg.seed, cfg.fit, cfg.recover)
    comp = compress_model(loaded, out / "compress", shrink, plan, target, cfg.backend, cfg.weights, progress,
                          on_epoch)
    done("compress")

    if target.spec.kind == "mcu" and not cfg.fit.enabled:
        early_fit_check(target.spec, comp.summary, cfg.ratio)

    timed("export", "export")
    sh = comp.shrunk
    calib = sh.calib if sh is not None else None
    ev = plan.eval
    bi = prepare_build_input(comp.model, shape, target.spec.kind, cfg.backend, out / "build-input", calib,
                             loaded.spec.label, cfg.ratio, progress, ev.x if ev is not None else None,
                             ev.y if ev is not None else None)
    done("export")

    timed("fit", f"fit check for {cfg.target}")
    fit = target.fit_check(out / "build-input", cfg.backend)
    if not fit.fits:
        raise EdgefoldError(fit.message or f"model does not fit {cfg.target}")
    done("fit")

    timed("build", f"build for {cfg.target}")
    build = target.build(out / "build-input", out / "build", cfg.backend, cfg.runs, cfg.warmup, cfg.profile)
    done("build")
    timed("flash", f"flash {cfg.target}")
    flashed = target.flash(build, cfg.port)
    done("flash")
    timed("run", f"run {cfg.warmup} warm-up + {cfg.runs} timed inferences")
    measured = target.run_benchmark(build, flashed, cfg.timeout_s)
    done("run")

    result = assemble_result(cfg, target, build, measured, bi, comp.summary.brief())
    fit_info = comp.summary.extra.get("fit")
    over = _over_instruction_budget(cfg, result, fit_info)
    if fit_info and retry and over and result.instructions:
        from dataclasses import replace

        scale = cfg.fit.instruction_scale * result.instructions / fit_info["predicted"]["instructions"] * 1.01
        _stage(progress, f"{over}: fitting again with the instruction model scaled by {scale:.3f}")
        again = replace(cfg, fit=replace(cfg.fit, instruction_scale=scale))
        t0 = time.perf_counter()
        loaded, plan = _load(again, target)  # a fresh copy: the first fit changed the model in place
        return _deploy_in(again, target, out, loaded, plan, progress, on_epoch, retry=False,
                          load_s=round(time.perf_counter() - t0, 3))
    if fit_info:
        pred = fit_info["predicted"]
        result.extra["footprint"] = {
            "predicted": {"flash": pred["flash"], "static_ram": pred["static_ram"], "ram": pred["ram"],
                          "instructions": pred["instructions"], "latency_ms": pred["latency_ms"]},
            "measured": {"flash": build.flash, "static_ram": build.static_ram, "instructions": result.instructions},
            "budget": fit_info["budget"]}
    if comp.summary.extra.get("recover"):
        result.extra["recover"] = {k: v for k, v in comp.summary.extra["recover"].items() if k != "history"}
    if plan.notes:
        result.extra["notes"] = list(plan.notes)
    if not cfg.weights:
        result.extra["warning"] = "no --weights: the model's weights are random"
    result.seconds = seconds
    result.wall_seconds = round(time.perf_counter() - t_start, 3)
    result = _relocate(result, out, Path(cfg.out))
    result.write(out / DeployResult.FILE)
    return result


def _relocate(result: DeployResult, stage: Path, dest: Path) -> DeployResult:
    """The record with paths into the staging folder pointing where the files will be once it is in place."""
    old, new = str(stage), str(dest.absolute())

    def fix(v: Any) -> Any:
        if isinstance(v, str):
            return v.replace(old, new)
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return DeployResult.from_dict(fix(result.to_dict()))


def _over_instruction_budget(cfg: DeployConfig, result: DeployResult, fit_info: dict[str, Any] | None) -> str | None:
    """Why the measured model misses an instruction or latency limit it was fitted to (None: it meets them)."""
    if not fit_info or not result.instructions:
        return None
    if cfg.fit.max_instructions and result.instructions > cfg.fit.max_instructions:
        return f"measured {result.instructions:,.0f} instructions > {cfg.fit.max_instructions:,.0f}"
    lat = result.latency.get("value")
    if cfg.fit.max_latency and lat is not None and lat > cfg.fit.max_latency:
        return f"estimated latency {lat:.1f} ms > {cfg.fit.max_latency:g} ms"
    return None


def early_fit_check(spec: DeviceSpec, comp: CompressSummary, ratio: float) -> None:
    """Before minutes of export: int8 weights alone (one byte per parameter) must fit the device's Flash.
    The exact check (arena, code size, the linker) comes after export; this only stops hopeless cases early."""
    import math

    weights = int(comp.params_after or 0)
    if weights <= spec.flash_bytes:
        return
    keep = (1.0 - ratio) * math.sqrt(spec.flash_bytes * 0.9 / weights)  # weights scale ~ (1-r)^2
    sug = math.ceil((1.0 - keep) * 20) / 20
    hint = f"; try --ratio {sug:.2f}" if sug < 0.96 else "; no ratio would fit: choose a smaller model"
    raise EdgefoldError(f"model does not fit: needs at least {weights / 1024:,.0f} KB Flash for its int8 weights "
                        f"alone, {spec.name} has {spec.flash_bytes / 1024:,.0f} KB Flash{hint}")


def output_match(bench: BenchResult, bi: BuildInput, kind: str) -> bool | None:
    """Did the device compute what the host computed? MCU: CRC32 of the int8 output against the TFLM host.
    Linux/ONNX: the device's float output against onnxruntime here (tolerance: different CPUs/libraries)."""
    if kind == "mcu":
        chk = bench.extra.get("output_check")  # a real board judged it (tflm: its library's kernels, with reason)
        if chk is not None:
            return {"exact": True, "within_tolerance": True, "mismatch": False}.get(chk.get("verdict"))
        exp = bi.file("expected_output")
        if exp is None or bench.output_crc is None:
            return None
        return bench.output_crc == crc32(exp.read_bytes())
    match = bench.extra.get("output_crc_match", bench.extra.get("output_match"))
    return bool(match) if match is not None else None


def assemble_result(cfg: DeployConfig, target: Target, build: BuildResult, bench: BenchResult, bi: BuildInput,
                    comp: dict[str, Any]) -> DeployResult:
    """The result.json record (schema edgefold-result/1); `comp` is the compress summary's brief()."""
    spec = target.spec
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
    cg = bi.codegen
    codegen = None if cg is None else {"arena_bytes": cg.arena_bytes, "weights_bytes": cg.weights_bytes,
                                       "macs": cg.macs, "model_id": cg.model_id}
    arena = bench.arena_bytes if bench.arena_bytes is not None else (cg.arena_bytes if cg is not None else None)
    static = build.static_ram
    ram: dict[str, Any] = {"static": static, "arena": arena, "stack": bench.stack_bytes,
                           "total": (static or 0) + (0 if spec.kind == "mcu" else (arena or 0)) or None}
    if spec.kind != "mcu":
        ram = {"static": None, "arena": None, "stack": None, "total": bench.extra.get("ram_bytes"),
               "source": bench.extra.get("ram_source"), "peak_rss": bench.extra.get("peak_rss_bytes")}
    match = output_match(bench, bi, spec.kind)
    if match is False:
        raise DeviceOutputMismatch(f"{cfg.target}: the device's output differs from the host's (CRC mismatch): "
                                   "the firmware computed something else")
    export = bi.export
    accuracy = export.accuracy() if export is not None else {"float": None, "int8": None, "agreement": None,
                                                              "onnx": None}
    measured_profile = bench.extra.get("profile")
    profile = None
    if measured_profile is not None:
        if cg is None:
            raise EdgefoldError(f"{bi.path}: no codegen/model.json to name the profiled kernel calls")
        profile = step_profile(cg.steps, measured_profile)
    return DeployResult(
        target=cfg.target, device=bench.extra.get("device") or spec.title, emulated=spec.emulated,
        backend=cfg.backend, model=comp.get("model") or cfg.model or cfg.factory, method=cfg.method,
        ratio=cfg.ratio, repair=cfg.repair, latency=latency, instructions=instructions, ram=ram,
        flash=build.flash if build.flash is not None else bench.extra.get("flash_bytes"),
        output_crc_match=match, accuracy=accuracy,
        params=comp.get("params_after"), macs=comp.get("macs_after"),
        params_before=comp.get("params_before"), macs_before=comp.get("macs_before"),
        compress=comp, estimate=estimate, bench=bench.to_dict(),
        tflm_arena_bytes=export.tflm_arena_bytes if export is not None else None, codegen=codegen,
        config=_config_dict(cfg), profile=profile)


def step_profile(steps: list[dict[str, Any]], measured: dict[str, Any]) -> list[dict[str, Any]]:
    """The codegen manifest's kernel calls (CodegenManifest.steps) joined with the device's per-step figures
    (BenchResult.extra["profile"]: values with the stamps' cost taken out, in its unit): one row per kernel call with
    step, kernel, op, layer, macs, value, unit and share (of the sum of the values)."""
    values = [float(v) for v in measured["values"]]
    if len(values) != len(steps):
        raise DeviceError(f"per-step profile: the device timed {len(values)} kernel calls, the model's codegen lists "
                          f"{len(steps)} (stale firmware? build again)")
    total = sum(values)
    return [{"step": i, "kernel": s.get("kernel"), "op": s.get("op"), "op_index": s.get("op_index"),
             "layer": s.get("layer"), "macs": int(s.get("macs") or 0), "value": v, "unit": measured["unit"],
             "share": v / total if total > 0 else 0.0}
            for i, (s, v) in enumerate(zip(steps, values, strict=True))]


def _config_dict(cfg: DeployConfig) -> dict[str, Any]:
    d = asdict(cfg)
    d["out"] = str(cfg.out)
    return d


class DeviceOutputMismatch(DeviceError):
    """The device ran, but its output CRC differs from the host's: never report such a number as a result."""


def bench(target_name: str, run_dir: Path, runs: int | None = None, warmup: int | None = None,
          port: str | None = None, timeout_s: float = 300.0, target_options: dict[str, Any] | None = None,
          progress: Progress | None = None, keep_failed: Path | None = None, profile: bool = False) -> DeployResult:
    """Re-measure an earlier deploy's model (DIR/build-input) on `target_name`; rewrites DIR/result.json
    (the previous record is appended to DIR/history.jsonl first, so nothing is lost). Staged like deploy: a failed
    or interrupted bench leaves DIR as it was."""
    from edgefold.api import check_outputs, check_profile
    from edgefold.core.fsutil import staged_output
    from edgefold.targets.registry import target_class

    run_dir = Path(run_dir)
    if runs is not None and runs < 1:
        raise EdgefoldError(f"--runs must be >= 1, got {runs}")
    bdir = run_dir / "build-input"
    if not bdir.is_dir():
        raise EdgefoldError(f"{run_dir} is not an edgefold deploy folder (no build-input/): run edgefold deploy first")
    prev = DeployResult.read(run_dir / DeployResult.FILE) if (run_dir / DeployResult.FILE).is_file() else None
    pc = prev.config if prev is not None else {}
    cfg = DeployConfig(target=target_name, out=run_dir, model=pc.get("model"), method=pc.get("method", "fold"),
                       ratio=float(pc.get("ratio", 0.0)), repair=pc.get("repair", "none"),
                       backend=pc.get("backend"), port=port, runs=int(pc.get("runs", 10)) if runs is None else runs,
                       warmup=int(pc.get("warmup", 2)) if warmup is None else warmup, timeout_s=timeout_s,
                       target_options=dict(target_options or {}), keep_failed=keep_failed, profile=profile)
    cfg.validate()
    check_outputs(run_dir, keep_failed)
    cls = target_class(target_name)
    opts = cls.check_options(cfg.target_options)
    if cfg.backend not in cls.spec.backends:
        cfg.backend = cls.spec.backends[0]
    check_profile(cfg, cls)
    bi = BuildInput.open(bdir)
    role, name = ("tflite", "model_int8.tflite") if cls.spec.kind == "mcu" else ("onnx", "model.onnx")
    if bi.file(role) is None:
        raise EdgefoldError(f"{bdir} has no {name} for {target_name}: deploy to a target of that kind first")
    target = cls(**opts)
    try:
        target.preflight(cfg.backend, port)
        with staged_output(run_dir, keep_failed) as stage:
            t0 = time.perf_counter()
            _stage(progress, f"build for {target_name}")
            build = target.build(stage / "build-input", stage / "build", cfg.backend, cfg.runs, cfg.warmup,
                                 cfg.profile)
            _stage(progress, f"flash {target_name}")
            flashed = target.flash(build, port)
            _stage(progress, f"run {cfg.warmup} warm-up + {cfg.runs} timed inferences")
            measured = target.run_benchmark(build, flashed, timeout_s)
            sbi = BuildInput.open(stage / "build-input")
            result = assemble_result(cfg, target, build, measured, sbi, prev.compress if prev is not None else {})
            result.wall_seconds = round(time.perf_counter() - t0, 3)
            result = _relocate(result, stage, run_dir)
            if prev is not None:
                with open(stage / "history.jsonl", "a") as f:
                    f.write(json.dumps(prev.to_dict(), sort_keys=True) + "\n")
            result.write(stage / DeployResult.FILE)
    finally:
        close = getattr(target, "close", None)
        if callable(close):
            close()
    return result


BUILD_ENTRIES = ("compress", "build-input", "build", "firmware.json")  # what a build writes anew in its folder


def build_firmware(cfg: DeployConfig, progress: Progress | None = None, on_epoch: EpochHook | None = None,
                   offline: bool | None = None) -> FirmwareBuild:
    """(fit) -> compress -> export -> (codegen) -> fit check -> build, no flash: DIR/build/ holds the board's
    PlatformIO project and, when its toolchain is installed, the firmware; DIR/firmware.json its sizes. A board
    whose toolchain is missing still gets its project (FirmwareBuild.not_built says why there is no firmware).
    offline: build a board only when its PlatformIO platform is installed (no download attempt; default: the
    EDGEFOLD_OFFLINE environment variable). Staged like deploy: a failed build leaves DIR as it was."""
    from edgefold.api import check_profile
    from edgefold.core.fsutil import staged_output
    from edgefold.targets.registry import target_class
    from edgefold.targets.serial_board import SerialBoardTarget

    cfg.validate()
    cls = target_class(cfg.target)
    opts = cls.check_options(dict(cfg.target_options))
    cfg.backend = cfg.backend or cls.spec.backends[0]
    if cfg.backend not in cls.spec.backends:
        raise EdgefoldError(f"{cfg.target} supports backend {', '.join(cls.spec.backends)}, not {cfg.backend}")
    check_profile(cfg, cls)
    target = cls(**opts)
    if offline is not None and isinstance(target, SerialBoardTarget):
        target.offline = offline
    try:
        t0 = time.perf_counter()
        _stage(progress, "loading model")
        loaded, plan = _load(cfg, target)
        with staged_output(cfg.out, cfg.keep_failed, replace=BUILD_ENTRIES) as out:
            rec = _build_in(cfg, target, out, loaded, plan, progress, on_epoch)
            rec.wall_seconds = round(time.perf_counter() - t0, 3)
            rec.write(out / FirmwareBuild.FILE)
    finally:
        close = getattr(target, "close", None)
        if callable(close):
            close()
    return rec


def _build_in(cfg: DeployConfig, target: Target, out: Path, loaded: Any, plan: Any, progress: Progress | None,
              on_epoch: EpochHook | None) -> FirmwareBuild:
    """The build chain into the staging folder `out`; paths in the record are relative to the run folder."""
    from edgefold.api import compress_model
    from edgefold.fitting import ShrinkRequest
    from edgefold.targets.serial_board import SerialBoardTarget

    assert cfg.backend is not None
    _stage(progress, f"compress: {cfg.method}, repair {cfg.repair}")
    shrink = ShrinkRequest(cfg.method, cfg.ratio, cfg.repair, cfg.seed, cfg.fit, cfg.recover)
    comp = compress_model(loaded, out / "compress", shrink, plan, target, cfg.backend, cfg.weights, progress,
                          on_epoch)
    if target.spec.kind == "mcu" and not cfg.fit.enabled:
        early_fit_check(target.spec, comp.summary, cfg.ratio)
    _stage(progress, "export")
    sh, ev = comp.shrunk, plan.eval
    prepare_build_input(comp.model, loaded.spec.input_shape, target.spec.kind, cfg.backend, out / "build-input",
                        sh.calib if sh is not None else None, loaded.spec.label, cfg.ratio, progress,
                        ev.x if ev is not None else None, ev.y if ev is not None else None)
    _stage(progress, f"fit check for {cfg.target}")
    fit = target.fit_check(out / "build-input", cfg.backend)
    if not fit.fits:
        raise EdgefoldError(fit.message or f"model does not fit {cfg.target}")
    _stage(progress, f"build for {cfg.target}")

    def rel(p: str | Path | None) -> str | None:
        if p is None:
            return None
        try:
            return str(Path(p).resolve().relative_to(out.resolve()))
        except ValueError:
            return str(p)

    rec = FirmwareBuild(target=cfg.target, backend=cfg.backend, model=loaded.spec.label, config=_config_dict(cfg))
    try:
        b = target.build(out / "build-input", out / "build", cfg.backend, cfg.runs, cfg.warmup, cfg.profile)
    except ToolchainMissing as e:
        if not isinstance(target, SerialBoardTarget):
            raise
        proj, fw = target.generate(out / "build-input", out / "build", cfg.backend, cfg.runs, cfg.warmup,
                                   cfg.profile)
        rec.project, rec.not_built = rel(proj), str(e)
        rec.model_id, rec.arena_bytes, rec.macs = fw.header.model_id, fw.header.arena_bytes, fw.header.macs
    else:
        rec.firmware, rec.flash, rec.static_ram = rel(b.artifact), b.flash, b.static_ram
        meta = b.extra
        rec.project = rel(meta["project"]) if meta.get("project") else None
        rec.flash_total = meta.get("flash_total", target.spec.flash_bytes if target.spec.kind == "mcu" else None)
        rec.ram_total = meta.get("ram_total", target.spec.ram_bytes if target.spec.kind == "mcu" else None)
        rec.model_id, rec.arena_bytes, rec.macs = meta.get("model_id"), meta.get("arena_bytes"), meta.get("macs")
    return rec
