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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgefold.core.artifacts import (
    CodegenManifest,
    CompressSummary,
    DeployResult,
    ExportSummary,
    FirmwareBuild,
    plain,
)
from edgefold.core.errors import EdgefoldError
from edgefold.core.vocab import BACKENDS, FAULTS, MCU_BACKENDS, METHODS, REPAIRS, check_choice
from edgefold.fitting import DataRequest, EpochHook, FitRequest, RecoverRequest, ShrinkRequest, Shrunk

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgefold.compiler.checkpoint import LoadedModel
    from edgefold.compiler.userdata import DataPlan
    from edgefold.targets.base import Target

__all__ = ["CALIB_SAMPLES", "Compressed", "CompressRequest", "DeployConfig", "ExportRequest", "FinetuneRequest",
           "ModelRequest", "finetune_dir",
           "Progress", "TrainRequest", "Trained", "bench", "build_firmware", "codegen_to_dir", "compress_model",
           "compress_to_dir", "check_outputs", "deploy", "export_model", "export_to_dir", "load_calibration",
           "preflight", "train"]

CALIB_SAMPLES = 128  # built-in digits images BatchNorm REPAIR re-estimates on
TFLITE_FILE = "model_int8.tflite"

Progress = Callable[[str], None]  # told what is happening now, one line per stage


