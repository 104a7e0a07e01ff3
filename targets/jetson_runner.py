# ruff: noqa: UP004, UP021, UP022, UP031, UP032
# (UP rewrites would suggest Python 3.7+ APIs such as subprocess.run(capture_output=...); this file must stay 3.6.)
"""edgefold Jetson runner: copied to the device over SFTP and run there with the device's python.

MUST run on Python 3.6 (JetPack 4.6, Ubuntu 18.04): no walrus, no f-string `=`, no dataclasses, no
`from __future__ import annotations`, no subprocess.run(capture_output/text), no shlex.join, no builtin generics.
Only numpy and onnxruntime are needed on the device; trtexec, tegrastats, nvpmodel and jetson_clocks are used when
present. The test suite parses this file with ast feature_version=(3, 6) and runs it under a real 3.6 when available.

Prints exactly ONE JSON line on stdout (everything else goes to stderr), versioned by "edgefold_runner":
  ok, error, python, machine, onnxruntime, providers, warmup, runs, latency_ms [per run],
  output {shape, dtype, crc32, sha256, values, values_truncated}, memory {...}, perf {...}, trt {...} | null.
Exit status 0 when ok, 1 otherwise.
"""

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
import traceback
import zlib

PROTOCOL = 1
TRTEXEC_DEFAULT = "/usr/src/tensorrt/bin/trtexec"  # where JetPack installs it (not on PATH by default)
TEGRA_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
MAX_TEGRA_LINES = 600  # at 100 ms a line: one minute of samples, then the sampler stops reading
MAX_VALUES = 4096  # output values echoed back in the JSON (the CRC/hash always cover all of them)


class RunnerError(Exception):
    """A problem the runner explains in one line (missing package, unloadable model, bad input)."""


def log(msg):
    sys.stderr.write("[runner] " + msg + "\n")
    sys.stderr.flush()


def proc_status_bytes(field):
    """VmRSS / VmHWM of this process from /proc (kB -> bytes); None where /proc is absent."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def maxrss_bytes(who):
    # ru_maxrss is in kilobytes on Linux
    return int(resource.getrusage(who).ru_maxrss) * 1024


def run_cmd(argv, timeout):
    """Run argv (no shell); return (rc, combined output tail). Never raises for a failing/missing program."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                           universal_newlines=True, timeout=timeout)
        return p.returncode, p.stdout[-2000:]
    except subprocess.TimeoutExpired:
        return -1, "timed out after %ds" % timeout
    except OSError as e:
        return -1, str(e)


# ---- clocks ----------------------------------------------------------------------------------------------------
def set_max_perf(mode):
    """nvpmodel -m 0 (MAXN) and jetson_clocks, when present and permitted (root or passwordless sudo).

    Both change the device's power state until reboot; mode "leave" skips them. Failures are reported, not fatal.
    """
    report = {}
    if mode != "max":
        return {"mode": mode}
    report["mode"] = mode
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]  # -n: fail instead of prompting for a password
    for name, args in (("nvpmodel", ["-m", "0"]), ("jetson_clocks", [])):
        exe = shutil.which(name) or ("/usr/bin/" + name if os.path.exists("/usr/bin/" + name) else None)
        if exe is None:
            report[name] = "absent"
            continue
        if sudo and shutil.which("sudo") is None:
            report[name] = "skipped: not root and no sudo"
            continue
        rc, out = run_cmd(sudo + [exe] + args, 30)
        report[name] = "ok" if rc == 0 else "failed (rc %d): %s" % (rc, out.strip().splitlines()[-1:] or "")
    return report


# ---- tegrastats ------------------------------------------------------------------------------------------------
def parse_tegrastats(line):
    """'RAM 2021/3956MB (lfb ...) ...' -> (used_mb, total_mb), or None for a line without RAM."""
    m = TEGRA_RAM.search(line)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2))


class Tegrastats(object):
    """Samples `tegrastats --interval 100` in a thread; bounded in lines read and in time to stop."""

    def __init__(self, exe):
        self.exe = exe
        self.samples = []
        self.proc = None
        self.thread = None

    def start(self):
        try:
            self.proc = subprocess.Popen([self.exe, "--interval", "100"], stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                         universal_newlines=True)
        except OSError as e:
            log("tegrastats not started: %s" % e)
            self.proc = None
            return False
        self.thread = threading.Thread(target=self._read)
        self.thread.daemon = True
        self.thread.start()
        return True

    def _read(self):
        n = 0
        for line in self.proc.stdout:
            n += 1
            got = parse_tegrastats(line)
            if got is not None:
                self.samples.append(got)
            if n >= MAX_TEGRA_LINES:
                break

    def wait_first(self, timeout):
        end = time.time() + timeout
        while not self.samples and time.time() < end and self.proc is not None and self.proc.poll() is None:
            time.sleep(0.02)

    def stop(self):
        if self.proc is None:
            return
        try:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except OSError:
            pass
        if self.thread is not None:
            self.thread.join(timeout=2)


