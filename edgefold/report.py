"""Device report: deploy results -> the seeds' Table 2 layout (devices x sparsity x runtime/RAM/Flash) as Markdown and
a self-contained HTML page, plus PNG plots (latency/RAM/Flash vs ratio per device, accuracy vs ratio per method).

Inputs are `edgefold hil` output folders (hil.json) and `edgefold deploy` output folders (result.json, searched
recursively). Every runtime says whether it was measured or estimated; emulated targets are marked as twins.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefold.core.artifacts import DeployResult
from edgefold.core.errors import EdgefoldError
from edgefold.core.fsutil import ensure_dir, write_bytes, write_json, write_text
from edgefold.core.provenance import provenance, short_commit
from edgefold.report_plots import (
    _method_rank,
    _ratio_label,
    plot_accuracy,
    plot_device,
    plot_history,
)
from edgefold.report_plots import accuracy_figure as accuracy_figure  # the figures, for callers of edgefold.report
from edgefold.report_plots import device_figure as device_figure

REPORT_SCHEMA = "edgefold-report/1"
EST_MARK = "≈"


@dataclass
class Row:
    """One deployment's figures, normalised (runtime in ms, sizes in bytes)."""

    target: str
    device: str
    emulated: bool
    backend: str
    model: str
    method: str
    ratio: float
    repair: str
    runtime_ms: float | None
    runtime_kind: str  # measured | estimated
    instructions: float | None
    ram: int | None
    flash: int | None
    acc_float: float | None
    acc_int8: float | None
    agreement: float | None
    status: str = "ok"  # for hil cells: passed | failed
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    cell_id: str = ""  # hil cells: the matrix cell (also its baseline key)
    gates: list[dict[str, Any]] = field(default_factory=list)  # hil cells: name, ok, message, applied, verdict

    @property
    def group(self) -> tuple[str, str, str]:
        return (self.model, self.method, self.repair)

    @property
    def device_label(self) -> str:
        return f"{self.target} (twin)" if self.emulated else self.target


