"""edgefold as a library: the functions every `edgefold` command calls, and that scripts and notebooks call.

    from edgefold import api
    model = api.ModelRequest(model="resnet8", weights="runs/resnet8.pt")
    comp = api.compress_to_dir(api.CompressRequest(model, out=Path("runs/c"), method="fold", ratio=0.5))
    check = api.export_to_dir(api.ExportRequest(from_dir=Path("runs/c"), out=Path("runs/e")))
    manifest = api.codegen_to_dir(Path("runs/e"), Path("runs/e/codegen"))
    result = api.deploy(api.DeployConfig(target="nano33ble-qemu", out=Path("runs/d"), model="resnet8"))

Every function checks its request before any work, reports what it is doing through an optional `progress`
callback (one line of text per stage) and returns a typed record (edgefold.core.artifacts). User errors are
EdgefoldError with a one-line message; a failed call leaves its output folder as it was.
"""

from __future__ import annotations

import math
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefold.core.artifacts import CodegenManifest, CompressSummary, DeployResult, ExportSummary, plain
from edgefold.core.errors import EdgefoldError
from edgefold.core.vocab import BACKENDS, FAULTS, METHODS, REPAIRS, check_choice

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgefold.compiler.checkpoint import LoadedModel

__all__ = ["CALIB_SAMPLES", "Compressed", "CompressRequest", "DeployConfig", "ExportRequest", "ModelRequest",
           "Progress", "TrainRequest", "Trained", "bench", "codegen_to_dir", "compress_model", "compress_to_dir",
           "deploy", "export_model", "export_to_dir", "load_calibration", "train"]

CALIB_SAMPLES = 128  # built-in digits images BatchNorm REPAIR re-estimates on
TFLITE_FILE = "model_int8.tflite"

Progress = Callable[[str], None]  # told what is happening now, one line per stage