# ---- trtexec ---------------------------------------------------------------------------------------------------
def find_trtexec(option):
    if option == "never":
        return None
    if option not in ("", "auto"):
        return option if os.path.exists(option) else None
    return shutil.which("trtexec") or (TRTEXEC_DEFAULT if os.path.exists(TRTEXEC_DEFAULT) else None)


def parse_trt_times(records, warmup_ms):
    """trtexec --exportTimes JSON -> (latency_ms list, compute_ms list) of the timed queries only.

    The file is the whole trace, warm-up included: trtexec itself counts a query as warm-up when its startComputeMs
    (ms since the start of inference) is below --warmUp, so the same rule drops them here. TensorRT 7/8 write
    latencyMs (host-to-device + compute + device-to-host) and computeMs (GPU compute) per query.
    """
    latency, compute = [], []
    for r in records:
        if not isinstance(r, dict):
            continue
        if float(r.get("startComputeMs", warmup_ms)) < warmup_ms:
            continue
        if "latencyMs" in r:
            latency.append(float(r["latencyMs"]))
        if "computeMs" in r:
            compute.append(float(r["computeMs"]))
    return latency, compute


def run_trtexec(exe, model, workdir, runs, warmup_ms, timeout, tegra_exe):
    times_path = os.path.join(workdir, "trt_times.json")
    if os.path.exists(times_path):
        os.remove(times_path)
    argv = [exe, "--onnx=" + model, "--fp16", "--exportTimes=" + times_path, "--iterations=%d" % runs,
            "--duration=0", "--warmUp=%d" % warmup_ms, "--avgRuns=1"]
    tegra = Tegrastats(tegra_exe) if tegra_exe else None
    if tegra is not None:
        tegra.start()
    t0 = time.time()
    rc, out = run_cmd(argv, timeout)
    if tegra is not None:
        tegra.stop()
    res = {"trtexec": exe, "argv": argv[1:], "wall_s": round(time.time() - t0, 3), "rc": rc, "ok": False,
           "peak_rss_children_bytes": maxrss_bytes(resource.RUSAGE_CHILDREN)}
    if tegra is not None and tegra.samples:
        res["tegrastats_ram_used_mb_max"] = max(s[0] for s in tegra.samples)
    if rc != 0:
        res["error"] = (out.strip().splitlines() or ["rc %d" % rc])[-1]
        return res
    try:
        with open(times_path) as f:
            latency, compute = parse_trt_times(json.load(f), warmup_ms)
    except (OSError, ValueError) as e:
        res["error"] = "cannot read %s: %s" % (times_path, e)
        return res
    res.update(ok=bool(latency), latency_ms=latency, compute_ms=compute)
    if not latency:
        res["error"] = "no timings in %s" % times_path
    return res


# ---- onnxruntime -----------------------------------------------------------------------------------------------
def pick_providers(ort, wanted):
    available = ort.get_available_providers()
    if wanted == "auto":
        order = ["CUDAExecutionProvider", "CPUExecutionProvider"]  # TensorRT is timed separately via trtexec
        chosen = [p for p in order if p in available]
    else:
        names = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "tensorrt": "TensorrtExecutionProvider"}
        chosen = [names.get(w.strip(), w.strip()) for w in wanted.split(",") if w.strip()]
        missing = [p for p in chosen if p not in available]
        if missing:
            raise RunnerError("provider(s) %s not in this onnxruntime (has %s)" % (", ".join(missing),
                                                                                   ", ".join(available)))
    return chosen or available


def np_dtype_for(np, onnx_type):
    table = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int32)": np.int32,
             "tensor(int64)": np.int64}
    if onnx_type not in table:
        raise RunnerError("unsupported model input type %s" % onnx_type)
    return table[onnx_type]