def _f(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def row_from_result(res: dict[str, Any] | DeployResult, source: str, status: str = "ok") -> Row | None:
    """The row of one edgefold-result/1 document; None for anything else (a foreign or truncated file)."""
    if not isinstance(res, DeployResult):
        try:
            res = DeployResult.from_dict(res, source)
        except EdgefoldError:
            return None
    lat = res.latency
    v, unit = _f(lat.get("value")), lat.get("unit")
    ms = None if v is None else {"ms": v, "us": v / 1000.0, "s": v * 1000.0}.get(unit)
    ram = res.ram or {}
    acc = res.accuracy or {}
    est = res.estimate or {}
    kind = lat.get("kind") or "measured"
    if ms is None and _f(est.get("latency_ms")) is not None:  # only an estimate was possible
        ms, kind = float(est["latency_ms"]), "estimated"
    return Row(target=res.target, device=res.device or res.target, emulated=res.emulated,
               backend=res.backend or "?", model=res.model or "?", method=res.method or "?",
               ratio=float(res.ratio or 0.0), repair=res.repair or "none", runtime_ms=ms, runtime_kind=kind,
               instructions=_f(res.instructions),
               ram=int(ram["total"]) if _f(ram.get("total")) is not None else None,
               flash=res.flash, acc_float=_f(acc.get("float")), acc_int8=_f(acc.get("int8")),
               agreement=_f(acc.get("agreement")), status=status, source=source,
               extra={"estimate": est or None, "per_run": lat.get("per_run"), "runs": lat.get("runs")})


def collect(paths: Iterable[str | os.PathLike]) -> list[Row]:
    """Rows from hil.json / result.json under each path; a later path's row replaces an earlier one's."""
    rows: dict[tuple, Row] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise EdgefoldError(f"report input {p} not found")
        found = list(_rows_in(p))
        if not found:
            raise EdgefoldError(f"no results in {p} (expected hil.json from `edgefold hil` or result.json files "
                                f"from `edgefold deploy`)")
        for r in found:
            rows[(r.target, r.backend, r.model, r.method, r.ratio, r.repair)] = r
    return sorted(rows.values(), key=lambda r: (r.model, _method_rank(r.method), r.repair, r.backend, r.target,
                                                r.ratio))


def _read_json(p: Path) -> Any:
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgefoldError(f"cannot read {p}: {e}") from None


def _rows_in(p: Path) -> Iterable[Row]:
    if p.is_file():
        doc = _read_json(p)
        if isinstance(doc, dict) and "cells" in doc:
            yield from _rows_from_hil(doc, p)
        else:
            r = row_from_result(doc, str(p))
            if r:
                yield r
        return
    if (p / "hil.json").is_file():
        yield from _rows_from_hil(_read_json(p / "hil.json"), p / "hil.json")
        return
    for f in sorted(p.rglob("result.json")):
        r = row_from_result(_read_json(f), str(f))
        if r:
            yield r


def _rows_from_hil(doc: dict[str, Any], src: Path) -> Iterable[Row]:
    for c in doc.get("cells", []):
        if c.get("result") and not (c.get("params") or {}).get("fault"):
            r = row_from_result(c["result"], f"{src}#{c.get('id')}", status=c.get("status", "ok"))
            if r:
                r.cell_id, r.gates = str(c.get("id", "")), [_gate(g) for g in c.get("gates") or []]
                yield r


def _gate(g: dict[str, Any]) -> dict[str, Any]:
    """A stored gate result with its verdict (hil.json files from before verdicts were written lack it)."""
    v = g.get("verdict") or ("FAIL" if not g.get("ok") else "ok" if g.get("applied", True) else "off")
    return {**g, "verdict": v}


# --------------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One `edgefold hil` run: from an input's hil.json (the run shown) or a history.jsonl line (a trend point)."""

    run_id: str
    provenance: dict[str, Any]
    counts: dict[str, int]
    baseline: str | None
    gates_off: list[str]
    notices: list[str]
    cells: dict[str, dict[str, Any]]  # cell id -> status, latency_ms, instructions, ram, flash, int8, gates
    source: str

    @property
    def date(self) -> str:
        return str(self.provenance.get("date") or "")


def _hil_docs(paths: Iterable[Path]) -> Iterable[tuple[Path, dict[str, Any]]]:
    for p in paths:
        f = p / "hil.json" if p.is_dir() else p
        if f.name == "hil.json" and f.is_file():
            doc = _read_json(f)
            if isinstance(doc, dict) and "cells" in doc:
                yield f, doc


def _ms(lat: dict[str, Any]) -> float | None:
    v = _f(lat.get("value"))
    return None if v is None else {"ms": v, "us": v / 1000.0, "s": v * 1000.0}.get(lat.get("unit", ""))


def run_from_hil(doc: dict[str, Any], src: Path) -> Run:
    cells: dict[str, dict[str, Any]] = {}
    for c in doc.get("cells", []):
        res = c.get("result") or {}
        acc = res.get("accuracy") or {}
        cells[str(c.get("id"))] = {
            "status": c.get("status"), "latency_ms": _ms(res.get("latency") or {}),
            "latency_kind": (res.get("latency") or {}).get("kind"), "instructions": _f(res.get("instructions")),
            "ram": (res.get("ram") or {}).get("total"), "flash": res.get("flash"), "int8": acc.get("int8"),
            "agreement": acc.get("agreement"), "emulated": res.get("emulated"),
            "fault": (c.get("params") or {}).get("fault"),
            "gates": {g.get("name"): _gate(g)["verdict"] for g in c.get("gates") or []}}
    return Run(str(doc.get("run_id") or ""), dict(doc.get("provenance") or {}), dict(doc.get("counts") or {}),
               doc.get("baseline"), list(doc.get("gates_off") or []), list(doc.get("notices") or []), cells, str(src))


def collect_runs(paths: Iterable[str | os.PathLike]) -> list[Run]:
    """The hil runs among the inputs (deploy folders have none)."""
    return [run_from_hil(doc, f) for f, doc in _hil_docs(map(Path, paths))]


HISTORY_SCHEMA = "edgefold-hil-history/1"


def load_history(paths: Iterable[str | os.PathLike], extra: Iterable[str | os.PathLike] = ()) -> list[Run]:
    """Runs recorded in history.jsonl (next to each input's hil.json, and the `extra` files), oldest first; a run
    recorded twice counts once. A line that is not a history record is an error naming the file and line."""
    files: list[Path] = []
    for p in map(Path, paths):
        d = p if p.is_dir() else p.parent
        if (d / "history.jsonl").is_file() and (d / "hil.json").is_file():
            files.append(d / "history.jsonl")
    for e in map(Path, extra):
        if not e.is_file():
            raise EdgefoldError(f"history file {e} not found")
        files.append(e)
    runs: dict[str, Run] = {}
    for f in dict.fromkeys(p.resolve() for p in files):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise EdgefoldError(f"{f}:{i}: not JSON ({e})") from None
            if not isinstance(d, dict) or d.get("schema") != HISTORY_SCHEMA:
                raise EdgefoldError(f"{f}:{i}: not an {HISTORY_SCHEMA} record (history written by `edgefold hil`)")
            runs[str(d.get("run_id"))] = Run(str(d.get("run_id")), dict(d.get("provenance") or {}),
                                             dict(d.get("counts") or {}), d.get("baseline"),
                                             list(d.get("gates_off") or []), [], dict(d.get("cells") or {}),
                                             f"{f}:{i}")
    return sorted(runs.values(), key=lambda r: r.date)


BASELINE_SCHEMA = "edgefold-hil-baseline/1"


def load_baseline(runs: list[Run], path: str | os.PathLike | None) -> tuple[Path | None, dict[str, Any], str]:
    """(file, cells, note): `path`, else the baseline the hil run was given (as written in hil.json: relative to the
    folder `edgefold hil` ran in, tried also next to hil.json). note says why there are no deltas, if there are none."""
    cands: list[Path] = []
    if path is not None:
        cands = [Path(path)]
        if not cands[0].is_file():
            raise EdgefoldError(f"baseline {path} not found")
    else:
        named = [r for r in runs if r.baseline]
        if not named:
            return None, {}, ("no baseline: the hil run had none, so its latency gate was OFF"
                              if runs else "no hil run among the inputs")
        b = Path(str(named[0].baseline))
        cands = [b] if b.is_absolute() else [b, Path(named[0].source).parent / b]
    for c in cands:
        if c.is_file():
            doc = _read_json(c)
            if not isinstance(doc, dict) or doc.get("schema") != BASELINE_SCHEMA:
                raise EdgefoldError(f"baseline {c}: not an {BASELINE_SCHEMA} file")
            return c, dict(doc.get("cells") or {}), ""
    return None, {}, f"baseline {cands[0]} (named in hil.json) not found from here: pass --baseline FILE"


def baseline_deltas(rows: list[Row], base: dict[str, Any]) -> list[dict[str, Any]]:
    """Per hil cell with a baseline entry: latency (instructions on twins, as the gate compares), RAM, Flash as
    (baseline, now, change in %)."""
    out = []
    for r in rows:
        b = base.get(r.cell_id) if r.cell_id else None
        if not b:
            continue
        if r.instructions is not None and _f(b.get("instructions")) is not None:
            lat = ("instructions", float(b["instructions"]), r.instructions)
        else:
            lat = ("latency (ms)", _ms(b.get("latency") or {}), r.runtime_ms)
        d: dict[str, Any] = {"cell": r.cell_id, "status": r.status, "latency_metric": lat[0]}
        for name, bv, nv in (("latency", lat[1], lat[2]), ("ram", _f(b.get("ram_total")), r.ram),
                             ("flash", _f(b.get("flash")), r.flash)):
            d[name] = (bv, nv, None if bv in (None, 0) or nv is None else (nv / bv - 1.0) * 100.0)
        out.append(d)
    return out


# --------------------------------------------------------------------------------------------------- tables


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 0.1 else f"{v:.3g}"


def fmt_kb(v: int | None) -> str:
    return "–" if v is None else f"{v / 1024:,.1f}"


def fmt_pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1f}"


