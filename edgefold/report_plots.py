"""The report's figures (matplotlib, headless): per device Flash / RAM / latency against the compression ratio, the
accuracy against the ratio, and the latency history over runs."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from edgefold.core.provenance import short_commit
from edgefold.core.vocab import METHODS

if TYPE_CHECKING:
    from edgefold.report import Row, Run

METHOD_ORDER = METHODS


def _method_rank(m: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m)


def _ratio_label(r: float) -> str:
    return f"{r * 100:g}%"



# One style per method so that lines lying on top of each other (fold and mag1 have the same RAM and Flash at a
# given ratio) stay distinguishable: marker, line style and marker size all differ.
_METHOD_STYLE = {"fold": ("o", "-", 9), "mag1": ("s", "--", 6), "mag2": ("^", ":", 5)}
_OTHER_STYLES = [("D", "-.", 5), ("v", (0, (1, 1)), 5), ("P", (0, (5, 1)), 5)]


def _style(method: str, i: int) -> tuple[Any, Any, int]:
    return _METHOD_STYLE.get(method) or _OTHER_STYLES[i % len(_OTHER_STYLES)]


def _series_label(r: Row) -> str:
    return f"{r.model} {r.method}" + (f" {r.repair}" if r.repair != "none" else "") + f" [{r.backend}]"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ratio_axis(ax: Any, ratios: list[float]) -> None:
    """Always 0 .. at least 50 %, ticks at the measured ratios: a single ratio is a point on a sensible axis, not
    the middle of a ±2 % one."""
    hi = max([0.5, *ratios])
    ax.set_xlim(-0.04 - 0.02 * hi, hi + 0.04 + 0.02 * hi)
    ticks = sorted(set(ratios) | {0.0})
    ax.set_xticks(ticks, [_ratio_label(t) for t in ticks])
    ax.set_xlabel("compression ratio (channels removed)")


def _y_from_zero(ax: Any, vals: list[float], top: float | None = None) -> None:
    hi = max(vals, default=0.0)
    ax.set_ylim(0, top if top is not None else (hi * 1.25 if hi > 0 else 1.0))


def _label_points(ax: Any, xs: list[float], ys: list[float], fmt: str) -> None:
    for x, y in zip(xs, ys, strict=True):
        ax.annotate(fmt.format(y), (x, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)


def _finish(fig: Any, axes: Any, title: str, ncol: int, bottom: float) -> None:
    """The first panel's legend below the panels (room for each extra row of entries), the title above."""
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(ncol, len(handles)), fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, bottom + 0.04 * ((len(handles) - 1) // ncol), 1, 1))


def _png(fig: Any) -> bytes:

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    _plt().close(fig)
    return buf.getvalue()


def plot_device(rows: list[Row], target: str) -> bytes:
    """Runtime / RAM / Flash vs ratio for one device (device_figure) as PNG."""
    return _png(device_figure(rows, target))


def device_figure(rows: list[Row], target: str) -> Any:
    """Runtime / RAM / Flash vs ratio for one device; estimated runtimes with hollow markers; the points labelled
    when a series has a single point (or is the only series), one legend under the panels."""
    plt = _plt()
    rs = [r for r in rows if r.target == target]
    series: dict[str, list[Row]] = {}
    for r in rs:
        series.setdefault(_series_label(r), []).append(r)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    ratios = sorted({r.ratio for r in rs})
    values: list[list[float]] = [[], [], []]
    for i, (label, pts) in enumerate(series.items()):
        pts.sort(key=lambda r: r.ratio)
        marker, ls, size = _style(pts[0].method, i)
        est = any(r.runtime_kind == "estimated" for r in pts)
        colour = f"C{i % 10}"
        for k, (ax, get, fmt) in enumerate(((axes[0], lambda r: r.runtime_ms, "{:,.3g}"),
                                            (axes[1], lambda r: None if r.ram is None else r.ram / 1024, "{:,.1f}"),
                                            (axes[2], lambda r: None if r.flash is None else r.flash / 1024,
                                             "{:,.1f}"))):
            xy = [(r.ratio, get(r)) for r in pts if get(r) is not None]
            if not xy:
                continue
            xs, ys = [x for x, _ in xy], [float(y) for _, y in xy]
            hollow = est and k == 0
            ax.plot(xs, ys, marker=marker, linestyle=ls, markersize=size, color=colour, alpha=0.85,
                    markerfacecolor="none" if hollow else colour, markeredgewidth=1.5,
                    label=label + (" (est.)" if est and k == 0 else "") if k == 0 else None)
            values[k] += ys
            if len(xs) == 1 or len(series) == 1:
                _label_points(ax, xs, ys, fmt)
    twin = " (twin)" if rs and rs[0].emulated else ""
    for k, (ax, name) in enumerate(zip(axes, ("runtime (ms)", "RAM (KB)", "Flash (KB)"), strict=True)):
        _ratio_axis(ax, ratios)
        _y_from_zero(ax, values[k])
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    _finish(fig, axes, f"{target}{twin}: runtime, RAM and Flash vs ratio", ncol=4, bottom=0.06)
    return fig


def plot_accuracy(rows: list[Row]) -> bytes | None:
    """accuracy_figure as PNG; None without int8 accuracies."""
    fig = accuracy_figure(rows)
    return None if fig is None else _png(fig)


def accuracy_figure(rows: list[Row]) -> Any:
    """int8 accuracy vs ratio, one panel per model, one line per method (fold vs mag1 vs mag2), on a 0-100 % axis."""
    plt = _plt()
    models = sorted({r.model for r in rows if r.acc_int8 is not None})
    if not models:
        return None
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.0), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        lines: dict[tuple[str, str], dict[float, float]] = {}
        for r in rows:
            if r.model == model and r.acc_int8 is not None:
                lines.setdefault((r.method, r.repair), {}).setdefault(r.ratio, r.acc_int8)
        for i, ((method, repair), pts) in enumerate(sorted(lines.items(),
                                                           key=lambda kv: (_method_rank(kv[0][0]), kv[0][1]))):
            xs = sorted(pts)
            marker, ls, size = _style(method, i)
            ax.plot(xs, [pts[x] for x in xs], marker=marker, linestyle=ls, markersize=size, alpha=0.85,
                    color=f"C{i % 10}", markeredgewidth=1.5, label=f"{method}" + (f" ({repair})" if repair else ""))
            if len(xs) == 1 or len(lines) == 1:
                _label_points(ax, xs, [pts[x] for x in xs], "{:.1f}")
        _ratio_axis(ax, sorted({q for pts in lines.values() for q in pts}))
        _y_from_zero(ax, [], top=105)
        ax.set_title(model)
        ax.set_ylabel("int8 accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    methods = sorted({r.method for r in rows if r.acc_int8 is not None}, key=_method_rank)
    fig.suptitle("int8 accuracy vs ratio: " + " vs ".join(methods))
    fig.tight_layout()
    return fig


def plot_history(history: list[Run], target: str) -> bytes | None:
    """Trends over recorded runs for one target's cells: latency (instructions on twins, which is what the gate
    compares), RAM, Flash and int8 accuracy, one line per cell, runs on the x axis (date and commit)."""
    cells = sorted({cid for h in history for cid in h.cells if cid.startswith(f"{target}.")
                    and not h.cells[cid].get("fault")})
    if not cells or len(history) < 1:
        return None
    plt = _plt()
    use_instr = all(h.cells.get(c, {}).get("instructions") is not None for h in history for c in cells
                    if h.cells.get(c, {}).get("status") in ("passed", "failed"))
    panels = [("instructions / inference" if use_instr else "latency (ms)",
               (lambda d: d.get("instructions")) if use_instr else (lambda d: d.get("latency_ms")), None),
              ("RAM (KB)", lambda d: None if d.get("ram") is None else d["ram"] / 1024, None),
              ("Flash (KB)", lambda d: None if d.get("flash") is None else d["flash"] / 1024, None),
              ("int8 accuracy (%)", lambda d: d.get("int8"), 105.0)]
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.4))
    x = list(range(len(history)))
    ticks = [f"{(h.date or '?')[5:16].replace('T', ' ')}\n{short_commit(h.provenance)[:8]}" for h in history]
    for k, (ax, (name, get, top)) in enumerate(zip(axes, panels, strict=True)):
        vals: list[float] = []
        for i, cid in enumerate(cells):
            marker, ls, size = _style(cid.split(".")[3] if cid.count(".") >= 3 else "", i)
            pts = [(xi, get(h.cells[cid])) for xi, h in zip(x, history, strict=True)
                   if cid in h.cells and get(h.cells[cid]) is not None]
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [float(p[1]) for p in pts]
            ax.plot(xs, ys, marker=marker, linestyle=ls, markersize=size, color=f"C{i % 10}", alpha=0.85,
                    markeredgewidth=1.5, label=cid.removeprefix(f"{target}.") if k == 0 else None)
            vals += ys
            if len(xs) == 1:
                _label_points(ax, xs, ys, "{:,.4g}")
        ax.set_xlim(-0.5, len(history) - 0.5)
        ax.set_xticks(x, ticks, fontsize=7)
        _y_from_zero(ax, vals, top)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    _finish(fig, axes, f"{target}: trends over {len(history)} recorded run{'s' if len(history) != 1 else ''}",
            ncol=3, bottom=0.07)
    return _png(fig)
