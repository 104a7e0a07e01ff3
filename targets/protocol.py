"""EF1, the on-device benchmark protocol: host side, shared by every serial target (real or emulated).

Wire format (firmware/harness/ef_proto.c writes it), one record per line, ASCII:

    EF1 <RECORD> key=value key=value ... *<crc32>

<crc32> is zlib.crc32 of everything before " *", as 8 lower-case hex digits. Records of one benchmark:

    BEGIN v=1 board= backend= model=<16 hex> unit=us|instructions clock_hz= warmup= runs= in= out= macs= in_crc=
    RUN   i=<0..runs-1> t=<time in unit> crc=<crc32 of the output after this run>      (one per timed run)
    PROF  steps= dropped= total= stamps= stamps_t= crc=                 (--profile builds: one stamped inference)
    STEP  i=<0..steps-1> t=<time in unit since the previous stamp>                      (one per kernel call)
    MEM   arena=<bytes> stack=<bytes> [heap_free=<bytes>]                                  (figures below)
    OUT   n=<output bytes> crc=<crc32 of the output>
    HEX   off=<byte offset> data=<hex>                                                 (first 256 output bytes)
    END   status=ok|error [runs=]
    ERR   stage=init|warmup|run i= code=                                               (device-side failure)
    FAULT type=hardfault|...                                                           (CPU fault; no checksum)

MEM figures, the same on every board (firmware/boards/ef_board.h): `arena` = bytes of tensor arena the backend uses
(the planned arena for edgefold, arena_used_bytes() for TFLM); `stack` = high-water mark of the stack below the
benchmark's entry (painted at entry, scanned after the runs); `heap_free` = the largest block still allocatable from
internal RAM (PSRAM excluded), absent on boards without a heap. ERR codes of a failed set-up are named in
ERROR_CODES.

PROF/STEP (firmware/harness/ef_profile.h): after the timed runs a profile build runs one more inference with the timer
read after every kernel call. STEP t is the interval since the previous stamp (step 0: since just before
ef_model_run), so it holds the kernel call and one stamp; `stamps_t` is what `stamps` back-to-back stamps cost, and the
parser subtracts that mean per stamp (BenchResult.extra["profile"]). `total` is the whole stamped inference; `dropped`
counts stamps that missed their slot (model.c and model.h disagree): any is an error, as is a missing STEP.

Robustness rules: a line that does not start with "EF1 " is noise (boot messages, prints) and is ignored; an
EF1 line whose checksum fails is dropped and counted. A dropped line can only make a record *missing*, and a
missing required record is a DeviceError that says what is missing and how many lines were corrupted -- so a
corrupted serial link gives an error, never a wrong number. Records before BEGIN are stale (we attached in the
middle of an earlier run) and ignored; a second BEGIN means the device reset during the run.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from edgefold.targets.base import BenchResult

from edgefold.core.errors import DeviceError

VERSION = 1
PREFIX = f"EF{VERSION} "
HEX_MAX = 256
_LINE = re.compile(r"^EF(\d+) ([A-Z]+)((?: [a-z_]+=[^ =*]*)*) \*([0-9a-f]{8})$")
_START = re.compile(r"EF\d+ [A-Z]")
_DAMAGED = re.compile(r"(?i)ef1.{0,3}(begin|run|prof|step|mem|out|hex|end|err)|[ *][0-9a-f]{8}$")
_OTHER_VERSION = re.compile(r"^EF(\d+) BEGIN ")
_FIELD = re.compile(r" ([a-z_]+)=([^ ]*)")
_UNITS = {"us": "us", "ms": "ms", "instructions": "instructions", "cycles": "cycles"}
# What a set-up ERR code means (firmware/boards/ef_board.h EF_ERR_*); other codes are ef_model_run()'s own.
ERROR_CODES = {
    -20: "the op resolver could not register the model's ops",
    -21: "the .tflite schema version differs from the interpreter's",
    -22: "no free memory block as large as the tensor arena",
    -23: "the tensor arena is too small for this model (AllocateTensors failed)",
    -24: "the interpreter has no input or output tensor",
    -25: "the interpreter's input/output sizes differ from model.h",
    -26: "the tensor arena needs PSRAM and the board has none (psramFound() is false: no PSRAM fitted, or the "
         "firmware was built without -DBOARD_HAS_PSRAM)",
}


class ProtocolError(DeviceError):
    """The device's report is incomplete, inconsistent, or not EF1."""