def _ratios(rows: list[Row]) -> list[float]:
    return sorted({r.ratio for r in rows})


def device_tables(rows: list[Row]) -> list[dict[str, Any]]:
    """Table 2 layout per (model, method, repair): rows = device (and backend) x {runtime, RAM, Flash},
    columns = sparsity (ratio)."""
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.group, []).append(r)
    tables = []
    for (model, method, repair), rs in groups.items():
        ratios = _ratios(rs)
        body = []
        for target, backend in sorted({(r.target, r.backend) for r in rs}):
            by_ratio = {r.ratio: r for r in rs if r.target == target and r.backend == backend}
            label = f"{next(iter(by_ratio.values())).device_label} · {backend}"
            rt = []
            for q in ratios:
                r = by_ratio.get(q)
                if r is None or r.runtime_ms is None:
                    rt.append(("–", False))
                else:
                    rt.append((fmt_ms(r.runtime_ms), r.runtime_kind == "estimated"))
            body.append((label, "runtime (ms)", rt))
            body.append(("", "RAM (KB)", [(fmt_kb(by_ratio[q].ram) if q in by_ratio else "–", False) for q in ratios]))
            body.append(("", "Flash (KB)",
                         [(fmt_kb(by_ratio[q].flash) if q in by_ratio else "–", False) for q in ratios]))
        tables.append({"title": f"{model} · {method} · repair {repair}",
                       "ratios": ratios, "rows": body})
    return tables


