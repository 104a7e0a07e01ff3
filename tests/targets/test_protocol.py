"""EF1 protocol parser: exact on clean input, tolerant of noise, never a wrong number on corruption."""

from __future__ import annotations

import zlib

import pytest
from edgefold.targets.protocol import BenchParser, ProtocolError, format_record, parse_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefold.core.errors import DeviceError


def session(times: list[int], output: bytes, warmup: int = 1, unit: str = "us", heap: int | None = 1234,
            model: str = "0123456789abcdef") -> list[str]:
    crc = f"{zlib.crc32(output):08x}"
    lines = [format_record("BEGIN", v=1, board="nano33ble", backend="edgefold", model=model, unit=unit,
                           clock_hz=64000000, warmup=warmup, runs=len(times), **{"in": 12}, out=len(output),
                           macs=999, in_crc="0badf00d")]
    lines += [format_record("RUN", i=i, t=t, crc=crc) for i, t in enumerate(times)]
    mem = {"arena": 4096, "stack": 812} | ({"heap_free": heap} if heap is not None else {})
    lines.append(format_record("MEM", **mem))
    lines.append(format_record("OUT", n=len(output), crc=crc))
    for off in range(0, min(len(output), 256), 32):
        lines.append(format_record("HEX", off=off, data=output[off:off + 32].hex()))
    lines.append(format_record("END", status="ok", runs=len(times)))
    return lines


def parse(lines: list[str], **kw):
    p = BenchParser(**kw)
    for line in lines:
        if p.feed(line):
            break
    return p.result()


times_st = st.lists(st.integers(0, 2**40), min_size=1, max_size=12)
output_st = st.binary(min_size=1, max_size=300)
noise_st = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=80).filter(
    lambda s: "EF" not in s)


def test_clean_session_roundtrip():
    r = parse(session([100, 120, 110], bytes(range(10))))
    assert r.per_run == [100.0, 120.0, 110.0] and r.median == 110.0 and r.unit == "us"
    assert r.output == bytes(range(10)) and r.output_crc == zlib.crc32(bytes(range(10)))
    assert (r.arena_bytes, r.stack_bytes, r.heap_free, r.warmup, r.runs) == (4096, 812, 1234, 1, 3)
    assert r.extra["input_crc"] == 0x0BADF00D


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(times=times_st, output=output_st, noise=st.lists(noise_st, max_size=30), data=st.data())
def test_noise_lines_are_ignored(times, output, noise, data):
    lines = session(times, output)
    for n in noise:  # interleave boot messages / debug prints anywhere
        lines.insert(data.draw(st.integers(0, len(lines))), n)
    r = parse(lines)
    assert r.per_run == [float(t) for t in times]
    assert r.output_crc == zlib.crc32(output)
    assert r.output == (output if len(output) <= 256 else None)


@settings(max_examples=200, deadline=None)
@given(times=times_st, output=output_st, data=st.data())
def test_corruption_never_gives_a_wrong_number(times, output, data):
    lines = session(times, output)
    # flip, drop or truncate a few characters of a few lines
    for _ in range(data.draw(st.integers(1, 4))):
        k = data.draw(st.integers(0, len(lines) - 1))
        s = lines[k]
        if not s:
            continue
        j = data.draw(st.integers(0, len(s) - 1))
        how = data.draw(st.sampled_from(["flip", "drop", "cut", "dup"]))
        if how == "flip":
            s = s[:j] + chr((ord(s[j]) ^ data.draw(st.integers(1, 127))) or 1) + s[j + 1:]
        elif how == "drop":
            s = s[:j] + s[j + 1:]
        elif how == "cut":
            s = s[:j]
        else:
            s = s[:j] + s[j] + s[j:]
        lines[k] = s
    try:
        r = parse(lines)
    except DeviceError:
        return  # a clear error is fine
    # if it parsed, every number must be the original one
    assert r.per_run == [float(t) for t in times]
    assert r.output_crc == zlib.crc32(output)
    assert r.arena_bytes == 4096 and r.stack_bytes == 812


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=200), max_size=40))
def test_arbitrary_text_only_raises_device_errors(lines):
    with pytest.raises(DeviceError):
        parse(lines)