def _say(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


# --------------------------------------------------------------------------------------------------- model


@dataclass
class ModelRequest:
    """Which model: a zoo name or the user's `module:callable` factory, plus an optional checkpoint."""

    model: str | None = None
    factory: str | None = None
    weights: str | None = None
    input_shape: str | None = None  # "N,C,H,W" (required with factory)
    trust_checkpoint: bool = False  # allow checkpoints that need unpickling code

    def load(self) -> LoadedModel:
        from edgefold.compiler.checkpoint import resolve

        return resolve(self.model, self.factory, self.weights, self.input_shape, self.trust_checkpoint)


# --------------------------------------------------------------------------------------------------- compress


@dataclass
class CompressRequest:
    model: ModelRequest
    out: Path
    method: str = "fold"
    ratio: float = 0.5  # fraction of channels removed per coupled group
    repair: str = "ar"
    seed: int = 0
    calib: str | None = None  # .npz with array 'x' for --repair repair (default: the built-in digits, when they fit)

    def validate(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("repair", self.repair, REPAIRS)
        if not (math.isfinite(self.ratio) and 0.0 <= self.ratio < 1.0):
            raise EdgefoldError(f"--ratio must be in [0, 1) (fraction of channels removed), got {self.ratio}")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise EdgefoldError(f"--out {out} exists and is not a folder")


@dataclass
class Compressed:
    summary: CompressSummary  # what compress.json holds
    model: nn.Module  # the compressed model, in eval mode
    out_dir: Path  # holds model.pt and compress.json


def load_calibration(path: str, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Inputs from a user .npz (array 'x'), checked against the model's input shape; every failure is one line."""
    import numpy as np
    import torch

    p = Path(path)
    if not p.is_file():
        raise EdgefoldError(f"calibration file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise EdgefoldError(f"calibration file {p} must be a .npz with an array 'x', not a bare .npy")
            if "x" not in z.files:
                raise EdgefoldError(f"calibration file {p} has no array 'x' (found: {', '.join(z.files) or 'none'})")
            x = z["x"]
    except EdgefoldError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgefoldError(f"calibration file {p} is not a readable .npz: {first[:200]}") from None
    want = ",".join(str(v) for v in input_shape[1:])
    if not np.issubdtype(x.dtype, np.floating):
        raise EdgefoldError(f"calibration array 'x' in {p} must be floating point, got {x.dtype}")
    if x.ndim != len(input_shape) or tuple(x.shape[1:]) != tuple(input_shape[1:]):
        raise EdgefoldError(f"calibration array 'x' in {p} has shape {','.join(map(str, x.shape))}; "
                            f"the model needs N,{want}")
    if x.shape[0] < 2:
        raise EdgefoldError(f"calibration array 'x' in {p} needs at least 2 samples, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise EdgefoldError(f"calibration array 'x' in {p} contains NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def digits_fit(model: nn.Module, input_shape: tuple[int, ...]) -> bool:
    """Whether the built-in digits are this model's data: image-shaped input and 10 logits out."""
    import torch

    if len(input_shape) != 4:
        return False
    with torch.no_grad():
        out = model.eval()(torch.zeros((1, *input_shape[1:])))
    return isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[1] == 10


def compress_to_dir(req: CompressRequest, progress: Progress | None = None) -> Compressed:
    """`edgefold compress`: load the model, fold or prune it, repair BatchNorm, write model.pt and compress.json."""
    from edgefold.compiler import data

    req.validate()
    loaded = req.model.load()
    shape = tuple(loaded.spec.input_shape)
    calib, calib_label = None, None
    if req.calib:
        calib, calib_label = load_calibration(req.calib, shape), req.calib
    elif digits_fit(loaded.model, shape):
        calib = data.calibration_batch(shape, CALIB_SAMPLES, seed=req.seed)
        calib_label = f"digits train ({CALIB_SAMPLES} images)"
    if req.repair == "repair" and calib is None:
        raise EdgefoldError("--repair repair needs calibration data: pass --calib FILE.npz (array 'x', shape "
                            f"N,{','.join(map(str, shape[1:]))}), or use the data-free --repair ar / dir")
    return compress_model(loaded, req.out, req.method, req.ratio, req.repair, req.seed, calib, calib_label,
                          req.model.weights, progress)


def compress_model(loaded: LoadedModel, out: str | Path, method: str, ratio: float, repair: str, seed: int = 0,
                   calib: torch.Tensor | None = None, calib_label: str | None = None, weights: str | None = None,
                   progress: Progress | None = None) -> Compressed:
    """Compress a loaded model and write OUT/model.pt + OUT/compress.json (both appear together, or neither).
    `calib` is what REPAIR re-estimates BatchNorm statistics on; accuracy is measured on the digits test split
    only when digits are the model's data (image input, 10 logits)."""
    import torch

    from edgefold.compiler import data
    from edgefold.compiler.checkpoint import save_model
    from edgefold.compiler.compress import compress
    from edgefold.core.fsutil import staged_dir

    spec, model = loaded.spec, loaded.model
    if spec.name is None and spec.factory is None:
        raise EdgefoldError("a compressed model is saved as spec + weights: say which architecture with --model "
                            "or --factory (a pickled module cannot be rebuilt without its code)")
    shape = tuple(spec.input_shape)
    test = data.load(shape, "test") if digits_fit(model, shape) else None
    acc_before = data.accuracy(model, test) if test is not None else None
    _say(progress, f"compressing {spec.label}: {method}, ratio {ratio}, repair {repair}")
    compressed, report = compress(model, torch.zeros((1, *shape[1:])), method, ratio, repair,
                                  calib_data=calib if repair == "repair" else None, seed=seed)
    acc_after = data.accuracy(compressed, test) if test is not None else None
    summary = CompressSummary(
        method=report.method, ratio=report.ratio, repair=report.repair, seed=seed,
        params_before=report.params_before, params_after=report.params_after, macs_before=report.macs_before,
        macs_after=report.macs_after, param_ratio=report.param_ratio, mac_ratio=report.mac_ratio,
        seconds=report.seconds, timings=dict(report.timings), accuracy_before=acc_before, accuracy_after=acc_after,
        accuracy_data=f"digits test ({len(test)} images)" if test is not None else None,
        calibration=calib_label if repair == "repair" else None,  # only REPAIR looks at data; ar and dir are data-free
        model=spec.to_dict(), label=spec.label, weights=str(weights) if weights else None,
        groups=[{"name": g.name, "kind": g.kind, "n": g.n, "k": g.k, "merged": sum(len(m) > 1 for m in g.members),
                 "proj_error": g.proj_error, "prune_error": g.prune_error, "fold_error": g.fold_error}
                for g in report.groups],
        skipped_groups=list(report.skipped_groups), files={"model": "model.pt", "report": CompressSummary.FILE})
    summary = CompressSummary.from_dict(summary.to_dict())  # plain JSON types throughout, also in model.pt's meta
    meta = {**{k: v for k, v in loaded.meta.items() if k != "compress"}, "model": spec.label,
            "input_shape": list(shape), "classes": spec.num_classes, "accuracy": acc_after,
            "compress": summary.brief()}
    with staged_dir(out) as stage:
        save_model(stage / "model.pt", compressed, spec, plain(meta))  # plain data: loads with weights_only=True
        summary.write(stage / CompressSummary.FILE)
    return Compressed(summary, compressed, Path(out))


# --------------------------------------------------------------------------------------------------- export


@dataclass
class ExportRequest:
    out: Path
    model: ModelRequest = field(default_factory=ModelRequest)
    from_dir: Path | None = None  # a folder written by `edgefold compress` (its model.pt)
    formats: str = "onnx,onnx-int8,tflite-int8"
    calib: str | None = None  # .npz of float N x C x H x W inputs (default: 128 built-in digits images)
    target_backend: str = "tflm"  # whose op set gates the .tflite
    check: bool = True  # fidelity check and TFLM arena

    def load(self) -> LoadedModel:
        from edgefold.compiler.checkpoint import ModelSpec, check_input_shape, load_model, parse_input_shape

        if not self.from_dir:
            return self.model.load()
        if self.model.weights:
            raise EdgefoldError("pass either --weights or --from, not both")
        d = Path(self.from_dir)
        if not d.is_dir():
            raise EdgefoldError(f"--from folder not found: {d}")
        ckpt = d / "model.pt"
        if not ckpt.is_file():
            raise EdgefoldError(f"{d} has no model.pt: pass a folder written by `edgefold compress`")
        m = self.model
        spec = ModelSpec(name=m.model, factory=m.factory) if (m.model or m.factory) else None
        loaded = load_model(ckpt, spec, m.trust_checkpoint)
        if m.input_shape:
            loaded.spec.input_shape = parse_input_shape(m.input_shape)
        if not loaded.spec.input_shape:
            raise EdgefoldError(f"{ckpt} does not record the input shape: pass --input-shape N,C,H,W")
        check_input_shape(loaded.model, loaded.spec.input_shape)
        return loaded


def export_to_dir(req: ExportRequest, progress: Progress | None = None) -> ExportSummary:
    """`edgefold export`: the requested formats, checked, in req.out with check.json (all files or none)."""
    from edgefold.compiler.export import parse_formats

    formats = parse_formats(req.formats)  # an unknown format fails before any work
    loaded = req.load()
    return export_model(loaded.model, tuple(loaded.spec.input_shape), req.out, formats, req.calib,
                        req.target_backend, req.check, loaded.spec.label, progress=progress)


def export_model(model: nn.Module, input_shape: tuple[int, ...], out: str | Path, formats: str | list[str],
                 calib: torch.Tensor | str | None = None, target_backend: str = "tflm", check: bool = True,
                 label: str = "model", onnx_opset: int | None = None,
                 progress: Progress | None = None) -> ExportSummary:
    """Export an in-memory model into `out` (see edgefold.compiler.export.export_all); returns check.json's record."""
    from edgefold.compiler.export import export_all

    report = export_all(model, input_shape, out, formats, calib, target_backend, check=check, label=label,
                        onnx_opset=onnx_opset, on_stage=lambda s: _say(progress, f"{label}: {s}"))
    return report.summary()


# --------------------------------------------------------------------------------------------------- codegen


def codegen_to_dir(src: str | Path | bytes, out: str | Path, progress: Progress | None = None) -> CodegenManifest:
    """`edgefold codegen`: C for the edgefold micro runtime (model.c, model.h, model.json) from a .tflite file, an
    export folder holding model_int8.tflite, or the .tflite's bytes."""
    from edgefold.compiler.codegen import generate

    if isinstance(src, bytes):
        blob = src
    else:
        path = Path(src)
        if path.is_dir():
            path = path / TFLITE_FILE
        if not path.is_file():
            raise EdgefoldError(f"{path} not found (run `edgefold export` first, or pass a .tflite file)")
        blob = path.read_bytes()
    _say(progress, "codegen: model.c / model.h")
    return generate(blob, out)


# --------------------------------------------------------------------------------------------------- train


@dataclass
class TrainRequest:
    model: str  # zoo name
    out: Path  # checkpoint to write
    epochs: int = 8
    lr: float = 2e-3
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    augment: bool = False
    seed: int = 0


@dataclass
class Trained:
    checkpoint: Path
    accuracy: float  # % on the digits test split
    seconds: float


def train(req: TrainRequest, on_epoch: Callable[[int, float], None] | None = None) -> Trained:
    """`edgefold train`: a zoo model on the built-in digits; writes an edgefold checkpoint."""
    from edgefold.compiler import zoo
    from edgefold.compiler.checkpoint import ModelSpec, save_model
    from edgefold.compiler.train import TrainConfig
    from edgefold.compiler.train import train as run_training
    from edgefold.core.fsutil import ensure_dir

    if req.epochs < 1:
        raise EdgefoldError("--epochs must be at least 1")
    spec = ModelSpec(name=req.model, input_shape=zoo.input_shape(req.model))
    model = zoo.build(req.model)
    ensure_dir(Path(req.out).resolve().parent)
    cfg = TrainConfig(req.epochs, req.lr, req.optimizer, req.weight_decay, req.augment, seed=req.seed)
    t0 = time.perf_counter()
    acc = run_training(model, spec.input_shape, cfg, on_epoch=on_epoch)
    secs = time.perf_counter() - t0
    meta: dict[str, Any] = {"model": req.model, "input_shape": list(spec.input_shape), "classes": 10,
                            "accuracy": acc, "train": vars(cfg), "train_seconds": secs}
    save_model(req.out, model, spec, meta)
    return Trained(Path(req.out), acc, secs)


# --------------------------------------------------------------------------------------------------- devices


@dataclass
class DeployConfig:
    """One `edgefold deploy`: the model, how to compress it, the device, and the run folder."""

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

    @property
    def model_request(self) -> ModelRequest:
        return ModelRequest(self.model, self.factory, self.weights, self.input_shape, self.trust_checkpoint)

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


def deploy(cfg: DeployConfig, progress: Progress | None = None) -> DeployResult:
    """`edgefold deploy`: compress -> export -> (codegen) -> fit check -> build -> flash -> measure into cfg.out."""
    from edgefold import pipeline

    return pipeline.deploy(cfg, progress)


def bench(target: str, run_dir: Path, runs: int | None = None, warmup: int | None = None, port: str | None = None,
          timeout_s: float = 300.0, target_options: dict[str, Any] | None = None,
          progress: Progress | None = None) -> DeployResult:
    """`edgefold bench`: re-measure an earlier deploy's model on `target`; rewrites run_dir/result.json."""
    from edgefold import pipeline

    return pipeline.bench(target, run_dir, runs, warmup, port, timeout_s, target_options, progress)