def format_record(kind: str, **fields: Any) -> str:
    """One EF1 line (without newline), exactly as the firmware writes it. Used by tests and fake boards."""
    body = PREFIX + kind + "".join(f" {k}={v}" for k, v in fields.items())
    return f"{body} *{zlib.crc32(body.encode('ascii')):08x}"


@dataclass
class Record:
    kind: str
    fields: dict[str, str]


def parse_line(line: str) -> Record | None | str:
    """A Record; None for a noise line; "corrupt" for an EF1 line whose checksum or syntax fails."""
    line = line.strip("\r\n\x00 ")
    start = _START.search(line)
    if start is None:
        # a protocol line with a damaged prefix still counts as a corrupted record, not as harmless noise
        return "corrupt" if _DAMAGED.search(line) else None
    line = line[start.start():]  # tolerate junk before the prefix (partial line glued to a record, lost newline)
    if line.startswith("EF1 FAULT"):
        m = re.search(r"type=(\S+)", line)
        return Record("FAULT", {"type": m.group(1) if m else "unknown"})
    m = _LINE.match(line)
    if m is None:
        other = _OTHER_VERSION.match(line)
        if other and other.group(1) != str(VERSION):
            raise ProtocolError(f"device speaks protocol EF{other.group(1)}; this host understands EF{VERSION} "
                                "(rebuild the firmware with this edgefold)")
        return "corrupt" if line.startswith(PREFIX) else None
    version, kind, rest, crc = m.groups()
    body = line[: line.rindex(" *")]
    if zlib.crc32(body.encode("ascii", errors="replace")) != int(crc, 16):
        return "corrupt"
    if version != str(VERSION):
        raise ProtocolError(f"device speaks protocol EF{version}; this host understands EF{VERSION}")
    return Record(kind, dict(_FIELD.findall(rest)))


def _int(rec: Record, key: str, base: int = 10) -> int:
    try:
        return int(rec.fields[key], base)
    except KeyError:
        raise ProtocolError(f"EF1 {rec.kind} record without {key}=") from None
    except ValueError:
        raise ProtocolError(f"EF1 {rec.kind} record: bad {key}={rec.fields[key]!r}") from None


def _str(rec: Record, key: str) -> str:
    try:
        return rec.fields[key]
    except KeyError:
        raise ProtocolError(f"EF1 {rec.kind} record without {key}=") from None


