"""Export stage: ONNX float, ONNX int8 (QDQ), TFLite int8 full-integer (+ C array), each gated by a check.

`export_all` produces every requested artifact in memory, checks it (fidelity against float PyTorch on held-out
data, op coverage for the target backend, TFLM arena), and only then moves the files into the output folder
together, so a failure half-way leaves nothing new behind and earlier artifacts untouched.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgefold.core.artifacts import ExportSummary, plain
from edgefold.core.errors import EdgefoldError

FORMATS = ("onnx", "onnx-int8", "tflite-int8")
FILES = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx", "tflite-int8": "model_int8.tflite"}
CHECK_FILE = ExportSummary.FILE


@dataclass
class ExportReport:
    """What `export_all` produced; `summary()` is what check.json holds."""

    model: str
    input_shape: list[int]
    formats: list[str]
    target_backend: str
    artifacts: dict[str, str] = field(default_factory=dict)  # file name -> format (or "c-array", "check")
    sizes: dict[str, int] = field(default_factory=dict)  # file name -> bytes
    fidelity: dict[str, Any] = field(default_factory=dict)  # format -> FormatFidelity
    tflm_arena_bytes: int | None = None  # 64-bit host TFLM estimate
    ops: dict[str, int] = field(default_factory=dict)  # .tflite builtin op -> highest version used
    coverage: Any = None  # CoverageReport for target_backend
    tflite_io: dict[str, Any] = field(default_factory=dict)  # int8 input/output: shape, scale, zero point
    flags: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    out_dir: Path | None = None

    def summary(self) -> ExportSummary:
        """The record check.json holds (edgefold.core.artifacts.ExportSummary)."""
        fid = {k: plain(v.to_dict()) for k, v in self.fidelity.items()}
        return ExportSummary(
            model=self.model, input_shape=list(self.input_shape),
            formats={f: {"file": FILES[f], "bytes": self.sizes.get(FILES[f]), **self._fid(fid, f)}
                     for f in self.formats},
            fidelity=fid, target_backend=self.target_backend, tflm_arena_bytes=self.tflm_arena_bytes,
            tflm_arena_note="64-bit host TFLM estimate" if self.tflm_arena_bytes else None, ops=dict(self.ops),
            tflite_io=plain(self.tflite_io), coverage=self.coverage.to_dict() if self.coverage is not None else None,
            flags=list(self.flags), files=dict(self.sizes), seconds=dict(self.seconds))

    def to_dict(self) -> dict[str, Any]:
        return self.summary().to_dict()

    @staticmethod
    def _fid(fid: dict[str, Any], fmt: str) -> dict[str, Any]:
        keys = ("agreement", "accuracy", "max_abs_error")
        out = {k: fid[fmt][k] for k in keys} if fmt in fid else {}
        if fmt == "tflite-int8" and "tflite-int8-tflm" in fid:
            out["tflm"] = {k: fid["tflite-int8-tflm"][k] for k in keys}
        if fmt == "onnx-int8" and "onnx-int8-qdq" in fid:
            out["qdq"] = {k: fid["onnx-int8-qdq"][k] for k in keys}
        return out


def parse_formats(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """'onnx,tflite-int8' -> ['onnx', 'tflite-int8'] (canonical order), or a one-line error."""
    items = [s.strip().lower() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    aliases = {"onnx-float": "onnx", "onnx_int8": "onnx-int8", "tflite": "tflite-int8", "tflite_int8": "tflite-int8",
               "tflm": "tflite-int8", "all": None}
    out: list[str] = []
    for it in items:
        it = aliases.get(it, it) if it in aliases else it
        if it is None:
            out.extend(FORMATS)
        elif it in FORMATS:
            out.append(it)
        else:
            raise EdgefoldError(f"unknown format '{it}'; choose from: {', '.join(FORMATS)} (comma-separated)")
    if not out:
        raise EdgefoldError(f"no format given; choose from: {', '.join(FORMATS)}")
    return [f for f in FORMATS if f in out]


def export_all(model: nn.Module, input_shape: tuple[int, ...], out_dir: str | os.PathLike | None = None,
               formats: str | list[str] | tuple[str, ...] = FORMATS,
               calib: torch.Tensor | str | os.PathLike | None = None,
               target_backend: str = "tflm", check: bool = True, label: str = "model", onnx_opset: int | None = None,
               on_stage: Callable[[str], None] | None = None, eval_x: torch.Tensor | None = None,
               eval_y: torch.Tensor | None = None, onnx_reduce_range: bool = False) -> ExportReport:
    """Export `model` (float, NCHW input of `input_shape`) to `formats`, check, and write into `out_dir`.

    eval_x / eval_y: the inputs (and labels, for accuracy) the fidelity check runs on; default: the digits test split.

    calib: a float N x C x H x W tensor, a .npz path, or None for the built-in digits sample.
    target_backend: "tflm" or "edgefold" (op coverage gate for the .tflite).
    With out_dir=None nothing is written (the report still describes every artifact).
    onnx_opset: pin the ONNX opset (older runtimes, e.g. 13 for JetPack 4.6); default: the exporter's.
    onnx_reduce_range: ONNX int8 weights in -64..64, for x86 hosts without VNNI (see export_onnx_int8).
    """
    from edgefold.compiler.check.coverage import BACKENDS
    from edgefold.compiler.export.calib import calibration
    from edgefold.compiler.export.tflite import check_calibration

    fmts = parse_formats(formats)
    if target_backend not in BACKENDS:
        raise EdgefoldError(f"unknown target backend '{target_backend}'; choose one of: {', '.join(BACKENDS)}")
    shape = tuple(int(v) for v in input_shape)
    example = torch.zeros((1, *shape[1:]), dtype=torch.float32)
    calib_t = calib if isinstance(calib, torch.Tensor) else calibration(calib, shape)
    calib_t = check_calibration(calib_t, example)
    created = out_dir is not None and not Path(out_dir).exists()
    try:
        return _export(model, shape, out_dir, fmts, calib_t, target_backend, check, label, on_stage, onnx_opset,
                       eval_x, eval_y, onnx_reduce_range)
    except BaseException:
        if created:  # a folder this call made, left empty by the failure: remove it too
            with contextlib.suppress(OSError):
                Path(out_dir).rmdir()
        raise


def _export(model: nn.Module, shape: tuple[int, ...], out_dir: str | os.PathLike | None, fmts: list[str],
            calib_t: torch.Tensor, target_backend: str, check: bool, label: str,
            on_stage: Callable[[str], None] | None, onnx_opset: int | None = None,
            eval_x: torch.Tensor | None = None, eval_y: torch.Tensor | None = None,
            onnx_reduce_range: bool = False) -> ExportReport:
    from edgefold.compiler.check.coverage import check_coverage
    from edgefold.compiler.tflite_model import read_tflite

    if out_dir is not None:
        from edgefold.core.fsutil import ensure_dir

        ensure_dir(out_dir)  # fail on an unwritable folder before minutes of work
    model = model.eval()
    example = calib_t[:1].contiguous()
    report = ExportReport(label, list(shape), fmts, target_backend)
    blobs: dict[str, bytes] = {}

    def stage(name: str):
        if on_stage is not None:
            on_stage(name)
        return time.perf_counter()

    if "onnx" in fmts or "onnx-int8" in fmts:
        from edgefold.compiler.export.onnx import export_onnx

        t0 = stage("ONNX export")
        blobs["onnx"] = export_onnx(model, example, opset=onnx_opset)
        report.seconds["onnx"] = time.perf_counter() - t0
    if "onnx-int8" in fmts:
        from edgefold.compiler.export.onnx_int8 import export_onnx_int8

        t0 = stage("ONNX int8 quantisation")
        blobs["onnx-int8"] = export_onnx_int8(blobs["onnx"], calib_t, reduce_range=onnx_reduce_range)
        report.seconds["onnx-int8"] = time.perf_counter() - t0
    if "tflite-int8" in fmts:
        from edgefold.compiler.export.tflite import export_tflite_int8

        t0 = stage("TFLite int8 conversion")
        blobs["tflite-int8"] = export_tflite_int8(model, example, calib_t)
        report.seconds["tflite-int8"] = time.perf_counter() - t0
        t0 = stage(f"op coverage ({target_backend})")
        info = read_tflite(blobs["tflite-int8"])
        report.coverage = check_coverage(info, target_backend)
        report.ops = info.op_versions()
        report.tflite_io = info.io()
        report.flags = list(report.coverage.flags)
        report.seconds["coverage"] = time.perf_counter() - t0
    files = {FILES[f]: (f, blobs[f]) for f in fmts}
    if "tflite-int8" in fmts:
        from edgefold.compiler.export.carray import HEADER, SOURCE, tflite_to_c

        h, c = tflite_to_c(blobs["tflite-int8"])
        files[HEADER] = ("c-array", h.encode())
        files[SOURCE] = ("c-array", c.encode())
    if check:
        from edgefold.compiler.check.fidelity import check_fidelity, onnx_saturation_note

        t0 = stage("fidelity check")
        report.fidelity = check_fidelity(model, shape, {f: blobs[f] for f in fmts}, x=eval_x, labels=eval_y,
                                         on_format=lambda f: stage(f"fidelity: {f}"))
        note = onnx_saturation_note(report.fidelity)
        if note:
            report.flags.append(note)
        report.seconds["fidelity"] = time.perf_counter() - t0
        if "tflite-int8" in fmts:
            from edgefold.compiler.check.tflm import tflm_arena_bytes

            t0 = stage("TFLM arena")
            report.tflm_arena_bytes = tflm_arena_bytes(blobs["tflite-int8"])
            report.seconds["tflm_arena"] = time.perf_counter() - t0
    report.artifacts = {name: kind for name, (kind, _) in files.items()}
    report.sizes = {name: len(data) for name, (_, data) in files.items()}
    if out_dir is not None:
        _write(Path(out_dir), files, report)
    return report


def _write(out_dir: Path, files: dict[str, tuple[str, bytes]], report: ExportReport) -> None:
    """All files appear together (staged, then renamed) or none do."""
    from edgefold.core.fsutil import staged_dir

    report.artifacts[CHECK_FILE] = "check"
    try:
        with staged_dir(out_dir) as stage:
            for name, (_, data) in files.items():
                (stage / name).write_bytes(data)
            (stage / CHECK_FILE).write_text(report.summary().to_json())
    except OSError as e:
        raise EdgefoldError(f"cannot write to {out_dir}: {e.strerror or e}") from None
    report.out_dir = out_dir