@settings(max_examples=100, deadline=None)
@given(times=times_st, output=output_st, data=st.data())
def test_truncated_stream_is_an_error(times, output, data):
    lines = session(times, output)
    cut = data.draw(st.integers(0, len(lines) - 1))  # END never arrives
    with pytest.raises(DeviceError, match="missing|incomplete"):
        parse(lines[:cut])


def test_missing_run_names_what_is_missing():
    lines = [line for line in session([1, 2, 3], b"abc") if " RUN i=1 " not in line]
    with pytest.raises(ProtocolError, match="RUN i=1"):
        parse(lines)


def test_corrupt_lines_are_counted_in_the_error():
    lines = session([1, 2, 3], b"abc")
    lines[2] = lines[2].replace("t=2", "t=7")  # checksum no longer matches: dropped
    with pytest.raises(ProtocolError, match="RUN i=1.*1 corrupted line"):
        parse(lines)


def test_reset_mid_run():
    lines = session([1, 2, 3], b"abc")
    lines = lines[:3] + ["boot..."] + lines
    with pytest.raises(DeviceError, match="reset during the benchmark"):
        parse(lines)


def test_stale_records_before_begin_are_ignored():
    old = session([9, 9], b"zz")[3:]  # tail of an earlier run
    r = parse(old + session([5], b"abc"))
    assert r.per_run == [5.0] and r.extra["stale_lines"] == len(old) - 0


def test_output_crc_mismatch_between_runs():
    lines = session([1, 2], b"abc")
    lines[2] = format_record("RUN", i=1, t=2, crc="deadbeef")
    with pytest.raises(DeviceError, match="output differs between runs"):
        parse(lines)


def test_hex_not_matching_crc():
    lines = session([1], b"abc")
    k = next(i for i, line in enumerate(lines) if " HEX " in line)
    lines[k] = format_record("HEX", off=0, data="616263ff"[:6].replace("63", "64"))
    with pytest.raises(ProtocolError, match="do not match their CRC"):
        parse(lines)


def test_device_error_and_fault_records():
    lines = session([1], b"abc")[:1] + [format_record("ERR", stage="run", i=0, code=-3),
                                         format_record("END", status="error")]
    with pytest.raises(DeviceError, match="code -3"):
        parse(lines)
    lines = session([1], b"abc")[:1] + [format_record("ERR", stage="init", i=-1, code=-23),
                                         format_record("END", status="error")]
    with pytest.raises(DeviceError, match="set-up failed with code -23: the tensor arena is too small"):
        parse(lines)  # set-up codes are named (firmware/boards/ef_board.h EF_ERR_*)
    with pytest.raises(DeviceError, match="CPU fault \\(hardfault\\)"):
        parse(session([1], b"abc")[:2] + ["EF1 FAULT type=hardfault"])


def test_expected_model_and_version():
    with pytest.raises(DeviceError, match="stale firmware"):
        parse(session([1], b"abc"), expect_model="ffffffffffffffff")
    body = "EF2 BEGIN v=2 board=x"
    with pytest.raises(ProtocolError, match="EF2"):
        parse([f"{body} *{zlib.crc32(body.encode()):08x}"])


def test_parse_line_kinds():
    assert parse_line("hello") is None
    assert parse_line(format_record("END", status="ok")).kind == "END"
    assert parse_line("garbage" + format_record("END", status="ok")).kind == "END"  # lost newline before it
    assert parse_line(format_record("END", status="ok")[:-1]) == "corrupt"


