"""Jetson deploy over a real loopback sshd (the jetson-local twin), through the exact jetson-nano SSH code.

One sshd for the session; a small DS-CNN exported to ONNX opset 13 (what JetPack 4.6's onnxruntime reads).
"""

from __future__ import annotations

import ast
import functools
import glob
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import time
import tokenize
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edgefold.targets import jetson, jetson_runner
from edgefold.targets.jetson import JetsonLocalTarget, JetsonNanoTarget
from edgefold.targets.ssh import SshConfig, SshSession
from edgefold.targets.sshd_twin import SshdTwin
from onnx import TensorProto, helper

from edgefold.core.errors import DeviceError, EdgefoldError

pytestmark = pytest.mark.skipif(not Path("/usr/sbin/sshd").exists(), reason="needs openssh-server (/usr/sbin/sshd)")
RUNS, WARMUP = 5, 2


def _get_target(name: str, **options):
    """Through the target registry when it can be imported, else this module's TARGETS."""
    try:
        from edgefold.targets.registry import get_target
    except ImportError:
        return jetson.TARGETS[name](**options)
    return get_target(name, **options)


@pytest.fixture(scope="session")
def twin():
    with SshdTwin() as tw:
        yield tw


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory):
    from edgefold.compiler import zoo

    torch.manual_seed(0)
    model = zoo.build("dscnn").eval()
    x = torch.randn(*zoo.input_shape("dscnn")).contiguous()
    d = tmp_path_factory.mktemp("jetson-onnx")
    # TorchScript exporter at opset 13: the dynamo exporter writes opset 18+, which the Nano's onnxruntime can't read.
    torch.onnx.export(model, (x,), str(d / "model.onnx"), dynamo=False, opset_version=13,
                      input_names=["input"], output_names=["logits"])
    return d


@pytest.fixture()
def nano_via_toml(twin, tmp_path, monkeypatch):
    """The *jetson-nano* target, configured by a targets.toml that points at the twin."""
    toml = tmp_path / "targets.toml"
    toml.write_text("\n".join([
        "[jetson-nano]",
        f'host = "{twin.host}"', f"port = {twin.port}", f'user = "{twin.user}"',
        f'key = "{twin.client_key}"', f'known_hosts = "{twin.known_hosts}"',
        f"python = {json.dumps(shlex.join(twin.remote_python))}",
        f'remote_dir = "{twin.remote_dir}"', "threads = 1", "",
    ]))
    monkeypatch.setenv("EDGEFOLD_TARGETS_TOML", str(toml))
    return _get_target("jetson-nano")


@pytest.fixture(scope="session")
def local_built(twin, onnx_dir, tmp_path_factory):
    target = _get_target("jetson-local", twin=twin, threads=1)
    build = target.build(onnx_dir, tmp_path_factory.mktemp("jl-build"), "onnxruntime", RUNS, WARMUP)
    return target, build


def test_deploy_over_loopback_sshd_with_jetson_nano_code(nano_via_toml, onnx_dir, tmp_path):
    target = nano_via_toml
    assert isinstance(target, JetsonNanoTarget) and target.spec.name == "jetson-nano"
    fit = target.fit_check(onnx_dir, "onnxruntime")
    model_bytes = (onnx_dir / "model.onnx").stat().st_size
    assert fit.fits and fit.flash_needed == model_bytes and fit.ram_available == 4 * 1024**3

    build = target.build(onnx_dir, tmp_path, "onnxruntime", RUNS, WARMUP)
    assert build.flash == model_bytes and (build.artifact / "jetson_runner.py").is_file()
    flashed = target.flash(build)
    assert flashed.port and "model.onnx" in flashed.log
    res = target.run_benchmark(build, flashed, timeout_s=120)

    assert res.unit == "ms" and res.kind == "measured" and res.runs == RUNS and res.warmup == WARMUP
    assert len(res.per_run) == RUNS and all(v > 0 for v in res.per_run)
    manifest = json.loads((build.artifact / "manifest.json").read_text())
    assert res.output_crc == manifest["reference_crc32"] and res.extra["output_crc_match"]
    ref = np.load(build.artifact / "reference.npy")
    assert np.array_equal(np.frombuffer(res.output, dtype="<f4"), ref.ravel())
    assert res.extra["flash_bytes"] == model_bytes
    assert res.extra["ram_bytes"] > 10 * 1024 * 1024  # python + numpy + onnxruntime: tens of MB
    assert res.extra["trt"] is None  # no trtexec on this host
    assert res.extra["perf"]["nvpmodel"] == "absent"