def _say(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


def check_outputs(out: str | Path, keep_failed: str | Path | None = None) -> None:
    """The output folder (and the --keep-failed folder) can be written, checked before any work."""
    from edgefold.core.fsutil import check_output_dir

    check_output_dir(out, "output folder")
    if keep_failed is not None:
        check_output_dir(keep_failed, "--keep-failed folder")
        if Path(keep_failed).absolute() == Path(out).absolute():
            raise EdgefoldError("--keep-failed must be another folder than --out")


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
    ratio: float = 0.5  # fraction of channels removed per coupled group (without --fit / --ratios)
    repair: str = "ar"
    seed: int = 0
    calib: str | None = None  # older name of data.data: inputs for --repair repair
    data: DataRequest = field(default_factory=DataRequest)
    fit: FitRequest = field(default_factory=FitRequest)
    recover: RecoverRequest = field(default_factory=RecoverRequest)
    target: str | None = None  # --fit: the device whose budget and cost model apply (default nano33ble-qemu)
    keep_failed: Path | None = None  # where a failed run's staged output is kept (default: removed)

    def validate(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("repair", self.repair, REPAIRS)
        if not (math.isfinite(self.ratio) and 0.0 <= self.ratio < 1.0):
            raise EdgefoldError(f"--ratio must be in [0, 1) (fraction of channels removed), got {self.ratio}")
        check_outputs(self.out, self.keep_failed)
        if self.calib and self.data.data:
            raise EdgefoldError("pass either --calib or --data, not both")
        self.data.validate()
        self.fit.validate()
        self.recover.validate()
        if self.target is not None:
            from edgefold.targets.registry import target_class

            target_class(self.target)


@dataclass
class Compressed:
    summary: CompressSummary  # what compress.json holds
    model: nn.Module  # the compressed model, in eval mode
    out_dir: Path  # holds model.pt and compress.json
    shrunk: Shrunk | None = None  # fit / recovery details and the inputs export calibrates on


def load_calibration(path: str, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Inputs from a user .npz (x[, y]) or .npy, checked against the model's input shape (compiler/userdata)."""
    from edgefold.compiler.userdata import load_arrays

    return load_arrays(path, input_shape, what="--calib", min_samples=2).x


def compress_to_dir(req: CompressRequest, progress: Progress | None = None,
                    on_epoch: EpochHook | None = None) -> Compressed:
    """`edgefold compress`: load the model, (fit,) fold or prune it, repair BatchNorm, (recover,) write model.pt and
    compress.json (staged: on failure req.out is left as it was)."""
    from edgefold.core.fsutil import staged_output
    from edgefold.fitting import data_plan

    req.validate()
    loaded = req.model.load()
    dreq = DataRequest(req.data.data or req.calib, req.data.eval_data, req.data.data_free)
    plan = data_plan(loaded, dreq)  # every data file is checked here, before any work
    target = None
    if req.fit.enabled:
        from edgefold.targets.registry import get_target

        target = get_target(req.target or "nano33ble-qemu")
    shrink = ShrinkRequest(req.method, req.ratio, req.repair, req.seed, req.fit, req.recover)
    with staged_output(req.out, req.keep_failed) as stage:
        res = compress_model(loaded, stage, shrink, plan, target, weights=req.model.weights, progress=progress,
                             on_epoch=on_epoch)
    res.out_dir = Path(req.out)
    return res


def compress_model(loaded: LoadedModel, out: str | Path, req: ShrinkRequest, plan: DataPlan, target: Any = None,
                   backend: str = "edgefold", weights: str | None = None, progress: Progress | None = None,
                   on_epoch: EpochHook | None = None) -> Compressed:
    """Compress a loaded model (edgefold.fitting.shrink) and write OUT/model.pt + OUT/compress.json (both appear
    together, or neither). Accuracy is measured only on labelled data that belongs to the model (the data rule)."""
    from edgefold.compiler.checkpoint import save_model
    from edgefold.core.fsutil import staged_dir
    from edgefold.fitting import shrink

    spec = loaded.spec
    if spec.name is None and spec.factory is None:
        raise EdgefoldError("a compressed model is saved as spec + weights: say which architecture with --model "
                            "or --factory (a pickled module cannot be rebuilt without its code)")
    shape = tuple(spec.input_shape)
    s = shrink(loaded, req, plan, target, backend, progress, on_epoch)
    report = s.report
    extra: dict[str, Any] = {"ratios": {g.name: round((g.n - g.k) / g.n, 6) for g in report.groups if g.k < g.n},
                             "data": s.inputs_label, "notes": s.notes, "stage_seconds": s.seconds}
    if s.fit is not None:
        extra["fit"] = s.fit.to_dict()
    if s.recover is not None:
        extra["recover"] = s.recover
        extra["accuracy_after_compress"] = s.accuracy_after_compress
    summary = CompressSummary(
        method=report.method, ratio=report.ratio, repair=report.repair, seed=req.seed,
        params_before=report.params_before, params_after=report.params_after, macs_before=report.macs_before,
        macs_after=report.macs_after, param_ratio=report.param_ratio, mac_ratio=report.mac_ratio,
        seconds=report.seconds, timings=dict(report.timings), accuracy_before=s.accuracy_before,
        accuracy_after=s.accuracy_after,
        accuracy_data=f"{s.eval.source} ({len(s.eval)} samples)" if s.eval is not None else None,
        calibration=s.inputs_label if report.repair == "repair" else None,  # ar and dir are data-free
        model=spec.to_dict(), label=spec.label, weights=str(weights) if weights else None,
        groups=[{"name": g.name, "kind": g.kind, "n": g.n, "k": g.k, "merged": sum(len(m) > 1 for m in g.members),
                 "proj_error": g.proj_error, "prune_error": g.prune_error, "fold_error": g.fold_error}
                for g in report.groups],
        skipped_groups=list(report.skipped_groups), files={"model": "model.pt", "report": CompressSummary.FILE},
        extra=extra)
    summary = CompressSummary.from_dict(summary.to_dict())  # plain JSON types throughout, also in model.pt's meta
    meta = {**{k: v for k, v in loaded.meta.items() if k != "compress"}, "model": spec.label,
            "input_shape": list(shape), "classes": spec.num_classes, "accuracy": s.accuracy_after,
            "compress": summary.brief()}
    with staged_dir(out) as stage:
        save_model(stage / "model.pt", s.model, spec, plain(meta))  # plain data: loads with weights_only=True
        summary.write(stage / CompressSummary.FILE)
    return Compressed(summary, s.model, Path(out), s)


@dataclass
class FinetuneRequest:
    """`edgefold finetune --from DIR`: recovery of an earlier compression, distilled from its uncompressed model."""

    from_dir: Path
    out: Path
    weights: str | None = None  # the uncompressed model's checkpoint (default: what compress.json records)
    data: DataRequest = field(default_factory=DataRequest)
    recover: RecoverRequest = field(default_factory=lambda: RecoverRequest(enabled=True))
    seed: int = 0
    keep_failed: Path | None = None

    def validate(self) -> None:
        self.data.validate()
        self.recover.validate()
        d = Path(self.from_dir)
        if not (d / "model.pt").is_file() or not (d / CompressSummary.FILE).is_file():
            raise EdgefoldError(f"--from {d}: needs model.pt and compress.json (a folder written by edgefold "
                                "compress)")
        check_outputs(self.out, self.keep_failed)


def finetune_dir(req: FinetuneRequest, progress: Progress | None = None,
                 on_epoch: EpochHook | None = None) -> Compressed:
    """Distil DIR/model.pt from the uncompressed model it came from; write OUT/model.pt + OUT/compress.json."""
    from edgefold.compiler.checkpoint import ModelSpec, load_model, resolve, save_model
    from edgefold.compiler.recover import RecoverConfig, recover, synthetic_inputs
    from edgefold.core.fsutil import staged_output
    from edgefold.fitting import _accuracy, data_plan

    req.validate()
    d = Path(req.from_dir)
    summary = CompressSummary.read(d / CompressSummary.FILE)
    teacher_weights = req.weights or summary.weights
    if not teacher_weights:
        raise EdgefoldError(f"{d / CompressSummary.FILE} records no weights for the uncompressed model: pass --weights")
    spec = ModelSpec.from_dict(summary.model)
    shape = ",".join(map(str, spec.input_shape))
    teacher = resolve(spec.name, spec.factory, teacher_weights, shape)
    student = load_model(d / "model.pt", ModelSpec(spec.name, spec.factory, spec.input_shape, spec.num_classes))
    plan = data_plan(teacher, req.data)
    example = torch_zeros(spec.input_shape)
    if plan.inputs is not None:
        inputs, label = plan.inputs.x, plan.inputs.source
    elif req.data.data_free:
        _say(progress, "data-free: synthesising inputs by deep inversion of the uncompressed model")
        inputs, label = synthetic_inputs(teacher.model, example, 256, seed=req.seed), "deep inversion (256 samples)"
    else:
        inputs, label = plan.require_inputs("finetune").x, None
    before = _accuracy(student.model, plan.eval)
    _say(progress, f"recover: distilling from the uncompressed model on {label}")
    ev = plan.eval
    cfg = RecoverConfig(epochs=req.recover.epochs, time_budget_s=req.recover.time_s, seed=req.seed,
                        feature_weight=req.recover.feature_weight)
    rep = recover(student.model, teacher.model, inputs, cfg,
                  labels=plan.inputs.y if plan.inputs is not None else None,
                  eval_x=ev.x if ev is not None else None, eval_y=ev.y if ev is not None else None, on_epoch=on_epoch)
    after = _accuracy(student.model, ev)
    doc = summary.to_dict()
    doc.update(accuracy_after_compress=before, accuracy_after=after, recover={**rep.to_dict(), "inputs": label},
               accuracy_data=f"{ev.source} ({len(ev)} samples)" if ev is not None else None,
               finetuned_from=str(d))
    out_summary = CompressSummary.from_dict(doc)
    meta = {**student.meta, "accuracy": after, "compress": out_summary.brief()}
    with staged_output(req.out, req.keep_failed) as stage:
        save_model(stage / "model.pt", student.model, student.spec, plain(meta), plan=student.plan)
        out_summary.write(stage / CompressSummary.FILE)
    return Compressed(out_summary, student.model, Path(req.out))


def torch_zeros(shape: tuple[int, ...]) -> torch.Tensor:
    import torch

    return torch.zeros((1, *tuple(shape)[1:]))


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
    data: DataRequest = field(default_factory=DataRequest)  # --data (calibration) / --eval-data (fidelity)
    keep_failed: Path | None = None
    prefix: str = "ef_"  # arduino-library / c-package: of the model's symbols ({prefix}model_run) and macros
    onnx_reduce_range: bool = False  # ONNX int8 weights in -64..64 (x86 hosts without VNNI)

    def validate(self) -> list[str]:
        """The flags and the output folder; returns the formats."""
        formats, _ = split_formats(self.formats, self.prefix)
        check_choice("target backend", self.target_backend, MCU_BACKENDS)
        if self.calib and self.data.data:
            raise EdgefoldError("pass either --calib or --data, not both")
        self.data.validate()
        if self.from_dir is not None and self.model.weights:
            raise EdgefoldError("pass either --weights or --from, not both")
        check_outputs(self.out, self.keep_failed)
        return formats

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
    from edgefold.compiler import data as digits
    from edgefold.core.fsutil import staged_output
    from edgefold.fitting import data_plan

    req.validate()  # an unknown format or prefix, or an unwritable folder, fails before any work
    formats, packages = split_formats(req.formats, req.prefix)
    target_backend = "edgefold" if packages else req.target_backend  # packages run on the edgefold runtime
    loaded = req.load()
    shape = tuple(loaded.spec.input_shape)
    dreq = DataRequest(req.data.data or req.calib, req.data.eval_data, req.data.data_free)
    plan = data_plan(loaded, dreq)  # the data rule: checked before any work
    calib: torch.Tensor
    if plan.inputs is None:
        if dreq.data_free:
            from edgefold.compiler.recover import synthetic_inputs

            calib = synthetic_inputs(loaded.model, torch_zeros(shape), 64)
        elif any(f.endswith("int8") for f in formats):
            calib = plan.require_inputs("int8 calibration").x
        else:
            import torch

            calib = torch.zeros((2, *shape[1:]))  # float formats calibrate nothing
    elif plan.inputs.builtin:
        calib = digits.calibration_batch(shape, CALIB_SAMPLES)  # the fixed 128-image sample
    else:
        calib = plan.inputs.x[:CALIB_SAMPLES]
    ev = plan.eval
    eval_x = ev.x if ev is not None else calib[:256]
    with staged_output(req.out, req.keep_failed) as stage:
        summary = export_model(loaded.model, shape, stage, formats, calib, target_backend, req.check,
                               loaded.spec.label, progress=progress, eval_x=eval_x,
                               eval_y=ev.y if ev is not None else None, onnx_reduce_range=req.onnx_reduce_range)
        if packages:
            from edgefold.compiler.codegen.package import FOLDERS, make_package

            blob = (stage / TFLITE_FILE).read_bytes()
            made = {}
            for fmt in packages:
                _say(progress, f"{fmt}: model + runtime + example")
                pkg = make_package(blob, stage / FOLDERS[fmt], fmt, req.prefix, loaded.spec.label)
                made[fmt] = str(Path(req.out) / Path(pkg.archive or pkg.path).relative_to(stage))
            summary.extra["packages"] = made
            summary.write(stage / ExportSummary.FILE)
    return summary


def split_formats(text: str, prefix: str) -> tuple[list[str], list[str]]:
    """(export formats, packages): a package (arduino-library, c-package) brings the int8 .tflite it is made from."""
    from edgefold.compiler.codegen import check_prefix
    from edgefold.compiler.codegen.package import PACKAGE_FORMATS
    from edgefold.compiler.export import parse_formats

    items = [s.strip().lower() for s in text.split(",") if s.strip()]
    packages = [f for f in PACKAGE_FORMATS if f in items]
    rest = [f for f in items if f not in PACKAGE_FORMATS]
    if packages:
        check_prefix(prefix)
        rest.append("tflite-int8")
    try:
        return parse_formats(rest), packages
    except EdgefoldError as e:
        raise EdgefoldError(f"{e}, or a package: {', '.join(PACKAGE_FORMATS)}") from None


def export_model(model: nn.Module, input_shape: tuple[int, ...], out: str | Path, formats: str | list[str],
                 calib: torch.Tensor | str | None = None, target_backend: str = "tflm", check: bool = True,
                 label: str = "model", onnx_opset: int | None = None,
                 progress: Progress | None = None, eval_x: torch.Tensor | None = None,
                 eval_y: torch.Tensor | None = None, onnx_reduce_range: bool = False) -> ExportSummary:
    """Export an in-memory model into `out` (see edgefold.compiler.export.export_all); returns check.json's record.
    eval_x / eval_y: what the fidelity check scores (default: the digits test split)."""
    from edgefold.compiler.export import export_all

    report = export_all(model, input_shape, out, formats, calib, target_backend, check=check, label=label,
                        onnx_opset=onnx_opset, on_stage=lambda s: _say(progress, f"{label}: {s}"), eval_x=eval_x,
                        eval_y=eval_y, onnx_reduce_range=onnx_reduce_range)
    return report.summary()


# --------------------------------------------------------------------------------------------------- codegen


def codegen_to_dir(src: str | Path | bytes, out: str | Path, progress: Progress | None = None,
                   keep_failed: str | Path | None = None, prefix: str = "ef_") -> CodegenManifest:
    """`edgefold codegen`: C for the edgefold micro runtime (model.c, model.h, model.json) from a .tflite file, an
    export folder holding model_int8.tflite, or the .tflite's bytes (staged: on failure `out` is as it was).
    prefix: of the model's symbol and macros ({prefix}model_run, {PREFIX}INPUT_BYTES); a prefix other than ef_ also
    names the files ({prefix}model.c/.h)."""
    from edgefold.compiler.codegen import check_prefix, generate
    from edgefold.core.fsutil import staged_output

    prefix = check_prefix(prefix)

    if isinstance(src, bytes):
        blob = src
    else:
        path = Path(src)
        if path.is_dir():
            path = path / TFLITE_FILE
        if not path.is_file():
            raise EdgefoldError(f"{path} not found (run `edgefold export` first, or pass a .tflite file)")
        check_outputs(out, keep_failed)
        try:
            blob = path.read_bytes()
        except OSError as e:
            raise EdgefoldError(f"cannot read {path}: {e.strerror or e}") from None
    _say(progress, "codegen: model.c / model.h")
    with staged_output(out, keep_failed) as stage:
        return generate(blob, stage, prefix)


# --------------------------------------------------------------------------------------------------- train


@dataclass
class TrainRequest:
    model: str | None  # zoo name (or None with factory)
    out: Path  # checkpoint to write
    epochs: int = 8
    lr: float = 2e-3
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    augment: bool = False
    seed: int = 0
    factory: str | None = None  # the user's model: module:callable (with input_shape and data)
    input_shape: str | None = None
    data: str | None = None  # .npz with x and labels y (default: the digits, zoo models only)
    eval_data: str | None = None

    def validate(self) -> None:
        from edgefold.core.fsutil import check_output_file

        if self.epochs < 1:
            raise EdgefoldError(f"--epochs must be at least 1, got {self.epochs}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise EdgefoldError(f"--lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise EdgefoldError(f"--weight-decay must be a number >= 0, got {self.weight_decay}")
        check_choice("optimizer", self.optimizer, ("adam", "sgd"))
        if (self.model is None) == (self.factory is None):
            raise EdgefoldError("pass --model NAME (zoo) or --factory module:callable, one of them")
        if self.model is not None:
            from edgefold.compiler import zoo

            if self.model not in zoo.names():
                raise EdgefoldError(f"unknown model {self.model!r}; choose one of: {', '.join(zoo.names())}")
        check_output_file(self.out, "--out checkpoint")


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

    req.validate()
    train_set = test_set = None
    if req.factory is not None:
        from edgefold.compiler.checkpoint import resolve
        from edgefold.compiler.data import Split
        from edgefold.compiler.userdata import load_arrays, num_outputs

        loaded = resolve(None, req.factory, None, req.input_shape)
        spec, model = loaded.spec, loaded.model
        shape = tuple(spec.input_shape)
        classes = num_outputs(model, shape)
        if classes is None:
            raise EdgefoldError("edgefold train fits classifiers: the model's output must be N x classes")
        if req.data is None:
            raise EdgefoldError("training a user model needs its data: --data train.npz (x and labels y)")
        tr = load_arrays(req.data, shape, need_labels=True, num_classes=classes, min_samples=2)
        assert tr.y is not None  # need_labels
        train_set = Split(tr.x, tr.y)
        if req.eval_data:
            te = load_arrays(req.eval_data, shape, what="--eval-data", need_labels=True, num_classes=classes)
            assert te.y is not None
            test_set = Split(te.x, te.y)
        spec.num_classes = classes
    else:
        if req.data not in (None, "digits"):
            raise EdgefoldError("zoo models train on the built-in digits; a --data file goes with --factory")
        assert req.model is not None
        spec = ModelSpec(name=req.model, input_shape=zoo.input_shape(req.model))
        model = zoo.build(req.model)
        classes = 10
    cfg = TrainConfig(req.epochs, req.lr, req.optimizer, req.weight_decay, req.augment, seed=req.seed)
    t0 = time.perf_counter()
    acc = run_training(model, spec.input_shape, cfg, on_epoch=on_epoch, train_set=train_set, test_set=test_set)
    secs = time.perf_counter() - t0
    meta: dict[str, Any] = {"model": spec.label, "input_shape": list(spec.input_shape), "classes": classes,
                            "accuracy": acc, "train": vars(cfg), "train_seconds": secs,
                            "accuracy_data": "digits test" if train_set is None else
                            (req.eval_data or f"{req.data} (training data)")}
    ensure_dir(Path(req.out).resolve().parent)
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
    data: DataRequest = field(default_factory=DataRequest)
    fit: FitRequest = field(default_factory=FitRequest)
    recover: RecoverRequest = field(default_factory=RecoverRequest)
    keep_failed: Path | None = None  # where a failed run's staged folder is kept (default: removed)
    profile: bool = False  # time every kernel call too (per_step_profile targets, edgefold backend)

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
        if self.runs < 1:
            raise EdgefoldError(f"--runs must be >= 1, got {self.runs}")
        if self.warmup < 0:
            raise EdgefoldError(f"--warmup must be >= 0, got {self.warmup}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise EdgefoldError(f"--timeout must be a positive number of seconds, got {self.timeout_s:g}")
        if self.fault is not None:
            check_choice("fault", self.fault, FAULTS)
        self.data.validate()
        self.fit.validate()
        self.recover.validate()
        check_outputs(self.out, self.keep_failed)


def check_profile(cfg: DeployConfig, target: Target | type[Target]) -> None:
    """--profile's precondition, checked before any work: a target that can time every kernel call, running the
    edgefold backend (the one with kernel calls of ours to stamp). cfg.backend None means the target's default."""
    if not cfg.profile:
        return
    spec = target.spec
    if not target.per_step_profile:
        raise EdgefoldError(f"--profile: {spec.name} cannot time kernel calls (onnxruntime / TensorRT run their own "
                            "kernels); profile on an MCU target or twin, e.g. --target nano33ble-qemu")
    backend = cfg.backend or spec.backends[0]
    if backend != "edgefold":
        raise EdgefoldError(f"--profile times the edgefold runtime's kernel calls; backend {backend} has none "
                            "(use --backend edgefold)")


def preflight(cfg: DeployConfig) -> Target:
    """Everything a deploy can check before any work: the flags, the output folders, the target and its options
    (known keys, typed values), the backend, and the target's own preconditions (toolchain installed, board
    attached or port present, SSH host reachable). Returns the target, ready for the run; cfg.backend is resolved."""
    from edgefold.targets.registry import target_class

    cfg.validate()
    cls = target_class(cfg.target)
    options = dict(cfg.target_options)
    if cfg.fault is not None:
        if "fault" not in cls.options:
            raise EdgefoldError(f"--fault injects faults into the twins' serial line; {cfg.target} has none")
        options["fault"] = cfg.fault
    opts = cls.check_options(options)
    backend = cfg.backend or cls.spec.backends[0]
    if backend not in cls.spec.backends:
        raise EdgefoldError(f"{cfg.target} supports backend {', '.join(cls.spec.backends)}, not {backend}")
    check_profile(cfg, cls)
    target = cls(**opts)
    target.preflight(backend, cfg.port)
    cfg.backend = backend
    return target


def deploy(cfg: DeployConfig, progress: Progress | None = None, on_epoch: EpochHook | None = None,
           target: Target | None = None) -> DeployResult:
    """`edgefold deploy`: compress -> export -> (codegen) -> fit check -> build -> flash -> measure into cfg.out.
    target: what preflight(cfg) returned, when the caller ran it already."""
    from edgefold import pipeline

    return pipeline.deploy(cfg, progress, on_epoch, target)


def bench(target: str, run_dir: Path, runs: int | None = None, warmup: int | None = None, port: str | None = None,
          timeout_s: float = 300.0, target_options: dict[str, Any] | None = None,
          progress: Progress | None = None, keep_failed: Path | None = None, profile: bool = False) -> DeployResult:
    """`edgefold bench`: re-measure an earlier deploy's model on `target`; rewrites run_dir/result.json (staged: a
    failed bench leaves run_dir as it was). profile: also time every kernel call (DeployResult.profile)."""
    from edgefold import pipeline

    return pipeline.bench(target, run_dir, runs, warmup, port, timeout_s, target_options, progress, keep_failed,
                          profile)

def build_firmware(cfg: DeployConfig, progress: Progress | None = None, on_epoch: EpochHook | None = None,
                   offline: bool | None = None) -> FirmwareBuild:
    """`edgefold build` / `deploy --no-flash`: compress -> export -> (codegen) -> fit check -> build into cfg.out,
    nothing flashed; returns (and writes as cfg.out/firmware.json) the project, firmware and its sizes."""
    from edgefold import pipeline

    return pipeline.build_firmware(cfg, progress, on_epoch, offline)
