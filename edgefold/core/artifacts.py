"""The records one stage hands to the next, each a versioned JSON file:

    CompressSummary   compress/compress.json            edgefold-compress/1
    ExportSummary     build-input/check.json            edgefold-export/1
    CodegenManifest   build-input/codegen/model.json    edgefold-codegen/1   (what model.c / model.h promise)
    BuildInput        build-input/build_input.json      edgefold-build-input/1
    DeployResult      result.json                       edgefold-result/1
    FirmwareBuild     firmware.json                     edgefold-firmware/1  (`edgefold build`: no flash)

Every record has `to_dict`/`to_json`/`write` and `from_dict`/`from_json`/`read`; reading checks the schema name and
version and the type of every field, so a truncated, foreign or newer file is one line of EdgefoldError instead of a
KeyError three stages later. Keys a reader does not know are kept in `extra` and written back unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union

from edgefold.core.errors import EdgefoldError
from edgefold.core.fsutil import write_text

A = TypeVar("A", bound="Artifact")

_NOT_JSON = {"json": False}  # field metadata: held in memory only, not part of the file


class Artifact:
    """Base of the hand-off records (each subclass is a dataclass with an `extra` field last)."""

    SCHEMA: ClassVar[str] = ""
    FILE: ClassVar[str] = ""
    # A file written before the schema field existed has no "schema": it is read as version 1 when it has these keys.
    LEGACY_KEYS: ClassVar[tuple[str, ...]] = ()

    extra: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: plain(v) for k, v in self.extra.items()}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name != "extra" and f.metadata.get("json", True):
                d[f.name] = plain(getattr(self, f.name))
        d["schema"] = self.SCHEMA
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (a reader never sees half a file)."""
        return write_text(path, self.to_json())

    @classmethod
    def from_dict(cls: type[A], doc: Any, source: str = "") -> A:
        where = f"{source}: " if source else ""
        if not isinstance(doc, dict):
            raise EdgefoldError(f"{where}not an {cls.SCHEMA} file (not a JSON object)")
        schema = doc.get("schema")
        legacy = schema is None and bool(cls.LEGACY_KEYS) and all(k in doc for k in cls.LEGACY_KEYS)
        if schema != cls.SCHEMA and not legacy:
            kind, _, version = cls.SCHEMA.rpartition("/")
            if isinstance(schema, str) and schema.startswith(kind + "/"):
                raise EdgefoldError(f"{where}{schema} is not a version this edgefold reads ({cls.SCHEMA}): "
                                    "written by a different edgefold version?")
            raise EdgefoldError(f"{where}not an {cls.SCHEMA} file (schema {schema!r})")
        return _build(cls, doc, where)

    @classmethod
    def from_json(cls: type[A], text: str | bytes, source: str = "") -> A:
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            where = f"{source}: " if source else ""
            raise EdgefoldError(f"{where}not valid JSON ({' '.join(str(e).split())[:120]})") from None
        return cls.from_dict(doc, source)

    @classmethod
    def read(cls: type[A], path: str | os.PathLike[str]) -> A:
        p = Path(path)
        try:
            text = p.read_bytes()
        except FileNotFoundError:
            raise EdgefoldError(f"{p} not found") from None
        except OSError as e:
            raise EdgefoldError(f"cannot read {p}: {e.strerror or e}") from None
        return cls.from_json(text, str(p))


# --------------------------------------------------------------------------------------------------- records