def test_twin_results_are_labelled_as_this_host(local_built):
    target, build = local_built
    assert isinstance(target, JetsonLocalTarget) and target.spec.emulated
    flashed = target.flash(build)
    res = target.run_benchmark(build, flashed, timeout_s=120)
    assert "this host" in res.extra["device"] and "not Jetson" in res.extra["device"]
    assert res.extra["output_crc_match"] and len(res.per_run) == RUNS
    # re-measure without a new flash (edgefold bench --from)
    again = target.run_benchmark(build, flashed, timeout_s=120)
    assert again.output_crc == res.output_crc


def test_jetson_local_starts_and_stops_its_own_twin(onnx_dir, tmp_path):
    """Without a fixture (the CLI case) the target starts a loopback sshd itself; close() stops it."""
    target = JetsonLocalTarget(threads=1)
    try:
        build = target.build(onnx_dir, tmp_path, "auto", 2, 1)
        res = target.run_benchmark(build, target.flash(build), timeout_s=120)
        assert res.extra["output_crc_match"] and res.backend == "onnxruntime"
        twin_dir, proc = target.twin().dir, target.twin().proc
        assert proc.poll() is None
    finally:
        target.close()
    assert proc.poll() is not None and not twin_dir.exists()


def test_float_output_tolerance_and_mismatch(twin, onnx_dir, tmp_path):
    """A device that differs from the host in the last bits passes (CRC differs, within output_rtol); one that
    computed something else is an error. The host reference is altered here, the device side is untouched."""
    target = _get_target("jetson-local", twin=twin, threads=1)
    build = target.build(onnx_dir, tmp_path, "onnxruntime", 2, 0)
    flashed = target.flash(build)
    ref_path, man_path = build.artifact / "reference.npy", build.artifact / "manifest.json"
    ref, manifest = np.load(ref_path), json.loads(man_path.read_text())

    def set_reference(r: np.ndarray) -> None:
        np.save(ref_path, r.astype(np.float32))
        manifest["reference_crc32"] = zlib.crc32(r.astype("<f4").tobytes()) & 0xFFFFFFFF
        man_path.write_text(json.dumps(manifest))

    set_reference(ref * (1 + 1e-5))
    res = target.run_benchmark(build, flashed, timeout_s=60)
    assert not res.extra["output_crc_match"] and 0 < res.extra["output_max_abs_diff"] < 1e-4
    set_reference(ref + 0.5)
    with pytest.raises(DeviceError, match="differs from the host reference"):
        target.run_benchmark(build, flashed, timeout_s=60)


def test_tensorrt_backend_without_trtexec_is_a_clear_error(twin, onnx_dir, tmp_path):
    target = _get_target("jetson-local", twin=twin, threads=1)
    build = target.build(onnx_dir, tmp_path, "tensorrt", 1, 0)
    flashed = target.flash(build)
    with pytest.raises(DeviceError, match="TensorRT timing .* failed: trtexec not found"):
        target.run_benchmark(build, flashed, timeout_s=120)


def _known_hosts_with(tmp_path: Path, twin: SshdTwin, key_line: str | None) -> Path:
    p = tmp_path / "known_hosts"
    p.write_text(f"[{twin.host}]:{twin.port} {key_line}\n" if key_line else "")
    return p


def _other_ed25519(tmp_path: Path, name: str) -> tuple[Path, str]:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return path, pub


def test_changed_host_key_is_refused_with_a_fix(twin, tmp_path):
    _, other_pub = _other_ed25519(tmp_path, "impostor")
    kh = _known_hosts_with(tmp_path, twin, other_pub)
    cfg = SshConfig(host=twin.host, port=twin.port, user=twin.user, key=twin.client_key, known_hosts=kh)
    with pytest.raises(DeviceError, match=r"CHANGED.*ssh-keygen -R") as e:
        SshSession(cfg).connect()
    assert "\n" not in str(e.value)


def test_unknown_host_is_refused(twin, tmp_path):
    kh = _known_hosts_with(tmp_path, twin, None)
    cfg = SshConfig(host=twin.host, port=twin.port, user=twin.user, key=twin.client_key, known_hosts=kh)
    with pytest.raises(DeviceError, match=r"is not in .*refusing to connect"):
        SshSession(cfg).connect()
    assert kh.read_text() == ""  # nothing was added behind the user's back


def test_auth_failure_is_one_clear_line(twin, tmp_path):
    wrong_key, _ = _other_ed25519(tmp_path, "not_authorized")
    cfg = SshConfig(host=twin.host, port=twin.port, user=twin.user, key=wrong_key, known_hosts=twin.known_hosts)
    with pytest.raises(DeviceError, match="SSH authentication failed") as e:
        SshSession(cfg).connect()
    assert "\n" not in str(e.value)


