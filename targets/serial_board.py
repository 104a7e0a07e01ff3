"""What the two USB boards share: PlatformIO build, serial benchmark run with bounded retries.

The board runs the benchmark once at start-up and again whenever it receives 'B'. The host opens the port,
asks for a run, and reads one EF1 report (targets/protocol.py); records from a run already in progress when we
attached are stale and ignored. No answer -> ask again (bounded); the port vanishes -> wait for it to come back
(bounded) and ask again; then a DeviceError that says what happened.
"""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from edgefold.targets import fit, mcu, platformio, usb
from edgefold.targets.base import BenchResult, BuildResult, FitReport, FlashResult, Opt, Target
from edgefold.targets.fit import BoardBudget
from edgefold.targets.protocol import BenchParser, read_bench
from edgefold.targets.serial_link import LinkClosed, LinkTimeout, SerialLink

from edgefold.core.errors import DeviceError, EdgefoldError, ToolchainMissing
from edgefold.core.fsutil import ensure_dir, write_json


def _host_tflm() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"tflite-micro {version('tflite-micro')}"
    except PackageNotFoundError:
        return "the host's tflite-micro"


def check_output(device: bytes | None, device_crc: int | None, expected: bytes, backend: str) -> dict[str, Any]:
    """Compare a board's int8 output with the host's (TFLM host interpreter) and say why they may differ.

    verdict: "exact" (same CRC), "within_tolerance" (tflm backend: the board's library TFLM rounds differently;
    the measured difference and the reason are in the record), "mismatch" (another result: an error), or
    "unverified" (CRC differs and the board sent no output bytes to measure by how much).
    """
    want = zlib.crc32(expected)
    base: dict[str, Any] = {"expected_crc32": want, "device_crc32": device_crc, "backend": backend,
                            "max_abs_diff_lsb": 0, "compared": len(expected),
                            "tolerance_lsb": platformio.TFLM_LIBRARY_TOLERANCE_LSB if backend == "tflm" else 0}
    if device_crc == want:
        return {**base, "verdict": "exact", "reason": "output CRC equals the host's"}
    if not device:
        return {**base, "verdict": "unverified", "max_abs_diff_lsb": None, "compared": 0,
                "reason": "output CRC differs from the host's and the board sent no output bytes to compare"}
    n = min(len(device), len(expected))
    if len(device) > len(expected) or n == 0:
        return {**base, "verdict": "mismatch", "max_abs_diff_lsb": None, "compared": 0,
                "reason": f"the board sent {len(device)} output bytes, the model has {len(expected)}"}
    d = np.frombuffer(device[:n], np.int8).astype(np.int16) - np.frombuffer(expected[:n], np.int8).astype(np.int16)
    diff = int(np.abs(d).max())
    part = f" over {n} of {len(expected)} outputs (the rest was not sent)" if n < len(expected) else ""
    base.update(max_abs_diff_lsb=diff, compared=n)
    if backend == "tflm" and diff <= platformio.TFLM_LIBRARY_TOLERANCE_LSB:
        return {**base, "verdict": "within_tolerance",
                "reason": f"tflm library {platformio.TFLM_LIB} (TFLM of early 2023) differs from {_host_tflm()}; "
                          f"max |Δ| = {diff} LSB{part}, within the documented tolerance of "
                          f"{platformio.TFLM_LIBRARY_TOLERANCE_LSB} LSB"}
    why = (f"above the {platformio.TFLM_LIBRARY_TOLERANCE_LSB} LSB the tflm library's kernels explain"
           if backend == "tflm" else "the edgefold runtime is bit-exact with the host")
    return {**base, "verdict": "mismatch", "reason": f"max |Δ| = {diff} LSB{part}: {why}"}


