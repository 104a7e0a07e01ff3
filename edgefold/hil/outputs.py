"""What a run writes: DIR/hil.json, JUnit XML (one suite per target) and a Markdown summary."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgefold.core.fsutil import write_json, write_text
from edgefold.core.provenance import short_commit
from edgefold.hil.gates import NO_BASELINE, fmt_latency
from edgefold.hil.matrix import Matrix
from edgefold.hil.state import ERROR, FAILED, PASSED, PENDING, SKIPPED, CellOutcome, HilRun

HIL_SCHEMA = "edgefold-hil/1"


def _cell_json(o: CellOutcome, out_dir: Path) -> dict[str, Any]:
    rec = o.record or {}
    return {"id": o.cell.id, "status": o.status, "reason": o.reason, "lane": o.lane, "reused": o.reused,
            "params": o.cell.params(), "gates": [{**asdict(g), "verdict": g.verdict} for g in o.gates],
            "result": rec.get("result"), "rc": rec.get("rc"), "wall_seconds": rec.get("wall_seconds"),
            "run_id": rec.get("run_id"),
            "log": str((out_dir / "cells" / o.cell.id / "deploy.log").relative_to(out_dir)) if rec else None}


def write_outputs(run: HilRun, matrix: Matrix, junit: str | os.PathLike | None = None) -> dict[str, Path]:
    out = run.out_dir
    doc = {"schema": HIL_SCHEMA, "run_id": run.run_id, "matrix": str(matrix.path), "interrupted": run.interrupted,
           "wall_seconds": round(run.wall_seconds, 3), "baseline": run.baseline_path, "counts": run.counts(),
           "gates_off": gates_off(run), "notices": list(matrix.notices), "provenance": run.provenance,
           "cells": [_cell_json(o, out) for o in run.outcomes]}
    paths = {"json": write_json(out / "hil.json", doc),
             "junit": write_text(Path(junit) if junit else out / "junit.xml", junit_xml(run)),
             "summary": write_text(out / "summary.md", summary_markdown(run))}
    return paths


HISTORY_SCHEMA = "edgefold-hil-history/1"


def _ms(lat: dict[str, Any]) -> float | None:
    v = lat.get("value")
    if not isinstance(v, int | float):
        return None
    return {"ms": v, "us": v / 1000.0, "s": v * 1000.0}.get(lat.get("unit", ""))


def history_record(run: HilRun, matrix: Matrix) -> dict[str, Any]:
    """One line of history.jsonl: the run (date, version, commit, counts) and every measured cell's figures."""
    cells: dict[str, Any] = {}
    for o in run.outcomes:
        res = (o.record or {}).get("result") or {}
        acc = res.get("accuracy") or {}
        lat = res.get("latency") or {}
        cells[o.cell.id] = {"status": o.status, "latency_ms": _ms(lat), "latency_kind": lat.get("kind"),
                            "instructions": res.get("instructions"), "ram": (res.get("ram") or {}).get("total"),
                            "flash": res.get("flash"), "int8": acc.get("int8"), "agreement": acc.get("agreement"),
                            "emulated": res.get("emulated"), "fault": o.cell.fault,
                            "gates": {g.name: g.verdict for g in o.gates}}
    return {"schema": HISTORY_SCHEMA, "run_id": run.run_id, "provenance": run.provenance, "matrix": str(matrix.path),
            "baseline": run.baseline_path, "counts": run.counts(), "gates_off": gates_off(run),
            "wall_seconds": round(run.wall_seconds, 3), "cells": cells}