def test_unusable_key_files_are_named(twin, tmp_path):
    garbage = tmp_path / "garbage_key"
    garbage.write_text("not a key\n")
    locked = tmp_path / "locked_key"
    locked.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.BestAvailableEncryption(b"pw")))
    for key, msg in ((garbage, "cannot be read"), (locked, "passphrase-protected"), (tmp_path / "absent", "not found")):
        cfg = SshConfig(host=twin.host, port=twin.port, user=twin.user, key=key, known_hosts=twin.known_hosts)
        with pytest.raises(EdgefoldError, match=msg):
            SshSession(cfg).connect()


def test_connection_refused_is_bounded(twin, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    cfg = SshConfig(host="127.0.0.1", port=port, user=twin.user, key=twin.client_key, known_hosts=twin.known_hosts,
                    connect_timeout_s=2, connect_retries=1, retry_delay_s=0.1)
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="cannot connect .* after 2 attempt"):
        SshSession(cfg).connect()
    assert time.monotonic() - t0 < 60  # refused at once, twice: no hang on a closed port


def test_command_argv_is_quoted(twin):
    cfg = SshConfig(host=twin.host, port=twin.port, user=twin.user, key=twin.client_key, known_hosts=twin.known_hosts)
    nasty = "a b; echo INJECTED $(id) `id` 'q' \"dq\""
    with SshSession(cfg) as s:
        r = s.run(["printf", "%s", nasty], timeout_s=20, check=True)
        assert r.stdout == nasty
        with pytest.raises(DeviceError, match="did not finish within 1 s"):
            s.run(["sleep", "4"], timeout_s=1)  # no remote `timeout` here: sleep ends by itself soon after


def _replace_remote(target, build, name: str, data: bytes, tmp_path: Path) -> None:
    manifest = json.loads((build.artifact / "manifest.json").read_text())
    local = tmp_path / name
    local.write_bytes(data)
    with SshSession(target.ssh_config()) as s:
        s.put(local, f"{target.remote_bundle_dir(manifest)}/{name}")


def test_runner_crash_and_hang_are_bounded(local_built, tmp_path):
    target, build = local_built
    flashed = target.flash(build)
    _replace_remote(target, build, "jetson_runner.py", b"import os\nos.abort()\n", tmp_path)
    with pytest.raises(DeviceError, match=r"crashed \(killed by signal 6\)"):
        target.run_benchmark(build, flashed, timeout_s=60)

    _replace_remote(target, build, "jetson_runner.py", b"import time\ntime.sleep(600)\n", tmp_path)
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="did not finish within 2 s"):
        target.run_benchmark(build, flashed, timeout_s=2)
    assert time.monotonic() - t0 < 120  # stopped at its limit, long before the runner's own 600 s

    target.flash(build)  # the real runner again
    _replace_remote(target, build, "model.onnx", b"\x08\x07not an onnx model", tmp_path)
    with pytest.raises(DeviceError, match="runner on .* failed: onnxruntime .* cannot load the model"):
        target.run_benchmark(build, flashed, timeout_s=60)
    target.flash(build)  # restored for the other tests


def test_not_flashed_is_a_clear_error(twin, onnx_dir, tmp_path):
    target = _get_target("jetson-local", twin=twin, threads=1)
    build = target.build(onnx_dir, tmp_path, "onnxruntime", 2, 0)
    manifest = json.loads((build.artifact / "manifest.json").read_text())
    with SshSession(target.ssh_config()) as s:
        s.run(["rm", "-rf", target.remote_bundle_dir(manifest)], timeout_s=20, check=True)
    with pytest.raises(DeviceError, match="flash it first"):
        target.run_benchmark(build, None, timeout_s=30)


def test_new_opset_is_refused_before_deploy(twin, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                          opset_imports=[helper.make_opsetid("", 20)])
    onnx.save(m, str(tmp_path / "model.onnx"))
    target = _get_target("jetson-local", twin=twin)
    with pytest.raises(EdgefoldError, match="opset 20 .*opset_version=13"):
        target.build(tmp_path, tmp_path / "out", "onnxruntime", 1, 0)