class SerialBoardTarget(Target):
    budgets: dict[str, BoardBudget]
    dtr: bool = True
    rts: bool = True
    options: ClassVar[dict[str, Opt]] = {
        "port": Opt(str), "retries": Opt(int, min=0), "idle_timeout_s": Opt(float, above=0),
        "open_timeout_s": Opt(float, above=0), "upload": Opt(str, choices=("pio", "bossac")), "offline": Opt(bool),
        "build_timeout_s": Opt(float, above=0)}
    per_step_profile: ClassVar[bool] = True  # the board's own timer (us): coarse for short kernel calls

    def __init__(self, port: str | None = None, retries: int = 2, idle_timeout_s: float = 30.0,
                 open_timeout_s: float = 10.0, upload: str = "pio", offline: bool | None = None,
                 build_timeout_s: float = 1800.0, **_: object) -> None:
        self.port = port
        self.retries = max(0, int(retries))
        self.idle_timeout_s = float(idle_timeout_s)
        self.open_timeout_s = float(open_timeout_s)
        self.upload = upload
        self.offline = offline
        self.build_timeout_s = float(build_timeout_s)

    def preflight(self, backend: str, port: str | None = None) -> None:
        """PlatformIO and the board's platform installed (offline=false lets PlatformIO fetch it during the build),
        then the board: the port given exists, or exactly one board of this kind is attached (USB VID:PID)."""
        self._check_backend(backend)
        platformio.pio_exe()
        proj = platformio.PROJECTS[self.spec.name]
        if self.offline is not False and not platformio.platform_installed(proj.platform):
            raise ToolchainMissing(f"PlatformIO platform '{proj.platform}' is not installed: run `pio pkg install -g "
                                   f"-p {proj.platform}` once with network access (or pass --option offline=false "
                                   "to let the build fetch it)")
        self._preflight_upload()
        port = port or self.port
        if port:
            if not os.path.exists(port):
                raise DeviceError(f"{self.spec.name}: serial port {port} does not exist")
        else:
            usb.pick_port(self.spec.name)

    def _preflight_upload(self) -> None:
        """The board's upload tool is there (subclasses)."""

    def _check_backend(self, backend: str) -> None:
        if backend not in self.spec.backends:
            raise EdgefoldError(f"{self.spec.name} runs backends {', '.join(self.spec.backends)}, not {backend!r}")

    def fit_check(self, build_input: Path, backend: str, ratio: float | None = None) -> FitReport:
        self._check_backend(backend)
        build_input = Path(build_input)
        fp = fit.footprint(build_input, backend)
        r = fit.current_ratio(build_input) if ratio is None else ratio
        return fit.check(self.spec, self.budgets[backend], fp, r)

    def generate(self, build_input: Path, out_dir: Path, backend: str, runs: int, warmup: int,
                 profile: bool = False) -> tuple[Path, mcu.FirmwareInputs]:
        """The PlatformIO project (no build): what `build` compiles, and what the tests check offline."""
        self._check_backend(backend)
        if runs < 1 or warmup < 0:
            raise EdgefoldError("runs must be >= 1 and warmup >= 0")
        out_dir = ensure_dir(out_dir)
        fw = mcu.prepare(Path(build_input), out_dir / "gen", backend, profile)
        proj = platformio.generate(self.spec.name, fw, out_dir / "project", backend, runs, warmup, profile)
        return proj, fw

    def build(self, build_input: Path, out_dir: Path, backend: str, runs: int, warmup: int,
              profile: bool = False) -> BuildResult:
        proj, fw = self.generate(build_input, out_dir, backend, runs, warmup, profile)
        b = platformio.build(proj, self.spec.name, self.build_timeout_s, self.offline)
        expected = Path(build_input) / "expected_output.bin"
        meta = {"model_id": fw.header.model_id, "input_crc": fw.input_crc, "backend": backend, "runs": runs,
                "expected_output": expected.read_bytes().hex() if expected.is_file() else None,
                "warmup": warmup, "project": str(proj), "ram_total": b.ram_total, "flash_total": b.flash_total,
                "arena_bytes": fw.header.arena_bytes, "macs": fw.header.macs, "profile": profile,
                "sizes_note": "PlatformIO static sizes (size -A); heap/PSRAM arenas are reported by the firmware"}
        write_json(Path(out_dir) / "build.json", meta)
        return BuildResult(artifact=b.firmware, static_ram=b.static_ram, flash=b.flash, log=proj / "build.log",
                           extra=meta)

    # -- run
    def _open(self, port: str) -> SerialLink:
        return SerialLink.open_serial(port, 115200, self.open_timeout_s, dtr=self.dtr, rts=self.rts)

    def _redetect(self, port: str) -> str:
        """After a vanished port: the same path if it came back, else the one board of this kind attached."""
        deadline = time.monotonic() + self.open_timeout_s
        while time.monotonic() < deadline:
            if Path(port).exists():
                return port
            found = usb.find(self.spec.name, modes=None)
            if len(found) == 1:
                return found[0].port
            time.sleep(0.25)
        raise LinkClosed(f"{self.spec.name}: port {port} vanished and did not come back within "
                         f"{self.open_timeout_s:g} s")

    def run_benchmark(self, build: BuildResult, flashed: FlashResult, timeout_s: float) -> BenchResult:
        port = flashed.port or usb.pick_port(self.spec.name, self.port)
        attempts, errors = self.retries + 1, []
        for attempt in range(1, attempts + 1):
            parser = BenchParser(expect_model=build.extra.get("model_id"), expect_backend=build.extra.get("backend"),
                                 expect_input_crc=build.extra.get("input_crc"),
                                 expect_profile=bool(build.extra.get("profile")))
            try:
                with self._open(port) as link:
                    link.write(b"B\n")  # ask for a run (the start-up run may have gone by before we opened)
                    res = read_bench(link, min(self.idle_timeout_s, timeout_s), timeout_s, parser)
                res.extra["attempts"] = attempt
                res.extra["port"] = port
                if build.extra.get("expected_output"):
                    chk = check_output(res.output, res.output_crc, bytes.fromhex(build.extra["expected_output"]),
                                       str(build.extra.get("backend")))
                    res.extra["output_check"] = chk
                    res.extra["output_crc_match"] = {"exact": True, "within_tolerance": True,
                                                     "mismatch": False}.get(chk["verdict"])
                return res
            except LinkClosed as e:
                errors.append(str(e))
                if attempt < attempts:
                    port = self._redetect(port)
            except LinkTimeout as e:
                errors.append(str(e))
            except DeviceError as e:
                # reset mid-run, corrupted report, device-side error: retrying once more is cheap and bounded
                errors.append(str(e))
        raise DeviceError(f"{self.spec.name}: {errors[-1]} ({attempts} attempt{'s' if attempts > 1 else ''})")
