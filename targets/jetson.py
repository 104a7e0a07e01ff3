"""Jetson targets: `jetson-nano` (a real Nano over SSH) and `jetson-local` (its twin: a loopback sshd on this host).

Both run the same code: build = a bundle folder (the ONNX model as one file, a fixed input .npy, the Python 3.6 runner,
a manifest with the host's reference output); flash = copy the bundle over SFTP; run = execute the runner over SSH
under a remote `timeout`, parse its one JSON line. Flash is the stored model bytes on the device; RAM is the
runner's peak RSS, or the tegrastats system RAM rise when tegrastats is there (it sees GPU allocations too).

The twin's latency is measured on *this host's CPU* and says so in every result (extra["device"]).

Configuration for a real Nano: ~/.config/edgefold/targets.toml ($XDG_CONFIG_HOME honoured, $EDGEFOLD_TARGETS_TOML
overrides the path), section [jetson-nano]; options passed to get_target() override the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shlex
import shutil
import socket
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from edgefold.targets.base import BenchResult, BuildResult, DeviceSpec, FitReport, FlashResult, Opt, Target
from edgefold.targets.ssh import SshConfig, SshSession

from edgefold.core.errors import DeviceError, EdgefoldError, ToolchainMissing
from edgefold.core.fsutil import ensure_dir, staged_dir
from edgefold.core.resources import resource_path
from edgefold.core.vocab import LINUX_BACKENDS

RUNNER = resource_path("edgefold.targets", "jetson_runner.py")  # copied to the device, never imported here
RUNNER_PROTOCOL = 1
BUNDLE = "jetson-bundle"
GiB = 1024**3

# JetPack 4.6 (the last for the Nano): onnxruntime 1.11 (Jetson Zoo wheel, cp36) reads opset <= 16 and IR <= 8;
# TensorRT 8.2's ONNX parser is documented for opset <= 13. A model above that fails on the device, so fail here.
NANO_MAX_OPSET = 16
NANO_MAX_IR = 8

JETSON_NANO = DeviceSpec(
    name="jetson-nano", title="NVIDIA Jetson Nano (4 GB, JetPack 4.6)", cpu="4x Cortex-A57 + 128-core Maxwell GPU",
    clock_hz=1_430_000_000, ram_bytes=4 * GiB,
    flash_bytes=16 * 1000**3,  # smallest supported microSD; the model only has to fit next to JetPack
    kind="linux", backends=LINUX_BACKENDS)
JETSON_LOCAL = DeviceSpec(
    name="jetson-local", title=f"Jetson Nano twin: loopback sshd, this host ({platform.machine()}), not Jetson timing",
    cpu=f"this host ({platform.machine()})", clock_hz=0, ram_bytes=JETSON_NANO.ram_bytes,
    flash_bytes=JETSON_NANO.flash_bytes, kind="linux", emulated=True, backends=LINUX_BACKENDS)

# option -> default; None means required (for jetson-nano)
OPTIONS: dict[str, Any] = {
    "host": None, "user": None, "port": 22,
    "key": "~/.ssh/id_ed25519", "known_hosts": "~/.ssh/known_hosts",
    "python": "python3",  # remote interpreter; a string split with shlex (e.g. "/home/me/venv/bin/python")
    "remote_dir": "edgefold",  # relative to the login's home
    "model_file": "model.onnx",  # which file of the build input to deploy
    "trtexec": "auto",  # auto (PATH, then /usr/src/tensorrt/bin/trtexec) | never | path
    "trt_timeout": 600,  # s; TensorRT engine build on a Nano takes minutes for large models
    "perf": "max",  # max: nvpmodel -m 0 + jetson_clocks before timing (if permitted) | leave
    "tegrastats": "auto",  # auto | never
    "providers": "auto",  # auto (CUDA if the wheel has it, else CPU) | cpu | cuda | comma list
    "threads": 0,  # onnxruntime intra-op threads, 0 = its default
    "max_opset": NANO_MAX_OPSET, "max_ir": NANO_MAX_IR,
    "output_rtol": 1e-3,  # device output vs host reference: |d - r| <= rtol * max|r| + 1e-6
    "connect_timeout": 10.0, "connect_retries": 2,
}
# the type and range of each option (values from targets.toml or --option KEY=VALUE are converted and checked)
OPTION_TYPES: dict[str, Opt] = {
    "host": Opt(str), "user": Opt(str), "port": Opt(int, min=1), "key": Opt(str), "known_hosts": Opt(str),
    "python": Opt(object), "remote_dir": Opt(str), "model_file": Opt(str), "trtexec": Opt(str),
    "trt_timeout": Opt(int, above=0), "perf": Opt(str, choices=("max", "leave")),
    "tegrastats": Opt(str, choices=("auto", "never")), "providers": Opt(str), "threads": Opt(int, min=0),
    "max_opset": Opt(int, min=0), "max_ir": Opt(int, min=0), "output_rtol": Opt(float, min=0),
    "connect_timeout": Opt(float, above=0), "connect_retries": Opt(int, min=0),
}
TRTEXEC_DEFAULT = "/usr/src/tensorrt/bin/trtexec"  # where JetPack installs it (jetson_runner.py looks there too)


def config_path() -> Path:
    env = os.environ.get("EDGEFOLD_TARGETS_TOML")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(base).expanduser() / "edgefold" / "targets.toml"


def load_options(section: str, options: dict[str, Any]) -> dict[str, Any]:
    """Defaults < targets.toml [section] < explicit options (None values ignored); unknown keys are an error."""
    merged = dict(OPTIONS)
    path = config_path()
    if path.is_file():
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, ValueError) as e:  # ValueError: TOMLDecodeError, or bytes that are not UTF-8
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise EdgefoldError(f"cannot read {path}: {why}") from None
        file_opts = data.get(section, {})
        if not isinstance(file_opts, dict):
            raise EdgefoldError(f"{path}: [{section}] must be a table")
        _check_keys(file_opts, f"{path} [{section}]")
        merged.update(_typed(file_opts, f"{path} [{section}]"))
    given = {k: v for k, v in options.items() if v is not None}
    _check_keys(given, f"target {section} options")
    merged.update(_typed(given, section))
    return merged


def _typed(d: dict[str, Any], where: str) -> dict[str, Any]:
    return {k: OPTION_TYPES[k].parse(where, k, v) if k in OPTION_TYPES else v for k, v in d.items()}


def _check_keys(d: dict[str, Any], where: str) -> None:
    unknown = sorted(set(d) - set(OPTIONS))
    if unknown:
        raise EdgefoldError(f"{where}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(OPTIONS))})")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _find_model(build_input: Path, model_file: str) -> Path:
    p = Path(build_input)
    if p.is_file() and p.suffix == ".onnx":
        return p
    cand = p / model_file
    if not cand.is_file():
        found = sorted(x.name for x in p.glob("*.onnx")) if p.is_dir() else []
        hint = f" (found: {', '.join(found)}; choose one with model_file=...)" if found else ""
        raise EdgefoldError(f"no {model_file} in {p}: the Jetson targets deploy an ONNX model{hint}")
    return cand


def _onnx_info(model_path: Path) -> tuple[Any, dict[str, Any]]:
    import onnx

    try:
        model = onnx.load(str(model_path), load_external_data=True)
    except Exception as e:  # onnx raises DecodeError/ValidationError/OSError
        raise EdgefoldError(f"{model_path} is not a readable ONNX model: {str(e).splitlines()[0][:200]}") from None
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if not inputs:
        raise EdgefoldError(f"{model_path} has no graph input")
    t = inputs[0].type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in t.shape.dim]
    external = any(i.data_location == onnx.TensorProto.EXTERNAL for i in model.graph.initializer)
    return model, {"opset": opset, "ir_version": model.ir_version, "input_name": inputs[0].name,
                   "input_shape": shape, "input_elem_type": t.elem_type, "external_data": external}


class JetsonNanoTarget(Target):
    """A Jetson Nano reached over SSH (see module docstring for configuration)."""

    spec = JETSON_NANO
    section = "jetson-nano"
    options: ClassVar[dict[str, Opt]] = OPTION_TYPES
    per_step_profile: ClassVar[bool] = False  # onnxruntime / TensorRT: no kernel calls of ours to stamp

    def __init__(self, **options: Any) -> None:
        self.opts = load_options(self.section, options)

    def preflight(self, backend: str, port: str | None = None) -> None:
        """Host and user configured, key and known_hosts files present, the SSH port accepting a TCP connection
        (a few seconds at most); trtexec is looked for on the device when the benchmark runs."""
        b = self._backend(backend)
        if b == "tensorrt" and self.opts["trtexec"] == "never":
            raise EdgefoldError("backend tensorrt needs trtexec (option trtexec is 'never')")
        cfg = self.ssh_config()
        for what, p in (("key", cfg.key), ("known_hosts", cfg.known_hosts)):
            if not p.is_file():
                raise EdgefoldError(f"{self.spec.name}: {what} file {p} not found (option {what})")
        timeout = min(cfg.connect_timeout_s, 5.0)
        try:
            with socket.create_connection((cfg.host, cfg.port), timeout=timeout):
                pass
        except OSError as e:
            raise DeviceError(f"{self.spec.name}: {cfg.host}:{cfg.port} does not accept SSH connections "
                              f"({e.strerror or e})") from None

    def close(self) -> None:
        """Nothing held between verbs (each opens and closes its own SSH session); the twin overrides this."""

    # ---- configuration ----------------------------------------------------------------------------------------
    def ssh_config(self) -> SshConfig:
        o = self.opts
        missing = [k for k in ("host", "user") if not o.get(k)]
        if missing:
            raise EdgefoldError(f"{self.spec.name}: set {' and '.join(missing)} in {config_path()} [{self.section}] "
                                f"or pass them as options")
        try:
            port = int(o["port"])
        except (TypeError, ValueError):
            raise EdgefoldError(f"{self.spec.name}: port must be a number, got {o['port']!r}") from None
        return SshConfig(host=str(o["host"]), user=str(o["user"]), port=port,
                         key=Path(str(o["key"])).expanduser(), known_hosts=Path(str(o["known_hosts"])).expanduser(),
                         connect_timeout_s=float(o["connect_timeout"]), connect_retries=int(o["connect_retries"]))

    def python_argv(self) -> list[str]:
        py = self.opts["python"]
        argv = [str(a) for a in py] if isinstance(py, list | tuple) else shlex.split(str(py))
        if not argv:
            raise EdgefoldError(f"{self.spec.name}: option python is empty")
        return argv

    def device_label(self, cfg: SshConfig) -> str:
        return f"{self.spec.name} ({cfg.where})"

    def _backend(self, backend: str | None) -> str:
        b = (backend or "auto").lower()
        if b == "auto":
            return "onnxruntime"
        if b not in self.spec.backends:
            raise EdgefoldError(f"{self.spec.name} runs backends {', '.join(self.spec.backends)}, not {backend!r}")
        return b

    # ---- verbs --------------------------------------------------------------------------------------------------
    def fit_check(self, build_input: Path, backend: str) -> FitReport:
        self._backend(backend)
        model = _find_model(Path(build_input), self.opts["model_file"])
        size = model.stat().st_size
        data = model.with_name(model.name + ".data")
        size += data.stat().st_size if data.exists() else 0
        # Estimate, not a measurement: ONNX Runtime holds the weights about twice while it builds the session.
        ram_needed = 2 * size
        fits = ram_needed <= self.spec.ram_bytes and size <= self.spec.flash_bytes
        msg = (f"{'fits' if fits else 'does not fit'}: needs {size / 1024:.0f} KB storage, ~{ram_needed / 1024:.0f} KB "
               f"RAM (estimate: 2x model bytes); {self.spec.name} has {self.spec.ram_bytes // GiB} GB shared CPU/GPU "
               f"memory")
        return FitReport(fits=fits, flash_needed=size, ram_needed=ram_needed, flash_available=self.spec.flash_bytes,
                         ram_available=self.spec.ram_bytes, message=msg)

    def build(self, build_input: Path, out_dir: Path, backend: str, runs: int, warmup: int,
              profile: bool = False) -> BuildResult:
        import onnx
        import onnxruntime as ort

        if profile:
            raise EdgefoldError(f"{self.spec.name}: --profile times the kernel calls of the MCU runtime; onnxruntime "
                                "and TensorRT runs have none (profile on an MCU target or twin)")
        backend = self._backend(backend)
        if runs < 1 or warmup < 0:
            raise EdgefoldError(f"runs must be >= 1 and warmup >= 0 (got runs={runs}, warmup={warmup})")
        if backend == "tensorrt" and self.opts["trtexec"] == "never":
            raise EdgefoldError("backend tensorrt needs trtexec (option trtexec is 'never')")
        src = _find_model(Path(build_input), self.opts["model_file"])
        model, info = _onnx_info(src)
        max_opset, max_ir = self.opts.get("max_opset"), self.opts.get("max_ir")
        if (max_opset and info["opset"] > int(max_opset)) or (max_ir and info["ir_version"] > int(max_ir)):
            raise EdgefoldError(
                f"{src.name} is opset {info['opset']} / IR {info['ir_version']}; JetPack 4.6's onnxruntime reads "
                f"opset <= {max_opset} / IR <= {max_ir} (TensorRT 8.2: opset <= 13): export with "
                f"torch.onnx.export(..., dynamo=False, opset_version=13), or raise max_opset/max_ir for newer software")
        inp_file = Path(build_input) / "input.npy" if Path(build_input).is_dir() else None
        if inp_file is not None and inp_file.is_file():
            x = np.load(inp_file, allow_pickle=False)
            input_source = str(inp_file)
        else:
            # A fixed, reproducible input: the output CRC proves the device computed what the host computed.
            dtype = onnx.helper.tensor_dtype_to_np_dtype(info["input_elem_type"])
            x = np.random.default_rng(0).standard_normal(info["input_shape"]).astype(dtype)
            input_source = "generated: numpy default_rng(0) standard normal"
        x = np.ascontiguousarray(x)
        try:
            sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            ref = np.ascontiguousarray(sess.run(None, {info["input_name"]: x})[0])
        except Exception as e:  # onnxruntime's own exception types
            raise EdgefoldError(f"host onnxruntime cannot run {src.name}: {str(e).splitlines()[0][:200]}") from None
        ref_raw = ref.astype(ref.dtype.newbyteorder("<"), copy=False).tobytes()

        out_dir = ensure_dir(out_dir)
        dest = out_dir / BUNDLE
        with staged_dir(dest) as stage:
            if info["external_data"]:
                onnx.save(model, str(stage / "model.onnx"))  # one self-contained file for the device
            else:
                shutil.copyfile(src, stage / "model.onnx")
            with open(stage / "input.npy", "wb") as f:
                np.lib.format.write_array(f, x, version=(1, 0), allow_pickle=False)  # readable by numpy on py3.6
            np.save(stage / "reference.npy", ref, allow_pickle=False)
            shutil.copyfile(RUNNER, stage / "jetson_runner.py")
            files = {n: _sha256(stage / n) for n in ("model.onnx", "input.npy", "jetson_runner.py")}
            manifest = {
                "target": self.spec.name, "backend": backend, "runs": runs, "warmup": warmup,
                "model_source": str(src), "model_sha256": files["model.onnx"],
                "model_bytes": (stage / "model.onnx").stat().st_size, "opset": info["opset"],
                "ir_version": info["ir_version"], "input_source": input_source, "input_shape": list(x.shape),
                "reference_crc32": zlib.crc32(ref_raw) & 0xFFFFFFFF, "reference_shape": list(ref.shape),
                "reference_dtype": str(ref.dtype), "host_onnxruntime": ort.__version__, "files": files,
                "bundle_id": hashlib.sha256("".join(files[k] for k in sorted(files)).encode()).hexdigest()[:12],
            }
            (stage / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return BuildResult(artifact=dest, static_ram=None, flash=manifest["model_bytes"], extra=manifest)

    def remote_bundle_dir(self, manifest: dict[str, Any]) -> str:
        return f"{str(self.opts['remote_dir']).rstrip('/')}/bundle-{manifest['bundle_id']}"

    def flash(self, build: BuildResult, port: str | None = None) -> FlashResult:
        manifest = _read_manifest(build)
        cfg = self.ssh_config()
        rdir = self.remote_bundle_dir(manifest)
        lines = []
        with SshSession(cfg) as s:
            s.makedirs(rdir)
            for name in ("jetson_runner.py", "input.npy", "model.onnx"):
                local = Path(build.artifact) / name
                got = s.put(local, f"{rdir}/{name}")
                if got != local.stat().st_size:
                    raise DeviceError(f"{name} on {cfg.where} has {got} bytes, expected {local.stat().st_size}")
                lines.append(f"{name}: {got} bytes -> {cfg.where}:{rdir}/{name}")
        return FlashResult(port=cfg.where, log="\n".join(lines))

    def run_benchmark(self, build: BuildResult, flashed: FlashResult, timeout_s: float) -> BenchResult:
        manifest = _read_manifest(build)
        cfg = self.ssh_config()
        rdir = self.remote_bundle_dir(manifest)
        o = self.opts
        limit = max(1, math.ceil(timeout_s))
        trtexec = str(o["trtexec"])
        runner_argv = [
            "timeout", "-k", "5", str(limit),  # the remote side ends the runner even if this host goes away
            *self.python_argv(), f"{rdir}/jetson_runner.py", "--model", f"{rdir}/model.onnx",
            "--input", f"{rdir}/input.npy", "--warmup", str(manifest["warmup"]), "--runs", str(manifest["runs"]),
            "--threads", str(int(o["threads"])), "--providers", str(o["providers"]), "--trtexec", trtexec,
            "--trt-timeout", str(min(int(o["trt_timeout"]), limit)), "--tegrastats", str(o["tegrastats"]),
            "--perf", str(o["perf"]),
        ]
        with SshSession(cfg) as s:
            stored = s.size(f"{rdir}/model.onnx")
            if stored is None or s.size(f"{rdir}/jetson_runner.py") is None:
                raise DeviceError(f"bundle {manifest['bundle_id']} is not on {cfg.where} ({rdir}): flash it first")
            res = s.run(runner_argv, timeout_s=limit + 15)
        report = _parse_runner_output(res.stdout)
        if report is None:
            raise DeviceError(_no_result_message(res.rc, res.stderr, self.python_argv(), cfg.where, limit))
        if report.get("edgefold_runner") != RUNNER_PROTOCOL:
            raise DeviceError(f"runner protocol {report.get('edgefold_runner')} on {cfg.where}, "
                              f"this host speaks {RUNNER_PROTOCOL}: rebuild and flash again")
        if not report.get("ok"):
            raise DeviceError(f"runner on {cfg.where} failed: {report.get('error', 'no reason given')}")
        return self._bench_result(manifest, report, stored, cfg, Path(build.artifact))

    # ---- result -------------------------------------------------------------------------------------------------
    def _bench_result(self, manifest: dict[str, Any], rep: dict[str, Any], stored: int, cfg: SshConfig,
                      artifact: Path) -> BenchResult:
        where = cfg.where
        if rep.get("model_sha256") != manifest["model_sha256"]:
            raise DeviceError(f"model on {where} differs from the build (sha256 mismatch): flash again")
        lat = [float(v) for v in rep.get("latency_ms", [])]
        if len(lat) != manifest["runs"] or not all(math.isfinite(v) and v > 0 for v in lat):
            raise DeviceError(f"runner on {where} reported {len(lat)} latencies for {manifest['runs']} runs, "
                              f"or non-positive/non-finite values")
        out = rep.get("output") or {}
        ref = np.load(artifact / "reference.npy", allow_pickle=False)
        values = np.asarray(out.get("values", []), dtype=ref.dtype)
        crc_match = int(out.get("crc32", -1)) == manifest["reference_crc32"]
        if list(out.get("shape", [])) != manifest["reference_shape"]:
            raise DeviceError(f"output shape {out.get('shape')} on {where}, host has {manifest['reference_shape']}")
        n = values.size
        diff = float(np.max(np.abs(values.astype(np.float64) - ref.ravel()[:n].astype(np.float64)))) if n else 0.0
        tol = float(self.opts["output_rtol"]) * float(np.max(np.abs(ref))) + 1e-6 if ref.size else 0.0
        if not crc_match and not diff <= tol:
            raise DeviceError(f"output on {where} differs from the host reference: max |diff| {diff:.3g} > {tol:.3g} "
                              f"(CRC {out.get('crc32')} vs {manifest['reference_crc32']})")
        backend = manifest["backend"]
        trt = rep.get("trt")
        per_run, per_run_source = lat, "onnxruntime (" + ",".join(rep.get("providers", [])) + ")"
        if backend == "tensorrt":
            if not trt or not trt.get("ok"):
                why = (trt or {}).get("error", "trtexec not found on the device (JetPack: /usr/src/tensorrt/bin)")
                raise DeviceError(f"TensorRT timing on {where} failed: {why}")
            per_run, per_run_source = [float(v) for v in trt["latency_ms"]], "trtexec --fp16 (latencyMs per run)"
        mem = rep.get("memory") or {}
        # VmHWM belongs to the runner's own image; ru_maxrss can carry the peak of the process that exec'd it.
        if mem.get("vm_hwm_bytes"):
            rss, rss_source = int(mem["vm_hwm_bytes"]), "runner process peak RSS (/proc VmHWM)"
        else:
            rss, rss_source = int(mem.get("peak_rss_bytes") or 0), "runner process peak RSS (getrusage ru_maxrss)"
        tegra = mem.get("tegrastats")
        if tegra and tegra.get("ram_used_mb_baseline") is not None:
            ram = max(0, int(tegra["ram_used_mb_max"] - tegra["ram_used_mb_baseline"])) * 1024 * 1024
            ram_source = "tegrastats: system RAM used during runs minus before model load (includes GPU buffers)"
        else:
            ram, ram_source = rss, rss_source
        output = values.astype(values.dtype.newbyteorder("<")).tobytes() if not out.get("values_truncated") else None
        extra = {
            "device": self.device_label(cfg), "per_run_source": per_run_source, "python": rep.get("python"),
            "machine": rep.get("machine"), "onnxruntime": rep.get("onnxruntime"), "providers": rep.get("providers"),
            "flash_bytes": stored, "ram_bytes": ram, "ram_source": ram_source, "peak_rss_bytes": rss, "memory": mem,
            "onnxruntime_latency_ms": lat, "trt": trt, "perf": rep.get("perf"),
            "output_match": True,  # bit-exact or within output_rtol; anything else raised above
            "output_crc_match": crc_match, "output_max_abs_diff": diff, "reference_crc32": manifest["reference_crc32"],
            "opset": manifest["opset"],
        }
        return BenchResult(model_id=manifest["model_sha256"][:16], backend=backend, warmup=int(rep["warmup"]),
                           runs=len(per_run), per_run=per_run, unit="ms", kind="measured", arena_bytes=None,
                           output_crc=int(out["crc32"]) if "crc32" in out else None, output=output, extra=extra)


def _read_manifest(build: BuildResult) -> dict[str, Any]:
    path = Path(build.artifact) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise EdgefoldError(f"{path} is missing or unreadable ({e}): build the jetson bundle first") from None


def _parse_runner_output(stdout: str) -> dict[str, Any] | None:
    """The runner's one JSON line: the last stdout line that is a JSON object with an edgefold_runner key."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "edgefold_runner" in obj:
            return obj
    return None