def test_unknown_option_and_missing_host(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEFOLD_TARGETS_TOML", str(tmp_path / "absent.toml"))
    with pytest.raises(EdgefoldError, match="unknown option.*hots"):
        JetsonNanoTarget(hots="x")
    with pytest.raises(EdgefoldError, match="set host and user"):
        JetsonNanoTarget().ssh_config()


# ---- the runner: Python 3.6 --------------------------------------------------------------------------------------
# APIs newer than 3.6 that ast.parse(feature_version=(3, 6)) cannot see (it checks syntax, not the library), matched
# against the code's tokens joined by spaces (strings and comments left out).
NEWER_THAN_36 = [r"\bcapture_output =", r"\btext = True", r"\bshlex \. join", r"\bdataclass", r"\bperf_counter_ns",
                 r"\bfromisoformat", r"\basyncio \. run \(", r"\bnullcontext", r"\bmath \. prod", r"\bcached_property",
                 r"\bremoveprefix", r"\bremovesuffix", r"\bannotations\b", r"\bbreakpoint \(",
                 r"\b(dict|list|tuple|set|type) \[", r"\|="]


def _remote_sources() -> list[Path]:
    return [Path(jetson_runner.__file__)]  # everything executed on the device


def _code_tokens(src: str) -> str:
    skip = {tokenize.STRING, tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    return " ".join(t.string for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type not in skip)


@pytest.mark.parametrize("path", _remote_sources(), ids=lambda p: p.name)
def test_remote_code_is_python36(path):
    src = path.read_text()
    ast.parse(src, feature_version=(3, 6))
    code = _code_tokens(src)
    assert "subprocess . run" in code  # the token view really contains the code
    for pat in NEWER_THAN_36:
        assert not re.search(pat, code), f"{path.name} uses {pat!r}, which Python 3.6 lacks"


@functools.cache
def _python36() -> str | None:
    """A working 3.6 interpreter: $EDGEFOLD_PY36 (e.g. a py3.6 venv with numpy + onnxruntime 1.10), else pyenv's.

    pyenv shims answer for versions they don't have, so each candidate is actually run.
    """
    cands = [os.environ.get("EDGEFOLD_PY36"), *sorted(glob.glob("/root/.pyenv/versions/3.6*/bin/python3.6")),
             shutil.which("python3.6")]
    for p in cands:
        if not p:
            continue
        try:
            r = subprocess.run([p, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True,
                               timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0 and r.stdout.strip() == "(3, 6)":
            return p
    return None


@pytest.mark.skipif(_python36() is None, reason="no Python 3.6 interpreter on this machine")
def test_runner_runs_under_real_python36(local_built):
    """The bundle's runner under a real 3.6: a full run where numpy+onnxruntime are installed for it, else the
    one-line 'not importable' answer (which still proves the file runs on 3.6)."""
    _, build = local_built
    b = build.artifact
    r = subprocess.run([_python36(), str(b / "jetson_runner.py"), "--model", str(b / "model.onnx"), "--input",
                        str(b / "input.npy"), "--runs", "3", "--warmup", "1", "--perf", "leave"],
                       capture_output=True, text=True, timeout=120)
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stdout + r.stderr
    rep = json.loads(lines[0])
    assert rep["python"].startswith("3.6") and rep["edgefold_runner"] == 1
    if rep["ok"]:
        manifest = json.loads((b / "manifest.json").read_text())
        assert rep["output"]["crc32"] == manifest["reference_crc32"] and len(rep["latency_ms"]) == 3
    else:
        assert "not importable" in rep["error"]


def test_runner_parsers_on_documented_formats():
    line = ("RAM 2021/3956MB (lfb 37x4MB) SWAP 0/1978MB (cached 0MB) IRAM 0/252kB(lfb 252kB) CPU [12%@102,4%@102,"
            "3%@102,1%@102] EMC_FREQ 0%@1600 GR3D_FREQ 0%@76 APE 25 PLL@24C CPU@26.5C GPU@26C POM_5V_IN 1069/1069")
    assert jetson_runner.parse_tegrastats(line) == (2021, 3956)
    assert jetson_runner.parse_tegrastats("garbage line") is None
    # trtexec's exportJSONTrace record (TensorRT 8): the trace includes warm-up queries (startComputeMs < --warmUp)
    rec = {"startEnqMs": 0, "endEnqMs": 0.1, "startH2dMs": 0.1, "endH2dMs": 0.2, "startComputeMs": 0.2,
           "endComputeMs": 1.0, "startD2hMs": 1.0, "endD2hMs": 1.1, "h2dMs": 0.1, "computeMs": 0.8, "d2hMs": 0.1,
           "latencyMs": 1.0, "endToEndMs": 1.1}
    timed = [dict(rec, startComputeMs=200.5 + i, computeMs=0.7 + i / 10, latencyMs=0.9 + i / 10) for i in range(2)]
    lat, comp = jetson_runner.parse_trt_times([rec, *timed, "noise"], 200)
    assert lat == pytest.approx([0.9, 1.0]) and comp == pytest.approx([0.7, 0.8])