def test_every_firmware_error_code_is_named():
    import re

    from edgefold.targets.harness import BOARDS_DIR
    from edgefold.targets.protocol import ERROR_CODES

    codes = {int(c) for c in re.findall(r"#define EF_ERR_\w+ \((-\d+)\)", (BOARDS_DIR / "ef_board.h").read_text())}
    assert codes and codes == set(ERROR_CODES)


def _bytes_to_lines(raw: bytes) -> list[str]:
    """What the serial link hands the parser: lines split on \\n, decoded as ASCII with replacement."""
    return [chunk.rstrip(b"\r").decode("ascii", errors="replace") for chunk in raw.split(b"\n")]


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_any_serial_bytes_give_a_result_or_one_device_error_line(data):
    """Bytes as they come off the wire: a clean session mutated byte by byte, or raw garbage. Every outcome is a
    parsed result or one line of DeviceError; never another exception."""
    clean = "\n".join(session([5, 6, 7], bytes(range(40)))).encode()
    if data.draw(st.booleans()):
        raw = bytearray(clean)
        for pos, value in data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)),
                                             min_size=1, max_size=10)):
            raw[pos] = value
        blob = bytes(raw)
    else:
        blob = data.draw(st.binary(max_size=400))
    try:
        parse(_bytes_to_lines(blob))
    except DeviceError as e:
        assert str(e) and "\n" not in str(e), repr(str(e))


# --- per-step profile (--profile builds: PROF + one STEP per kernel call after the timed runs) ---------------------


def profiled(steps: list[int], dropped: int = 0, crc_of: bytes = bytes(range(10)), stamps_t: int = 600,
             skip: tuple[int, ...] = ()) -> list[str]:
    """A session of a --profile build: PROF and STEP records between the RUNs and MEM, as harness.c writes them."""
    lines = session([sum(steps) + 40], bytes(range(10)), unit="instructions")
    k = next(i for i, line in enumerate(lines) if " MEM " in line)
    prof = [format_record("PROF", steps=len(steps), dropped=dropped, total=sum(steps) + 40, stamps=16,
                          stamps_t=stamps_t, crc=f"{zlib.crc32(crc_of):08x}")]
    prof += [format_record("STEP", i=i, t=t) for i, t in enumerate(steps) if i not in skip]
    return lines[:k] + prof + lines[k:]


def test_profile_records_give_per_step_values_less_the_stamp_cost():
    r = parse(profiled([5000, 1237, 80]), expect_profile=True)
    p = r.extra["profile"]
    assert p["unit"] == "instructions" and p["steps"] == 3 and p["total"] == 6357
    assert p["stamp_cost"] == 600 / 16 and p["raw"] == [5000, 1237, 80]
    assert p["values"] == [5000 - 37.5, 1237 - 37.5, 80 - 37.5]
    assert "profile" not in parse(session([10], b"x")).extra  # an ordinary build reports no profile


def test_profile_missing_step_is_an_error():
    with pytest.raises(ProtocolError, match=r"missing STEP i=1 of the per-step profile"):
        parse(profiled([5000, 1237, 80], skip=(1,)))


def test_profile_dropped_stamps_are_an_error():
    with pytest.raises(ProtocolError, match=r"dropped 2 of 3 step stamps"):
        parse(profiled([5000, 1237, 80], dropped=2))


def test_profile_expected_but_absent_is_an_error():
    with pytest.raises(ProtocolError, match=r"missing PROF"):
        parse(session([10], b"x"), expect_profile=True)


def test_profile_step_out_of_range_or_output_differs():
    lines = profiled([100, 200])
    k = next(i for i, line in enumerate(lines) if " MEM " in line)
    with pytest.raises(ProtocolError, match=r"STEP i=7 out of range"):
        parse(lines[:k] + [format_record("STEP", i=7, t=5)] + lines[k:])
    with pytest.raises(DeviceError, match=r"profiled inference's output differs"):
        parse(profiled([100, 200], crc_of=b"other"))