def accuracy_table(rows: list[Row]) -> dict[str, Any]:
    """int8 accuracy (float accuracy, agreement) per (model, method, repair) x ratio; one device suffices."""
    ratios = _ratios(rows)
    cells: dict[tuple, dict[float, Row]] = {}
    # accuracy is the host's evaluation of the exported model: one row per ratio, preferring one with int8 figures
    for r in sorted(rows, key=lambda r: r.acc_int8 is None):
        if r.acc_int8 is None and r.acc_float is None:
            continue
        cells.setdefault((r.model, r.method, r.repair), {}).setdefault(r.ratio, r)
    body = []
    for (model, method, repair), by_ratio in sorted(cells.items(), key=lambda kv: (kv[0][0], _method_rank(kv[0][1]),
                                                                                  kv[0][2])):
        vals = []
        for q in ratios:
            r = by_ratio.get(q)
            vals.append("–" if r is None else
                        f"{fmt_pct(r.acc_int8)} ({fmt_pct(r.acc_float)} / {fmt_pct(r.agreement)})")
        body.append((model, method, repair, vals))
    return {"ratios": ratios, "rows": body}


def _mark(text: str, est: bool) -> str:
    return f"{EST_MARK}{text}" if est and text != "–" else text


LEGEND = (f"{EST_MARK} = estimated runtime (instructions counted on an emulated twin × CPI ÷ the board's clock); "
          "unmarked runtimes are measured (on the device, or on this host for a twin). Targets marked *(twin)* are "
          "emulated. RAM: static data + arena + stack on MCUs, the runner's peak RSS on Linux targets; "
          "Flash: program + model on MCUs, the stored model on Linux targets. KB = 1024 bytes.")


@dataclass
class Context:
    """What the report shows besides the device tables: its own provenance, the hil runs, the baseline, history."""

    provenance: dict[str, Any] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)
    history: list[Run] = field(default_factory=list)
    baseline_path: Path | None = None
    baseline_note: str = ""
    deltas: list[dict[str, Any]] = field(default_factory=list)


def _prov_line(p: dict[str, Any]) -> str:
    return (f"{p.get('date') or '–'} · edgefold {p.get('edgefold_version') or '?'} · commit "
            f"{short_commit(p)}")


def _fmt_num(v: Any) -> str:
    f = _f(v)
    return "–" if f is None else f"{f:,.0f}" if abs(f) >= 100 else f"{f:.3g}"


def _fmt_delta(d: float | None) -> str:
    return "–" if d is None else f"{d:+.1f}%"


GATE_ORDER = ("agreement", "accuracy", "accuracy_drop", "accuracy_kept", "output_crc", "ram", "flash", "latency")


def _gate_names(rows: list[Row]) -> list[str]:
    names = {g["name"] for r in rows for g in r.gates}
    return [n for n in GATE_ORDER if n in names] + sorted(names - set(GATE_ORDER))


def _counts_text(c: dict[str, int]) -> str:
    return ", ".join(f"{c.get(k, 0)} {k}" for k in ("passed", "failed", "error", "skipped") if c.get(k)) or "–"