def append_history(path: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Append one JSON line (a single write, so a concurrent reader sees whole lines)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
    return p


def gates_off(run: HilRun) -> list[str]:
    """One line per reason a latency gate was off (no baseline, baseline being written), with its cells counted.

    An absent baseline must be visible: a green run without one has compared no latency at all.
    """
    measured = [o for o in run.outcomes if o.gates]
    why: dict[str, int] = {}
    for o in measured:
        for g in o.gates:
            if g.name == "latency" and g.verdict == "off":
                why[g.message] = why.get(g.message, 0) + 1
    lines = []
    for msg, n in why.items():
        line = f"latency gate OFF for {n} of {len(measured)} measured cells ({msg.removeprefix('off: ')})"
        if msg == NO_BASELINE:
            line += ("; make the first baseline with `edgefold hil --matrix M --out DIR --update-baseline "
                     "--baseline FILE` and pass `--baseline FILE` to later runs")
        lines.append(line)
    return lines


def _num(v: Any, fmt: str = "{:,}") -> str:
    if isinstance(v, float) and v.is_integer() and fmt == "{:,}":
        v = int(v)  # counts arrive as medians (floats); 18,073,960 reads better than 18,073,960.0
    return fmt.format(v) if isinstance(v, int | float) and not isinstance(v, bool) else "–"


def _latency_text(res: dict[str, Any] | None) -> str:
    if not res:
        return "–"
    lat = res.get("latency") or {}
    v = lat.get("value")
    if not isinstance(v, int | float):
        return "–"
    s = fmt_latency(v, lat.get("unit", ""))
    return s + (" (est.)" if lat.get("kind") == "estimated" else "")


def junit_xml(run: HilRun) -> str:
    c = run.counts()
    suites = ET.Element("testsuites", name="edgefold-hil", tests=str(len(run.outcomes)), failures=str(c[FAILED]),
                        errors=str(c[ERROR] + c[PENDING]), skipped=str(c[SKIPPED]), time=f"{run.wall_seconds:.3f}")
    off = gates_off(run)
    by_target: dict[str, list[CellOutcome]] = {}
    for o in run.outcomes:
        by_target.setdefault(o.cell.target, []).append(o)
    for target, outs in by_target.items():
        cnt = {k: sum(o.status == k for o in outs) for k in (FAILED, ERROR, SKIPPED, PENDING)}
        suite = ET.SubElement(suites, "testsuite", name=f"hil.{target}", tests=str(len(outs)),
                              failures=str(cnt[FAILED]), errors=str(cnt[ERROR] + cnt[PENDING]),
                              skipped=str(cnt[SKIPPED]),
                              time=f"{sum((o.record or {}).get('wall_seconds') or 0 for o in outs):.3f}")
        props = ET.SubElement(suite, "properties")
        for k in ("edgefold_version", "commit", "date"):
            if run.provenance.get(k):
                ET.SubElement(props, "property", name=k, value=str(run.provenance[k]))
        for i, line in enumerate(off):  # a gate that was off must not read as checked in the CI's test view
            ET.SubElement(props, "property", name=f"gate_off.{i}", value=line)
        if not len(props):
            suite.remove(props)
        for o in outs:
            rec = o.record or {}
            tc = ET.SubElement(suite, "testcase", classname=f"hil.{target}.{o.cell.backend}", name=o.cell.id,
                               time=f"{rec.get('wall_seconds') or 0:.3f}")
            if o.status == FAILED:
                failed = [g for g in o.gates if not g.ok]
                el = ET.SubElement(tc, "failure", message=o.reason, type=",".join(g.name for g in failed))
                el.text = "\n".join(g.message for g in o.gates)
            elif o.status == ERROR:
                el = ET.SubElement(tc, "error", message=o.reason or "error", type="error")
                el.text = rec.get("stderr_tail", "")
            elif o.status == PENDING:
                ET.SubElement(tc, "error", message="not run: the matrix run was interrupted", type="interrupted")
            elif o.status == SKIPPED:
                ET.SubElement(tc, "skipped", message=o.reason)
            res = rec.get("result")
            if res:
                lines = [f"latency: {_latency_text(res)}", f"instructions: {_num(res.get('instructions'))}",
                         f"ram: {json.dumps(res.get('ram'))}", f"flash: {_num(res.get('flash'))}",
                         f"accuracy: {json.dumps(res.get('accuracy'))}",
                         f"output_crc_match: {res.get('output_crc_match')}"]
                lines += [f"gate {g.name}: {g.verdict}: {g.message.removeprefix('off: ')}" for g in o.gates]
                ET.SubElement(tc, "system-out").text = "\n".join(lines)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


_ICON = {PASSED: "✅", FAILED: "❌", ERROR: "💥", SKIPPED: "⏭️", PENDING: "⏸️"}


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def summary_markdown(run: HilRun) -> str:
    c = run.counts()
    head = (f"## edgefold HIL: {len(run.outcomes)} cells — {c[PASSED]} passed, {c[FAILED]} failed, "
            f"{c[ERROR]} errors, {c[SKIPPED]} skipped")
    head += f", {c[PENDING]} not run (interrupted)" if c[PENDING] else ""
    pv = run.provenance
    lines = [head, ""]
    if pv:
        lines += [f"edgefold {pv.get('edgefold_version', '?')} · commit `{short_commit(pv)}` · {pv.get('date', '?')} · "
                  f"baseline: {f'`{run.baseline_path}`' if run.baseline_path else 'none'}", ""]
    lines += [f"> ⚠️ {_md(line)}" for line in gates_off(run)] + ([""] if gates_off(run) else [])
    reused = sum(o.reused for o in run.outcomes)
    if reused:
        lines += [f"{reused} cells resumed from an earlier run (not redeployed).", ""]
    lines += ["| | cell | device | latency | instructions | RAM (B) | Flash (B) | agreement | int8 acc. | notes |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for o in run.outcomes:
        res = (o.record or {}).get("result") or {}
        acc = res.get("accuracy") or {}
        notes = o.reason if o.status != PASSED else "; ".join(
            ("latency gate " + g.message) if g.verdict == "off" else g.message for g in o.gates if g.name == "latency")
        dev = o.lane + (" (twin)" if res.get("emulated") else "")
        lines.append("| " + " | ".join([
            _ICON[o.status] + " " + o.status, f"`{o.cell.id}`", _md(dev),
            _latency_text(res), _num(res.get("instructions")), _num((res.get("ram") or {}).get("total")),
            _num(res.get("flash")), _num(acc.get("agreement"), "{:.1f}%"), _num(acc.get("int8"), "{:.1f}%"),
            _md(notes)]) + " |")
    lines += ["", "Latency marked *(est.)* is an estimate (instructions × CPI ÷ clock on an emulated twin), not a "
              "measurement on the board.", ""]
    return "\n".join(lines)