@dataclass
class CompressSummary(Artifact):
    """What `edgefold compress` and the deploy's compress stage did (compress.json)."""

    SCHEMA: ClassVar[str] = "edgefold-compress/1"
    FILE: ClassVar[str] = "compress.json"
    LEGACY_KEYS: ClassVar[tuple[str, ...]] = ("method", "ratio", "params_after")

    method: str
    ratio: float
    repair: str
    params_before: int
    params_after: int
    macs_before: int  # torch-side count of the float model (torch-pruning), before export
    macs_after: int
    seconds: float
    seed: int = 0
    param_ratio: float = 1.0
    mac_ratio: float = 1.0
    timings: dict[str, float] = field(default_factory=dict)
    accuracy_before: float | None = None  # % on the digits test split; None when digits are not this model's data
    accuracy_after: float | None = None
    accuracy_data: str | None = None
    calibration: str | None = None  # the data REPAIR re-estimated BatchNorm statistics on
    model: dict[str, Any] = field(default_factory=dict)  # the model spec (name or factory, input shape, ...)
    label: str = ""  # the model's display name
    weights: str | None = None
    groups: list[dict[str, Any]] = field(default_factory=list)  # per coupled group: name, kind, n -> k, errors
    skipped_groups: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def brief(self) -> dict[str, Any]:
        """The summary without per-group detail, the model named by its label: what result.json and the saved
        model's metadata carry."""
        d = self.to_dict()
        for k in ("groups", "files", "schema"):
            d.pop(k, None)
        d["model"] = self.label
        return d


@dataclass
class ExportSummary(Artifact):
    """What the export stage produced and checked (check.json)."""

    SCHEMA: ClassVar[str] = "edgefold-export/1"
    FILE: ClassVar[str] = "check.json"
    LEGACY_KEYS: ClassVar[tuple[str, ...]] = ("formats", "target_backend")

    model: str
    input_shape: list[int]
    formats: dict[str, dict[str, Any]]  # format -> file, bytes, agreement / accuracy / max_abs_error
    target_backend: str
    fidelity: dict[str, dict[str, Any]] = field(default_factory=dict)  # format -> runtime, accuracy, agreement, ...
    tflm_arena_bytes: int | None = None  # host TFLM interpreter (64-bit estimate)
    tflm_arena_note: str | None = None
    ops: dict[str, int] = field(default_factory=dict)  # .tflite builtin op -> highest version used
    tflite_io: dict[str, dict[str, Any]] = field(default_factory=dict)  # input/output: name, dtype, shape, scale, zp
    coverage: dict[str, Any] | None = None  # op coverage for target_backend
    flags: list[str] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)  # file name -> bytes
    seconds: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def accuracy(self) -> dict[str, float | None]:
        """float / int8 (on the TFLM host when measured there) / agreement / ONNX accuracy, % on digits."""
        fid = self.fidelity
        q = fid.get("tflite-int8-tflm") or fid.get("tflite-int8") or {}
        return {"float": fid.get("torch", {}).get("accuracy"), "int8": q.get("accuracy"),
                "agreement": q.get("agreement"), "onnx": fid.get("onnx", {}).get("accuracy")}


@dataclass
class TensorIO:
    """One model input or output as the firmware sees it."""

    shape: list[int]
    dtype: str  # int8, float32, ...
    bytes: int
    scale: float = 0.0
    zero_point: int = 0


@dataclass
class CodegenManifest(Artifact):
    """What a generated model.c / model.h promise (model.json next to them): the figures the targets used to
    parse back out of model.h."""

    SCHEMA: ClassVar[str] = "edgefold-codegen/1"
    FILE: ClassVar[str] = "model.json"

    model_id: str  # first 16 hex digits of the .tflite's sha256: the device reports it back
    arena_bytes: int  # static tensor arena
    weights_bytes: int  # constant data in Flash
    macs: int
    input: TensorIO
    output: TensorIO
    backend: str = "edgefold"  # edgefold (generated C) or tflm (interpreter + model array)
    ops: list[str] = field(default_factory=list)  # one per operator, in execution order
    symbols: dict[str, str] = field(default_factory=dict)  # role -> C symbol, e.g. run -> ef_model_run
    files: list[str] = field(default_factory=list)  # the generated sources, relative to model.json
    # one per kernel call of model.c, in order: kernel, op, op_index (TFLite), layer, macs (edgefold backend; what a
    # --profile build's per-step figures are joined with)
    steps: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_bytes(self) -> int:
        return self.input.bytes

    @property
    def output_bytes(self) -> int:
        return self.output.bytes


# File roles in a build-input folder and where each lives (relative to the folder).
BUILD_FILES: dict[str, str] = {
    "tflite": "model_int8.tflite", "onnx": "model.onnx", "onnx_int8": "model_int8.onnx",
    "c_array_source": "model_int8_tflite.c", "c_array_header": "model_int8_tflite.h", "check": ExportSummary.FILE,
    "codegen": f"codegen/{CodegenManifest.FILE}", "input": "input.bin", "input_npy": "input.npy",
    "expected_output": "expected_output.bin",
}