def markdown(rows: list[Row], images: dict[str, str], title: str, ctx: Context | None = None) -> str:
    ctx = ctx or Context()
    out = [f"# {title}", ""]
    if ctx.provenance:
        out += [f"Report made {_prov_line(ctx.provenance)}.", ""]
    out += [LEGEND, ""]
    if ctx.runs:
        out += ["## Runs", "", "| run | date | edgefold | commit | baseline | cells |", "|---|---|---|---|---|---|"]
        for r in ctx.runs:
            out.append(f"| {r.run_id} | {r.provenance.get('date') or '–'} | "
                       f"{r.provenance.get('edgefold_version') or '–'} | {short_commit(r.provenance)} | "
                       f"{r.baseline or 'none: latency gate OFF'} | {_counts_text(r.counts)} |")
        out += [""] + [f"> ⚠️ {w}" for r in ctx.runs for w in r.gates_off + r.notices] + [""]
    gated = [r for r in rows if r.gates]
    if gated:
        names = _gate_names(gated)
        out += ["## Gate verdicts", "", "| cell | status | " + " | ".join(names) + " |",
                "|---|---|" + "---|" * len(names)]
        for r in gated:
            v = {g["name"]: g["verdict"] for g in r.gates}
            out.append(f"| `{r.cell_id}` | {r.status} | " + " | ".join(v.get(n, "–") for n in names) + " |")
        out.append("")
    if ctx.runs:
        out += ["## Baseline deltas", ""]
        if ctx.deltas:
            out += [f"Against `{ctx.baseline_path}`.", "", "| cell | latency metric | baseline | now | Δ | RAM Δ | "
                    "Flash Δ |", "|---|---|---:|---:|---:|---:|---:|"]
            for d in ctx.deltas:
                b, n, dl = d["latency"]
                out.append(f"| `{d['cell']}` | {d['latency_metric']} | {_fmt_num(b)} | {_fmt_num(n)} | "
                           f"{_fmt_delta(dl)} | {_fmt_delta(d['ram'][2])} | {_fmt_delta(d['flash'][2])} |")
        else:
            out.append(ctx.baseline_note or "no baseline entries for these cells")
        out.append("")
    for t in device_tables(rows):
        head = "| device | metric | " + " | ".join(_ratio_label(q) for q in t["ratios"]) + " |"
        out += [f"## {t['title']}", "", head, "|---|---|" + "---:|" * len(t["ratios"])]
        for dev, metric, vals in t["rows"]:
            out.append(f"| {dev} | {metric} | " + " | ".join(_mark(v, e) for v, e in vals) + " |")
        out.append("")
    acc = accuracy_table(rows)
    if acc["rows"]:
        out += ["## Accuracy vs ratio", "", "int8 accuracy % (float accuracy % / int8-vs-float agreement %)", "",
                "| model | method | repair | " + " | ".join(_ratio_label(q) for q in acc["ratios"]) + " |",
                "|---|---|---|" + "---:|" * len(acc["ratios"])]
        for model, method, repair, vals in acc["rows"]:
            out.append(f"| {model} | {method} | {repair} | " + " | ".join(vals) + " |")
        out.append("")
    if ctx.runs or ctx.history:
        out += ["## History", ""]
        if ctx.history:
            out += ["| date | run | edgefold | commit | cells | gates off |", "|---|---|---|---|---|---|"]
            for h in ctx.history:
                out.append(f"| {h.provenance.get('date') or '–'} | {h.run_id} | "
                           f"{h.provenance.get('edgefold_version') or '–'} | {short_commit(h.provenance)} | "
                           f"{_counts_text(h.counts)} | {len(h.gates_off) and 'latency' or '–'} |")
        else:
            out.append("No history.jsonl next to the hil run: trends appear once runs are recorded.")
        out += [""] + [f"![{n}]({f})" for n, f in images.items() if n.startswith("history-")] + [""]
    plots = {n: f for n, f in images.items() if not n.startswith("history-")}
    if plots:
        out += ["## Plots", ""] + [f"![{name}]({fname})" for name, fname in plots.items()] + [""]
    return "\n".join(out)