def body(args, result):
    result["perf"] = set_max_perf(args.perf)
    try:
        import numpy as np
    except ImportError as e:
        raise RunnerError("numpy is not importable by %s (%s): `sudo apt install python3-numpy`"
                          % (sys.executable, e)) from None
    # onnxruntime >= 1.32 (POSIX) would otherwise leave a telemetry session file in $TMPDIR and a device id in ~/.cache
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise RunnerError("onnxruntime is not importable by %s (%s): install the onnxruntime(-gpu) wheel for this "
                          "python/JetPack" % (sys.executable, e)) from None
    result["numpy"] = np.__version__
    result["onnxruntime"] = ort.__version__

    model_bytes = open(args.model, "rb").read()
    result["model_bytes"] = len(model_bytes)
    result["model_sha256"] = hashlib.sha256(model_bytes).hexdigest()
    del model_bytes
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise RunnerError("cannot load input %s: %s" % (args.input, e)) from None

    tegra_exe = None
    if args.tegrastats != "never":
        tegra_exe = shutil.which("tegrastats") or ("/usr/bin/tegrastats" if os.path.exists("/usr/bin/tegrastats")
                                                   else None)
    tegra = Tegrastats(tegra_exe) if tegra_exe else None
    if tegra is not None and tegra.start():
        tegra.wait_first(2.0)  # a baseline sample before the model is loaded
    baseline = list(tegra.samples) if tegra is not None else []
    rss_before = proc_status_bytes("VmRSS")

    opts = ort.SessionOptions()
    if args.threads > 0:
        opts.intra_op_num_threads = args.threads
        opts.inter_op_num_threads = 1
    providers = pick_providers(ort, args.providers)
    try:
        sess = ort.InferenceSession(args.model, sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
        if tegra is not None:
            tegra.stop()
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RunnerError("onnxruntime %s cannot load the model: %s" % (ort.__version__, first[:400])) from None
    result["providers"] = sess.get_providers()
    inp = sess.get_inputs()[0]
    x = np.ascontiguousarray(x.astype(np_dtype_for(np, inp.type), copy=False))
    feeds = {inp.name: x}

    for _ in range(args.warmup):
        sess.run(None, feeds)
    latency = []
    out = None
    for _ in range(args.runs):
        t0 = time.perf_counter()
        out = sess.run(None, feeds)
        latency.append((time.perf_counter() - t0) * 1000.0)
    if tegra is not None:
        tegra.stop()
    result["warmup"] = args.warmup
    result["runs"] = args.runs
    result["latency_ms"] = latency

    y = np.ascontiguousarray(out[0])
    raw = y.astype(y.dtype.newbyteorder("<"), copy=False).tobytes()  # little-endian bytes: same CRC on any host
    flat = y.ravel()
    result["output"] = {"shape": list(y.shape), "dtype": str(y.dtype), "crc32": zlib.crc32(raw) & 0xFFFFFFFF,
                        "sha256": hashlib.sha256(raw).hexdigest(), "values": flat[:MAX_VALUES].tolist(),
                        "values_truncated": bool(flat.size > MAX_VALUES)}

    mem = {"peak_rss_bytes": maxrss_bytes(resource.RUSAGE_SELF), "vm_hwm_bytes": proc_status_bytes("VmHWM"),
           "rss_before_load_bytes": rss_before, "source": "process"}
    if tegra is not None and tegra.samples:
        used = [s[0] for s in tegra.samples]
        mem["tegrastats"] = {"ram_used_mb_baseline": baseline[0][0] if baseline else None,
                             "ram_used_mb_max": max(used), "ram_total_mb": tegra.samples[-1][1],
                             "samples": len(used)}
        mem["source"] = "tegrastats"
    result["memory"] = mem

    trt_exe = find_trtexec(args.trtexec)
    if args.trtexec not in ("never", "", "auto") and trt_exe is None:
        raise RunnerError("trtexec not found at %s" % args.trtexec)
    result["trt"] = None
    if trt_exe is not None:
        log("timing TensorRT FP16 with %s (engine build can take minutes on a Nano)" % trt_exe)
        model = os.path.abspath(args.model)
        result["trt"] = run_trtexec(trt_exe, model, os.path.dirname(model), args.runs, 200, args.trt_timeout, tegra_exe)


def main(argv=None):
    ap = argparse.ArgumentParser(description="edgefold on-device benchmark (ONNX Runtime, TensorRT via trtexec)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True, help=".npy with the fixed input (batch included)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0 = its default)")
    ap.add_argument("--providers", default="auto", help="auto | cpu | cuda | tensorrt | comma list")
    ap.add_argument("--trtexec", default="auto", help="auto | never | path to trtexec")
    ap.add_argument("--trt-timeout", type=int, default=600)
    ap.add_argument("--tegrastats", default="auto", choices=["auto", "never"])
    ap.add_argument("--perf", default="max", choices=["max", "leave"], help="max: nvpmodel -m 0 + jetson_clocks")
    args = ap.parse_args(argv)

    result = {"edgefold_runner": PROTOCOL, "ok": False, "python": platform.python_version(),
              "machine": platform.machine(), "pid": os.getpid()}
    rc = 1
    try:
        if args.runs < 1 or args.warmup < 0:
            raise RunnerError("runs must be >= 1 and warmup >= 0")
        body(args, result)
        result["ok"] = True
        rc = 0
    except RunnerError as e:
        result["error"] = str(e)
    except Exception as e:  # report anything else as data; the host turns it into a DeviceError
        result["error"] = "%s: %s" % (type(e).__name__, str(e)[:400])
        result["traceback"] = traceback.format_exc()[-2000:]
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    sys.stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