@dataclass
class BuildInput(Artifact):
    """The build-input folder a target builds from (see edgefold.targets.base): which files it holds, what model
    and compression ratio they come from, and, in memory, the export summary and codegen manifest it holds."""

    SCHEMA: ClassVar[str] = "edgefold-build-input/1"
    FILE: ClassVar[str] = "build_input.json"

    files: dict[str, str]  # role (see BUILD_FILES) -> path relative to the folder, for the files present
    model: str = ""
    kind: str = ""  # mcu | linux: what it was exported for
    backend: str = ""
    ratio: float = 0.0  # the compression ratio the model was made with
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, metadata=_NOT_JSON)
    export: ExportSummary | None = field(default=None, metadata=_NOT_JSON)
    codegen: CodegenManifest | None = field(default=None, metadata=_NOT_JSON)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> BuildInput:
        """The folder as it is on disk: build_input.json when present, else what its files say (folders made by
        hand or by `edgefold export`). check.json and codegen/model.json are read and validated."""
        p = Path(path)
        if not p.is_dir():
            raise EdgefoldError(f"build input {p} is not a folder (run `edgefold export` first)")
        bi = cls.read(p / cls.FILE) if (p / cls.FILE).is_file() else cls(files={})
        bi.path = p
        for role, rel in BUILD_FILES.items():
            if (p / rel).is_file():
                bi.files.setdefault(role, rel)
            elif bi.files.get(role) == rel:
                del bi.files[role]
        if "tflite" not in bi.files:  # a folder made by hand may name its model differently
            cands = [q.name for q in sorted(p.glob("*.tflite"))]
            if cands:
                bi.files["tflite"] = "model.tflite" if "model.tflite" in cands else cands[0]
        if "check" in bi.files:
            bi.export = ExportSummary.read(p / bi.files["check"])
        if "codegen" in bi.files:
            bi.codegen = CodegenManifest.read(p / bi.files["codegen"])
        if not bi.model and bi.export is not None:
            bi.model = bi.export.model
        return bi

    def file(self, role: str) -> Path | None:
        """Absolute path of the file with this role, None when the folder has none."""
        rel = self.files.get(role)
        return None if rel is None or self.path is None else self.path / rel

    def need(self, role: str, hint: str) -> Path:
        """Like `file`, but a missing file is a one-line error ending in `hint` (what produces it)."""
        f = self.file(role)
        if f is None:
            raise EdgefoldError(f"{self.path}: no {BUILD_FILES.get(role, role)} ({hint})")
        return f


@dataclass
class DeployResult(Artifact):
    """One deployment's measurement (result.json): what `edgefold deploy` / `bench` write and `edgefold report` and
    `edgefold hil` read. latency: value, unit, kind (measured | estimated), runs, per_run (or
    per_run_instructions); ram: static, arena, stack, total (bytes); accuracy: float, int8, agreement, onnx (%)."""

    SCHEMA: ClassVar[str] = "edgefold-result/1"
    FILE: ClassVar[str] = "result.json"

    target: str
    latency: dict[str, Any]
    device: str = ""
    emulated: bool = False
    backend: str | None = None
    model: str | None = None
    method: str | None = None
    ratio: float | None = None
    repair: str | None = None
    instructions: float | None = None  # per inference, QEMU twins (counted, not timed)
    ram: dict[str, Any] = field(default_factory=dict)
    flash: int | None = None
    output_crc_match: bool | None = None
    accuracy: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    macs: int | None = None
    params_before: int | None = None
    macs_before: int | None = None
    compress: dict[str, Any] = field(default_factory=dict)  # CompressSummary.brief()
    estimate: dict[str, Any] | None = None
    bench: dict[str, Any] | None = None  # the device's report, as parsed
    tflm_arena_bytes: int | None = None
    codegen: dict[str, Any] | None = None  # arena_bytes, weights_bytes, macs, model_id of the generated C
    config: dict[str, Any] = field(default_factory=dict)  # the deploy request
    seconds: dict[str, float] | None = None  # per stage
    wall_seconds: float | None = None
    # --profile: one row per kernel call: step, kernel, op, layer, macs, value, unit, share (pipeline.step_profile)
    profile: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def latency_value(self) -> float | None:
        v = self.latency.get("value")
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