_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0 16px}
th,td{border:1px solid #ccc;padding:4px 10px;font-size:13px}
th{background:#f0f3f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.est{color:#8a5a00;font-style:italic}tr.dev td{border-top:2px solid #888}
p.legend,p.meta{font-size:12px;color:#555;max-width:900px}img{max-width:100%;border:1px solid #eee;margin:6px 0}
p.warn{background:#fff4d6;border-left:4px solid #e0a000;padding:6px 10px;font-size:13px;max-width:900px}
td.v-ok{color:#0a7a28;font-weight:600}td.v-FAIL{color:#fff;background:#c0392b;font-weight:700}
td.v-off{color:#666;background:#eee;font-style:italic}td.up{color:#b00020}td.down{color:#0a7a28}
span.passed{color:#0a7a28}span.failed,span.error{color:#b00020;font-weight:700}span.skipped{color:#777}
"""


_NOT_SET = '<td title="not configured for this cell">–</td>'


def html_page(rows: list[Row], images: dict[str, bytes], title: str, ctx: Context | None = None) -> str:
    ctx = ctx or Context()
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>"]
    if ctx.provenance:
        parts.append(f'<p class="meta" id="provenance">Report made {e(_prov_line(ctx.provenance))}</p>')
    parts.append(f"<p class=\"legend\">{e(LEGEND).replace('*(twin)*', '<i>(twin)</i>')}</p>")
    if ctx.runs:
        parts.append('<section id="runs"><h2>Runs</h2><table><thead><tr><th>run</th><th>date</th><th>edgefold</th>'
                     "<th>commit</th><th>baseline</th><th>cells</th></tr></thead><tbody>")
        for r in ctx.runs:
            base = e(r.baseline) if r.baseline else "<b>none: latency gate OFF</b>"
            parts.append(f"<tr><td>{e(r.run_id)}</td><td>{e(r.provenance.get('date') or '–')}</td>"
                         f"<td>{e(str(r.provenance.get('edgefold_version') or '–'))}</td>"
                         f"<td><code>{e(short_commit(r.provenance))}</code></td><td>{base}</td>"
                         f"<td>{e(_counts_text(r.counts))}</td></tr>")
        parts.append("</tbody></table>")
        parts += [f'<p class="warn">{e(w)}</p>' for r in ctx.runs for w in r.gates_off + r.notices]
        parts.append("</section>")
    gated = [r for r in rows if r.gates]
    if gated:
        names = _gate_names(gated)
        parts.append('<section id="gates"><h2>Gate verdicts</h2><p class="legend">ok = checked and met; FAIL = '
                     "checked and missed; off = not checked (the reason is in the notes)</p><table><thead><tr>"
                     "<th>cell</th><th>status</th>" + "".join(f"<th>{e(n)}</th>" for n in names)
                     + "<th>notes</th></tr></thead><tbody>")
        for r in gated:
            by = {g["name"]: g for g in r.gates}
            cells = "".join(f'<td class="v-{e(by[n]["verdict"])}" title="{e(str(by[n].get("message", "")))}">'
                            f'{e(by[n]["verdict"])}</td>' if n in by else _NOT_SET for n in names)
            notes = "; ".join(str(g.get("message", "")) for g in r.gates if g["verdict"] != "ok")
            parts.append(f'<tr><td><code>{e(r.cell_id)}</code></td><td><span class="{e(r.status)}">{e(r.status)}'
                         f"</span></td>{cells}<td>{e(notes)}</td></tr>")
        parts.append("</tbody></table></section>")
    if ctx.runs:
        parts.append('<section id="baseline"><h2>Baseline deltas</h2>')
        if ctx.deltas:
            parts.append(f'<p class="legend">Against {e(str(ctx.baseline_path))}: the latency gate compares '
                         "instruction counts on the twins (deterministic), times elsewhere.</p><table><thead><tr>"
                         "<th>cell</th><th>latency metric</th><th>baseline</th><th>now</th><th>Δ</th><th>RAM Δ</th>"
                         "<th>Flash Δ</th></tr></thead><tbody>")
            for d in ctx.deltas:
                b, n, dl = d["latency"]

                def td(x: float | None) -> str:
                    cls = "" if x is None or abs(x) < 0.05 else " up" if x > 0 else " down"
                    return f'<td class="num{cls}">{e(_fmt_delta(x))}</td>'

                parts.append(f"<tr><td><code>{e(d['cell'])}</code></td><td>{e(d['latency_metric'])}</td>"
                             f'<td class="num">{e(_fmt_num(b))}</td><td class="num">{e(_fmt_num(n))}</td>'
                             f"{td(dl)}{td(d['ram'][2])}{td(d['flash'][2])}</tr>")
            parts.append("</tbody></table>")
        else:
            parts.append(f'<p class="warn">{e(ctx.baseline_note or "no baseline entries for these cells")}</p>')
        parts.append("</section>")
    parts.append('<section id="tables">')
    for t in device_tables(rows):
        parts.append(f"<h2>{e(t['title'])}</h2><table><thead><tr><th>device</th><th>metric</th>"
                     + "".join(f"<th>{_ratio_label(q)}</th>" for q in t["ratios"]) + "</tr></thead><tbody>")
        for dev, metric, vals in t["rows"]:
            cls = ' class="dev"' if dev else ""
            cells = "".join(f'<td class="num{" est" if est else ""}">{e(_mark(v, est))}</td>' for v, est in vals)
            parts.append(f"<tr{cls}><td>{e(dev)}</td><td>{e(metric)}</td>{cells}</tr>")
        parts.append("</tbody></table>")
    acc = accuracy_table(rows)
    if acc["rows"]:
        parts.append("<h2>Accuracy vs ratio</h2><p class=\"legend\">int8 accuracy % (float accuracy % / "
                     "int8-vs-float agreement %)</p><table><thead><tr><th>model</th><th>method</th><th>repair</th>"
                     + "".join(f"<th>{_ratio_label(q)}</th>" for q in acc["ratios"]) + "</tr></thead><tbody>")
        for model, method, repair, vals in acc["rows"]:
            parts.append(f"<tr><td>{e(model)}</td><td>{e(method)}</td><td>{e(repair)}</td>"
                         + "".join(f'<td class="num">{e(v)}</td>' for v in vals) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("</section>")

    def img(name: str, png: bytes) -> str:  # inline: the page must open with no other file and no network
        return f'<div><img alt="{e(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></div>'

    if ctx.runs or ctx.history:
        parts.append('<section id="history"><h2>History</h2>')
        if ctx.history:
            parts.append(f'<p class="legend">{len(ctx.history)} runs recorded in history.jsonl, oldest first.</p>'
                         "<table><thead><tr><th>date</th><th>run</th><th>edgefold</th><th>commit</th><th>cells</th>"
                         "<th>gates off</th></tr></thead><tbody>")
            for h in ctx.history:
                parts.append(f"<tr><td>{e(h.provenance.get('date') or '–')}</td><td>{e(h.run_id)}</td>"
                             f"<td>{e(str(h.provenance.get('edgefold_version') or '–'))}</td>"
                             f"<td><code>{e(short_commit(h.provenance))}</code></td><td>{e(_counts_text(h.counts))}"
                             f"</td><td>{e('; '.join(h.gates_off) or '–')}</td></tr>")
            parts.append("</tbody></table>")
        else:
            parts.append('<p class="warn">No history.jsonl next to the hil run: trends appear once runs are '
                         "recorded.</p>")
        parts += [img(n, png) for n, png in images.items() if n.startswith("history-")]
        parts.append("</section>")
    plots = {n: png for n, png in images.items() if not n.startswith("history-")}
    if plots:
        parts.append('<section id="plots"><h2>Plots</h2>')
        parts += [img(n, png) for n, png in plots.items()]
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------- entry


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)


def make_report(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                title: str = "edgefold device report", history: Iterable[str | os.PathLike] = (),
                baseline: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write report.md, report.html, report.json and the PNG plots into out_dir; return their paths.

    `history`: extra history.jsonl files (each hil input's own DIR/history.jsonl is read anyway); `baseline`: the
    baseline to show deltas against (default: the one the hil run was given)."""
    inputs = [Path(p) for p in inputs]
    rows = collect(inputs)
    runs = collect_runs(inputs)
    hist = load_history(inputs, list(history))
    bpath, bcells, note = load_baseline(runs, baseline)
    ctx = Context(provenance(), runs, hist, bpath, note, baseline_deltas(rows, bcells) if bcells else [])
    if bcells and not ctx.deltas:
        ctx.baseline_note = f"baseline {bpath} has no entry for these cells"
    out = ensure_dir(out_dir)
    images: dict[str, bytes] = {}
    for target in sorted({r.target for r in rows}):
        images[f"device-{_slug(target)}.png"] = plot_device(rows, target)
    acc = plot_accuracy(rows)
    if acc is not None:
        images["accuracy.png"] = acc
    if hist:
        for target in sorted({c.split(".")[0] for h in hist for c in h.cells}):
            png = plot_history(hist, target)
            if png is not None:
                images[f"history-{_slug(target)}.png"] = png
    paths: dict[str, Path] = {}
    for name, png in images.items():
        paths[name] = write_bytes(out / name, png)
    paths["markdown"] = write_text(out / "report.md", markdown(rows, {n: n for n in images}, title, ctx))
    paths["html"] = write_text(out / "report.html", html_page(rows, images, title, ctx))
    paths["json"] = write_json(out / "report.json", {"schema": REPORT_SCHEMA, "provenance": ctx.provenance,
                                                     "baseline": str(bpath) if bpath else None,
                                                     "deltas": ctx.deltas, "runs": len(runs),
                                                     "history_runs": len(hist),
                                                     "rows": [r.__dict__ for r in rows]})
    return paths