@dataclass
class BenchParser:
    """Feed lines, one at a time; `feed` returns True once END arrived; `result()` checks and returns."""

    expect_model: str | None = None
    expect_backend: str | None = None
    expect_input_crc: int | None = None
    expect_profile: bool = False  # a --profile build: PROF and every STEP must arrive
    noise: int = 0
    corrupt: int = 0
    stale: int = 0
    begin: Record | None = None
    runs: dict[int, tuple[int, int]] = field(default_factory=dict)
    mem: Record | None = None
    out: Record | None = None
    hex_chunks: dict[int, bytes] = field(default_factory=dict)
    end: Record | None = None
    errors: list[Record] = field(default_factory=list)
    prof: Record | None = None
    steps: dict[int, int] = field(default_factory=dict)

    def feed(self, line: str) -> bool:
        if self.end is not None:
            return True
        rec = parse_line(line)
        if rec is None:
            self.noise += 1
            return False
        if rec == "corrupt":
            self.corrupt += 1
            return False
        assert isinstance(rec, Record)
        if rec.kind == "FAULT":
            raise DeviceError(f"device crashed: CPU fault ({rec.fields['type']})" + self._where())
        if rec.kind == "BEGIN":
            if self.begin is not None:
                raise DeviceError("device reset during the benchmark (a second BEGIN arrived before END)"
                                  + self._where())
            self._on_begin(rec)
            return False
        if self.begin is None:
            self.stale += 1  # the tail of an earlier run, from before we attached
            return False
        if rec.kind == "RUN":
            i, t, crc = _int(rec, "i"), _int(rec, "t"), _int(rec, "crc", 16)
            if not 0 <= i < self.n_runs:
                raise ProtocolError(f"RUN i={i} out of range (runs={self.n_runs})")
            if i in self.runs and self.runs[i] != (t, crc):
                raise ProtocolError(f"two different RUN i={i} records")
            self.runs[i] = (t, crc)
        elif rec.kind == "PROF":
            for k in ("steps", "dropped", "total", "stamps", "stamps_t"):
                _int(rec, k)
            _int(rec, "crc", 16)
            self.prof = rec
        elif rec.kind == "STEP":
            i, t = _int(rec, "i"), _int(rec, "t")
            if i in self.steps and self.steps[i] != t:
                raise ProtocolError(f"two different STEP i={i} records")
            self.steps[i] = t
        elif rec.kind == "MEM":
            _int(rec, "arena"), _int(rec, "stack")
            self.mem = rec
        elif rec.kind == "OUT":
            _int(rec, "n"), _int(rec, "crc", 16)
            self.out = rec
        elif rec.kind == "HEX":
            off = _int(rec, "off")
            try:
                self.hex_chunks[off] = bytes.fromhex(_str(rec, "data"))
            except ValueError:
                raise ProtocolError(f"HEX off={off}: not hex") from None
        elif rec.kind == "ERR":
            self.errors.append(rec)
        elif rec.kind == "END":
            _str(rec, "status")
            self.end = rec
            return True
        # unknown record kinds are ignored: a newer firmware may add records without breaking this host
        return False

    def _on_begin(self, rec: Record) -> None:
        v = _int(rec, "v")
        if v != VERSION:
            raise ProtocolError(f"device protocol version {v}; this host understands {VERSION}")
        for k in ("board", "backend", "model", "unit"):
            _str(rec, k)
        for k in ("warmup", "runs", "in", "out"):
            _int(rec, k)
        if rec.fields["unit"] not in _UNITS:
            raise ProtocolError(f"unknown time unit {rec.fields['unit']!r}")
        if _int(rec, "runs") < 1:
            raise ProtocolError("device reports zero timed runs")
        if self.expect_model is not None and rec.fields["model"] != self.expect_model:
            raise DeviceError(f"device runs model {rec.fields['model']}, expected {self.expect_model} "
                              "(stale firmware? flash again)")
        if self.expect_backend is not None and rec.fields["backend"] != self.expect_backend:
            raise DeviceError(f"device runs backend {rec.fields['backend']}, expected {self.expect_backend}")
        if self.expect_input_crc is not None and "in_crc" in rec.fields:
            if _int(rec, "in_crc", 16) != self.expect_input_crc:
                raise DeviceError("device's input tensor differs from the host's (in_crc mismatch)")
        self.begin = rec

    @property
    def n_runs(self) -> int:
        return _int(self.begin, "runs") if self.begin else 0

    def _where(self) -> str:
        n = len(self.runs)
        return f" after {n} timed run{'s' if n != 1 else ''}" if self.begin else ""

    def _missing(self, what: str) -> ProtocolError:
        why = f" ({self.corrupt} corrupted line{'s' if self.corrupt != 1 else ''} dropped)" if self.corrupt else ""
        return ProtocolError(f"incomplete benchmark report: missing {what}{why}")

    def result(self) -> BenchResult:
        """The BenchResult, or DeviceError saying exactly what is missing or inconsistent."""
        if self.begin is None:
            extra = f"; {self.noise} other lines seen" if self.noise else ""
            raise self._missing("BEGIN (is the benchmark firmware on the device?)" + extra)
        if self.errors:
            e = self.errors[0].fields
            stage, code = e.get("stage", "?"), e.get("code", "?")
            if stage == "init":
                why = ERROR_CODES.get(int(code)) if re.fullmatch(r"-?\d+", code) else None
                raise DeviceError(f"device reported an error: set-up failed with code {code}"
                                  + (f": {why}" if why else ""))
            raise DeviceError(f"device reported an error: ef_model_run failed at {stage} "
                              f"i={e.get('i', '?')} with code {code}")
        if self.end is None:
            raise self._missing(f"END (got {len(self.runs)} of {self.n_runs} runs)")
        if self.end.fields["status"] != "ok":
            raise DeviceError(f"device ended the benchmark with status={self.end.fields['status']}")
        missing = [i for i in range(self.n_runs) if i not in self.runs]
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
            raise self._missing(f"RUN i={shown}")
        if self.mem is None:
            raise self._missing("MEM")
        if self.out is None:
            raise self._missing("OUT")
        b = self.begin.fields
        n_out, crc = _int(self.out, "n"), _int(self.out, "crc", 16)
        if n_out != int(b["out"]):
            raise ProtocolError(f"OUT n={n_out} but BEGIN out={b['out']}")
        bad = [i for i, (_, c) in sorted(self.runs.items()) if c != crc]
        if bad:
            raise DeviceError(f"output differs between runs (runs {bad[:5]} vs the final output): "
                              "nondeterministic kernel or memory corruption")
        shown = min(n_out, HEX_MAX)
        data = b""
        while len(data) < shown:
            chunk = self.hex_chunks.get(len(data))
            if not chunk:
                raise self._missing(f"HEX off={len(data)}")
            data += chunk
        data = data[:shown]
        if shown == n_out and zlib.crc32(data) != crc:
            raise ProtocolError("output bytes do not match their CRC")
        heap = self.mem.fields.get("heap_free")
        profile = self._profile(crc, _UNITS[b["unit"]])
        return BenchResult(
            model_id=b["model"],
            backend=b["backend"],
            warmup=int(b["warmup"]),
            runs=self.n_runs,
            per_run=[float(self.runs[i][0]) for i in range(self.n_runs)],
            unit=_UNITS[b["unit"]],
            kind="measured",
            arena_bytes=_int(self.mem, "arena"),
            stack_bytes=_int(self.mem, "stack"),
            heap_free=int(heap) if heap not in (None, "") and heap.lstrip("-").isdigit() else None,
            output_crc=crc,
            output=data if shown == n_out else None,
            extra={
                "board": b["board"],
                "clock_hz": int(b.get("clock_hz", "0") or 0),
                "input_bytes": int(b["in"]),
                "output_bytes": n_out,
                "macs": int(b["macs"]) if b.get("macs", "").isdigit() else None,
                "input_crc": int(b["in_crc"], 16) if re.fullmatch(r"[0-9a-f]{8}", b.get("in_crc", "")) else None,
                "output_head": data.hex(),
                "noise_lines": self.noise,
                "corrupt_lines": self.corrupt,
                "stale_lines": self.stale,
                **({"profile": profile} if profile is not None else {}),
            },
        )

    def _profile(self, crc: int, unit: str) -> dict[str, Any] | None:
        """The per-step profile (PROF + STEP records) with the stamps' own cost taken out of every step."""
        if self.prof is None:
            if self.expect_profile:
                raise self._missing("PROF (the per-step profile of a --profile build)")
            return None
        n, dropped = _int(self.prof, "steps"), _int(self.prof, "dropped")
        if dropped:
            raise ProtocolError(f"per-step profile: the device dropped {dropped} of {n} step stamps (the model's "
                                "model.c and model.h disagree on its kernel calls: generate the code again)")
        stray = sorted(i for i in self.steps if not 0 <= i < n)
        if stray:
            raise ProtocolError(f"STEP i={stray[0]} out of range (steps={n})")
        if len(self.steps) < n:  # the first few missing ones, without walking a (garbled) huge range
            missing: list[int] = []
            i = 0
            while i < n and len(missing) < 6:
                if i not in self.steps:
                    missing.append(i)
                i += 1
            shown = ", ".join(map(str, missing[:5])) + (" ..." if n - len(self.steps) > 5 else "")
            raise self._missing(f"STEP i={shown} of the per-step profile")
        if _int(self.prof, "crc", 16) != crc:
            raise DeviceError("the profiled inference's output differs from the timed runs' (PROF crc): "
                              "nondeterministic kernel or memory corruption")
        stamps = _int(self.prof, "stamps")
        stamp = _int(self.prof, "stamps_t") / stamps if stamps > 0 else 0.0
        raw = [self.steps[i] for i in range(n)]
        return {
            "unit": unit, "steps": n, "total": _int(self.prof, "total"), "stamp_cost": stamp, "raw": raw,
            # an interval holds its kernel call and one stamp; a stamp costs no less than the calibration said, so a
            # value never goes below 0 except by the timer's resolution
            "values": [max(0.0, t - stamp) for t in raw],
        }


def read_bench(link, idle_timeout_s: float, total_timeout_s: float, parser: BenchParser | None = None,
               on_line=None) -> BenchResult:
    """Read one benchmark report from a SerialLink. Never blocks longer than total_timeout_s."""
    from edgefold.targets.serial_link import LinkClosed, LinkTimeout

    p = parser or BenchParser()
    try:
        for line in link.lines(idle_timeout_s, total_timeout_s):
            if on_line is not None:
                on_line(line)
            if p.feed(line):
                break
    except LinkTimeout as e:
        state = f"got {len(p.runs)} of {p.n_runs} runs" if p.begin else "no BEGIN yet"
        if p.corrupt:
            state += f", {p.corrupt} corrupted lines dropped"
        raise LinkTimeout(f"{e} ({state})") from None
    except LinkClosed as e:
        if p.end is None:
            state = f"after {len(p.runs)} of {p.n_runs} runs" if p.begin else "before BEGIN"
            if p.corrupt:
                raise ProtocolError(f"{e} {state}; {p.corrupt} corrupted protocol lines dropped (garbled serial "
                                    "link: wrong baud rate, noise or a bad cable?)") from None
            raise LinkClosed(f"{e} {state}: device vanished or was reset") from None
    return p.result()
