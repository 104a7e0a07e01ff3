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
from edgefold.core.vocab import METHODS

REPORT_SCHEMA = "edgefold-report/1"
METHOD_ORDER = METHODS
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


def _method_rank(m: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m)


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
                yield r


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


def _ratio_label(r: float) -> str:
    return f"{r * 100:g}%"


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


def markdown(rows: list[Row], images: dict[str, str], title: str) -> str:
    out = [f"# {title}", "", LEGEND, ""]
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
    if images:
        out += ["## Plots", ""] + [f"![{name}]({fname})" for name, fname in images.items()] + [""]
    return "\n".join(out)


_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0 16px}
th,td{border:1px solid #ccc;padding:4px 10px;font-size:13px}
th{background:#f0f3f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.est{color:#8a5a00;font-style:italic}tr.dev td{border-top:2px solid #888}
p.legend{font-size:12px;color:#555;max-width:900px}img{max-width:100%;border:1px solid #eee;margin:6px 0}
"""


def html_page(rows: list[Row], images: dict[str, bytes], title: str) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1>",
             f"<p class=\"legend\">{e(LEGEND).replace('*(twin)*', '<i>(twin)</i>')}</p>"]
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
    if images:
        parts.append("<h2>Plots</h2>")
        for name, png in images.items():  # inline: the page must open with no other file and no network
            parts.append(f'<div><img alt="{e(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
                         "</div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------- plots


def _series_label(r: Row) -> str:
    return f"{r.model} {r.method}" + (f" {r.repair}" if r.repair != "none" else "") + f" [{r.backend}]"


def plot_device(rows: list[Row], target: str) -> bytes:
    """Runtime / RAM / Flash vs ratio for one device; estimated runtimes dashed with hollow markers."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = [r for r in rows if r.target == target]
    series: dict[str, list[Row]] = {}
    for r in rs:
        series.setdefault(_series_label(r), []).append(r)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for label, pts in series.items():
        pts.sort(key=lambda r: r.ratio)
        x = [r.ratio for r in pts]
        est = any(r.runtime_kind == "estimated" for r in pts)
        rt = [(r.ratio, r.runtime_ms) for r in pts if r.runtime_ms is not None]
        if rt:
            axes[0].plot(*zip(*rt, strict=True), marker="o", linestyle="--" if est else "-",
                         markerfacecolor="none" if est else None, label=label + (" (est.)" if est else ""))
        for ax, vals in ((axes[1], [r.ram for r in pts]), (axes[2], [r.flash for r in pts])):
            xy = [(xi, v / 1024) for xi, v in zip(x, vals, strict=True) if v is not None]
            if xy:
                ax.plot(*zip(*xy, strict=True), marker="o", label=label)
    twin = " (twin)" if rs and rs[0].emulated else ""
    for ax, name in zip(axes, ("runtime (ms)", "RAM (KB)", "Flash (KB)"), strict=True):
        ax.set_xlabel("compression ratio")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{target}{twin}: runtime, RAM and Flash vs ratio")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def plot_accuracy(rows: list[Row]) -> bytes | None:
    """int8 accuracy vs ratio, one panel per model, one line per method (fold vs mag1 vs mag2)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r.model for r in rows if r.acc_int8 is not None})
    if not models:
        return None
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        lines: dict[tuple[str, str], dict[float, float]] = {}
        for r in rows:
            if r.model == model and r.acc_int8 is not None:
                lines.setdefault((r.method, r.repair), {}).setdefault(r.ratio, r.acc_int8)
        for (method, repair), pts in sorted(lines.items(), key=lambda kv: (_method_rank(kv[0][0]), kv[0][1])):
            xs = sorted(pts)
            ax.plot(xs, [pts[x] for x in xs], marker="o", label=f"{method}" + (f" ({repair})" if repair else ""))
        ax.set_title(model)
        ax.set_xlabel("compression ratio")
        ax.set_ylabel("int8 accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    methods = sorted({r.method for r in rows if r.acc_int8 is not None}, key=_method_rank)
    fig.suptitle("int8 accuracy vs ratio: " + " vs ".join(methods))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------- entry


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)


def make_report(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                title: str = "edgefold device report") -> dict[str, Path]:
    """Write report.md, report.html, report.json and the PNG plots into out_dir; return their paths."""
    rows = collect(inputs)
    out = ensure_dir(out_dir)
    images: dict[str, bytes] = {}
    for target in sorted({r.target for r in rows}):
        images[f"device-{_slug(target)}.png"] = plot_device(rows, target)
    acc = plot_accuracy(rows)
    if acc is not None:
        images["accuracy.png"] = acc
    paths: dict[str, Path] = {}
    for name, png in images.items():
        paths[name] = write_bytes(out / name, png)
    paths["markdown"] = write_text(out / "report.md", markdown(rows, {n: n for n in images}, title))
    paths["html"] = write_text(out / "report.html", html_page(rows, images, title))
    paths["json"] = write_json(out / "report.json", {"schema": REPORT_SCHEMA, "rows": [r.__dict__ for r in rows]})
    return paths