def _no_result_message(rc: int, stderr: str, python: list[str], where: str, limit: int) -> str:
    tail = (stderr.strip().splitlines() or ["no output"])[-1][:200]
    if rc in (124, 137):  # coreutils timeout: TERM sent (124), or KILL after the grace period (137)
        return f"runner on {where} did not finish within {limit} s and was stopped"
    if rc == 127:
        return f"remote command not found on {where} (python {shlex.join(python)!r} or timeout): {tail}"
    if rc > 128:
        return f"runner on {where} crashed (killed by signal {rc - 128}) without a result: {tail}"
    return f"runner on {where} exited {rc} without a result: {tail}"


class JetsonLocalTarget(JetsonNanoTarget):
    """The twin: the jetson-nano code against a real sshd on 127.0.0.1 (targets/sshd_twin.py).

    Pass twin=<started SshdTwin> (the test fixture does), or let the target start its own on first use; that one is
    stopped by close(), by the end of a `with` block, or when the target is garbage-collected (also at interpreter
    exit: the twin's finalizer). Opset limits are the Nano's, so the twin refuses what the Nano would.
    """

    spec = JETSON_LOCAL
    section = "jetson-local"
    options: ClassVar[dict[str, Opt]] = {**OPTION_TYPES, "twin": Opt(object)}

    def __init__(self, twin: Any = None, **options: Any) -> None:
        options.setdefault("perf", "leave")  # no nvpmodel/jetson_clocks on a workstation
        super().__init__(**options)
        self._twin = twin
        self._own_twin = False

    def preflight(self, backend: str, port: str | None = None) -> None:
        """sshd installed (the twin starts it on first use), and for tensorrt trtexec on this host, where the
        twin's runner runs."""
        from edgefold.targets.sshd_twin import SSHD

        b = self._backend(backend)
        if self._twin is None and not os.path.exists(SSHD):
            raise ToolchainMissing(f"{SSHD} not found: install Debian package 'openssh-server' (jetson-local twin)")
        if b == "tensorrt":
            opt = str(self.opts["trtexec"])
            if opt == "never":
                raise EdgefoldError("backend tensorrt needs trtexec (option trtexec is 'never')")
            found = (shutil.which("trtexec") or (TRTEXEC_DEFAULT if os.path.exists(TRTEXEC_DEFAULT) else None)
                     if opt == "auto" else opt if os.path.isfile(opt) else None)
            if found is None:
                raise ToolchainMissing("backend tensorrt on jetson-local runs trtexec on this host, and it is not "
                                       f"installed ({'PATH, ' + TRTEXEC_DEFAULT if opt == 'auto' else opt}): install "
                                       "TensorRT, or use --backend onnxruntime")

    def twin(self) -> Any:
        if self._twin is None:
            from edgefold.targets.sshd_twin import SshdTwin

            # start() cleans up after itself when it fails; the twin's finalizer stops it when this target goes
            # away (garbage-collected, or at interpreter exit)
            self._twin = SshdTwin().start()
            self._own_twin = True
        return self._twin

    def close(self) -> None:
        if self._own_twin and self._twin is not None:
            self._twin.stop()
            self._twin = None
            self._own_twin = False

    def __enter__(self) -> JetsonLocalTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ssh_config(self) -> SshConfig:
        tw = self.twin()
        return SshConfig(host=tw.host, user=tw.user, port=tw.port, key=Path(tw.client_key),
                         known_hosts=Path(tw.known_hosts), connect_timeout_s=float(self.opts["connect_timeout"]),
                         connect_retries=int(self.opts["connect_retries"]))

    def python_argv(self) -> list[str]:
        return list(self.twin().remote_python)

    def remote_bundle_dir(self, manifest: dict[str, Any]) -> str:
        return f"{self.twin().remote_dir}/bundle-{manifest['bundle_id']}"

    def device_label(self, cfg: SshConfig) -> str:
        return f"jetson-local (this host, {platform.machine()}; loopback sshd {cfg.where}) - not Jetson numbers"


TARGETS: dict[str, type[Target]] = {"jetson-nano": JetsonNanoTarget, "jetson-local": JetsonLocalTarget}