@dataclass
class FirmwareBuild(Artifact):
    """What `edgefold build` (and `deploy --no-flash`) made (firmware.json): the board project, the firmware when
    the toolchain is present, and its static sizes from the linker. Paths are relative to the run folder."""

    SCHEMA: ClassVar[str] = "edgefold-firmware/1"
    FILE: ClassVar[str] = "firmware.json"

    target: str
    backend: str
    model: str | None = None
    project: str | None = None  # PlatformIO project folder (boards); None for twins and Linux bundles
    firmware: str | None = None  # firmware.bin / .elf / remote bundle; None when it was not built
    flash: int | None = None  # bytes used (.text + .rodata + .data)
    static_ram: int | None = None  # bytes used (.data + .bss)
    flash_total: int | None = None  # what the board offers, as the build tool reports it
    ram_total: int | None = None
    not_built: str | None = None  # why there is no firmware (e.g. the toolchain is not installed)
    model_id: str | None = None
    arena_bytes: int | None = None
    macs: int | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the request
    wall_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------- (de)coding


def plain(v: Any) -> Any:
    """JSON-ready copy (also safe for a weights_only torch load): nested records become dicts, tuples lists,
    numpy scalars and arrays Python numbers and lists."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        if isinstance(v, Artifact):
            return v.to_dict()
        return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if hasattr(v, "tolist") and callable(v.tolist):  # numpy scalar or array
        return v.tolist()
    return v


def _build(cls: type[A], doc: dict[str, Any], where: str) -> A:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    extra = {k: v for k, v in doc.items() if k != "schema"}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == "extra" or not f.metadata.get("json", True):
            continue
        if f.name not in doc:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise EdgefoldError(f"{where}{cls.SCHEMA} file without '{f.name}' (truncated or hand-edited?)")
            continue
        kwargs[f.name] = _coerce(extra.pop(f.name), hints[f.name], f"{where}{cls.SCHEMA} field '{f.name}'")
    kwargs["extra"] = extra
    return cls(**kwargs)


def _coerce(v: Any, hint: Any, what: str) -> Any:
    """`v` checked against the type hint (JSON types only; nested dataclasses are built from their dicts)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return v
    if origin in (Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(v, inner[0], what) if len(inner) == 1 else v
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(v, dict):
            raise EdgefoldError(f"{what} must be an object, got {_json_type(v)}")
        return _build(hint, v, f"{what}: ") if issubclass(hint, Artifact) else _buildplain(hint, v, what)
    if hint is bool:
        if not isinstance(v, bool):
            raise EdgefoldError(f"{what} must be true or false, got {_json_type(v)}")
        return v
    if hint is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise EdgefoldError(f"{what} must be an integer, got {_json_type(v)}")
        return v
    if hint is float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise EdgefoldError(f"{what} must be a number, got {_json_type(v)}")
        return v
    if hint is str:
        if not isinstance(v, str):
            raise EdgefoldError(f"{what} must be a string, got {_json_type(v)}")
        return v
    if origin is dict or hint is dict:
        if not isinstance(v, dict):
            raise EdgefoldError(f"{what} must be an object, got {_json_type(v)}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _coerce(x, vt, f"{what}[{k!r}]") for k, x in v.items()}
    if origin is list or hint is list:
        if not isinstance(v, list):
            raise EdgefoldError(f"{what} must be a list, got {_json_type(v)}")
        it = args[0] if args else Any
        return [_coerce(x, it, f"{what}[{i}]") for i, x in enumerate(v)]
    return v


def _buildplain(cls: type, doc: dict[str, Any], what: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in doc:
            kwargs[f.name] = _coerce(doc[f.name], hints[f.name], f"{what}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise EdgefoldError(f"{what} has no '{f.name}'")
    return cls(**kwargs)


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(v), type(v).__name__)
