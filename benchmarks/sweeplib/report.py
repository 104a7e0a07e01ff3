"""Aggregate a sweep's cached results: accuracy tables, fold-vs-mag1 win shares, the theorem check, the goals,
a CSV of every result and the two plots in the style of the seeds' Fig. 1.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path
from statistics import mean
from typing import Any

from edgefold.core.fsutil import atomic_path, ensure_dir, write_json, write_text
from sweeplib.cache import Cache
from sweeplib.plan import Plan

ROW_FIELDS = ["code", "torch", "checkpoint_key", "arch", "optimizer", "sam_rho", "lr", "weight_decay", "augment",
              "seed", "epochs", "base_accuracy", "method", "ratio", "repair", "accuracy", "params_before",
              "params_after", "macs_before", "macs_after", "compress_seconds"]

GOAL_DELTA = 8.0  # fold − mag1 at ratio 0.5 with repair, points
GOAL_WIN = 0.80  # share of checkpoints where fold beats mag1 at ratio ≥ 0.3 (with repair)
GOAL_AR = 3.0  # |fold+ar − fold+repair| at ratio 0.5, points


def collect(plan: Plan, cache: Cache) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows of the plan's cached results, theorem summaries)."""
    rows, theorems = [], []
    for ev in plan.evals():
        rec = cache.get(ev.key())
        if rec is None:
            continue
        ck = ev.checkpoint
        rows.append({
            "code": rec.get("code", "?"), "torch": rec.get("torch", "?"),
            "checkpoint_key": ck.key(), "arch": ck.arch, "optimizer": ck.optimizer, "sam_rho": ck.sam_rho,
            "lr": ck.lr, "weight_decay": ck.weight_decay, "augment": int(ck.augment), "seed": ck.seed,
            "epochs": ck.epochs, "base_accuracy": round(rec["base_accuracy"], 3), "method": ev.method,
            "ratio": ev.ratio, "repair": ev.repair, "accuracy": round(rec["accuracy"], 3),
            "params_before": rec["params_before"], "params_after": rec["params_after"],
            "macs_before": rec["macs_before"], "macs_after": rec["macs_after"],
            "compress_seconds": rec["compress_seconds"],
        })
        if "theorem" in rec:
            theorems.append(rec["theorem"] | {"arch": ck.arch, "ratio": ev.ratio, "checkpoint_key": ck.key()})
    return rows, theorems


def _sem(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def paired(rows: list[dict[str, Any]], a: str = "fold", b: str = "mag1") -> dict[tuple[float, str], list[tuple]]:
    """(ratio, repair) -> [(checkpoint_key, arch, acc_a, acc_b)] for checkpoints that have both."""
    acc: dict[tuple, float] = {(r["checkpoint_key"], r["method"], r["ratio"], r["repair"]): r["accuracy"]
                               for r in rows}
    arch = {r["checkpoint_key"]: r["arch"] for r in rows}
    out: dict[tuple[float, str], list[tuple]] = defaultdict(list)
    for (ck, m, ratio, rep), va in sorted(acc.items()):
        if m == a and (ck, b, ratio, rep) in acc:
            out[(ratio, rep)].append((ck, arch[ck], va, acc[(ck, b, ratio, rep)]))
    return out


def summarise(plan: Plan, rows: list[dict[str, Any]], theorems: list[dict[str, Any]]) -> dict[str, Any]:
    cells: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        cells[(r["method"], r["ratio"], r["repair"])].append(r["accuracy"])
    base = {r["checkpoint_key"]: r["base_accuracy"] for r in rows}
    complete = defaultdict(int)
    for r in rows:
        complete[r["checkpoint_key"]] += 1
    per_ck = len(plan.methods) * len(plan.ratios) * len(plan.repairs)
    table = [{"method": m, "ratio": ratio, "repair": rep, "n": len(cells[(m, ratio, rep)]),
              "mean_accuracy": round(mean(cells[(m, ratio, rep)]), 3) if cells[(m, ratio, rep)] else None}
             for m in plan.methods for ratio in plan.ratios for rep in plan.repairs]
    pairs = paired(rows)
    wins = []
    for (ratio, rep), ps in sorted(pairs.items()):
        d = [fa - fb for _, _, fa, fb in ps]
        wins.append({"ratio": ratio, "repair": rep, "n": len(ps), "fold_wins": sum(x > 0 for x in d),
                     "ties": sum(x == 0 for x in d), "mag1_wins": sum(x < 0 for x in d),
                     "win_share": round(sum(x > 0 for x in d) / len(d), 4) if d else None,
                     "mean_delta": round(mean(d), 3) if d else None, "sem_delta": round(_sem(d), 3)})
    by_arch = []
    for (ratio, rep), ps in sorted(pairs.items()):
        for arch in sorted({p[1] for p in ps}):
            d = [fa - fb for _, a, fa, fb in ps if a == arch]
            by_arch.append({"arch": arch, "ratio": ratio, "repair": rep, "n": len(d), "mean_delta": round(mean(d), 3),
                            "win_share": round(sum(x > 0 for x in d) / len(d), 4)})
    meta = {r["checkpoint_key"]: r for r in rows}
    factors = {"optimizer": lambda r: r["optimizer"], "SAM": lambda r: "on" if r["sam_rho"] > 0 else "off",
               "augment": lambda r: "on" if r["augment"] else "off", "weight decay": lambda r: f"{r['weight_decay']:g}"}
    by_factor = []
    for (ratio, rep), ps in sorted(pairs.items()):
        if rep != "repair":
            continue
        for fname, fn in factors.items():
            groups: dict[str, list[float]] = defaultdict(list)
            for ck, _, fa, fb in ps:
                groups[fn(meta[ck])].append(fa - fb)
            for level, d in sorted(groups.items()):
                by_factor.append({"ratio": ratio, "factor": fname, "level": level, "n": len(d),
                                  "mean_delta": round(mean(d), 3),
                                  "win_share": round(sum(x > 0 for x in d) / len(d), 4)})
    secs: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        if r["repair"] == "none":
            secs[(r["arch"], r["method"], r["ratio"])].append(r["compress_seconds"])
    speed = [{"arch": a, "method": m, "ratio": q, "n": len(v), "mean_seconds": round(mean(v), 4)}
             for (a, m, q), v in sorted(secs.items())]
    th = {"groups": sum(t["groups"] for t in theorems),
          "fold_k1_le_prune_k": sum(t["fold_k1_le_prune_k"] for t in theorems),
          "kmeans_groups": sum(t.get("kmeans_groups", 0) for t in theorems),
          "kmeans_k_le_prune_km1": sum(t.get("kmeans_k_le_prune_km1", 0) for t in theorems),
          "models": len({(t.get("checkpoint_key"), t["ratio"]) for t in theorems}), "records": len(theorems)}
    return {
        "plan": plan.name, "plan_meta": plan.meta,
        "checkpoints_planned": len(plan.checkpoints), "configs_planned": len(plan.evals()),
        "configs_done": len(rows), "checkpoints_complete": sum(1 for v in complete.values() if v == per_ck),
        "checkpoints_seen": len(base),
        "base_accuracy_mean": round(mean(base.values()), 3) if base else None,
        "base_accuracy_min": round(min(base.values()), 3) if base else None,
        "code_versions": sorted({r["code"] for r in rows}),
        "torch_versions": sorted({r["torch"] for r in rows}),
        "table": table, "compress_seconds": speed, "fold_vs_mag1": wins,
        "fold_vs_mag1_by_factor": by_factor, "fold_vs_mag1_by_arch": by_arch, "theorem": th,
        "goals": goals(wins, cells),
    }


def goals(wins: list[dict[str, Any]], cells: dict[tuple, list[float]]) -> dict[str, Any]:
    w = {(x["ratio"], x["repair"]): x for x in wins}
    out: dict[str, Any] = {}
    g1 = w.get((0.5, "repair"))
    if g1:
        out["delta_fold_mag1_r05_repair"] = {"measured": g1["mean_delta"], "goal": f">= +{GOAL_DELTA}",
                                             "met": g1["mean_delta"] >= GOAL_DELTA, "n": g1["n"]}
    hi = [x for x in wins if x["ratio"] >= 0.3 and x["repair"] == "repair"]
    if hi:
        n, fw = sum(x["n"] for x in hi), sum(x["fold_wins"] for x in hi)
        out["win_share_r_ge_03_repair"] = {"measured": round(fw / n, 4), "per_ratio": {x["ratio"]: x["win_share"]
                                                                                      for x in hi},
                                           "goal": f">= {GOAL_WIN}", "met": fw / n >= GOAL_WIN, "n": n}
    a, r = cells.get(("fold", 0.5, "ar")), cells.get(("fold", 0.5, "repair"))
    if a and r:
        gap = mean(a) - mean(r)
        out["fold_ar_minus_repair_r05"] = {"measured": round(gap, 3), "goal": f">= -{GOAL_AR}",
                                           "met": gap >= -GOAL_AR, "n": min(len(a), len(r))}
    return out


def markdown(summary: dict[str, Any], plan: Plan) -> str:
    s = summary
    lines = [f"Plan `{s['plan']}` (torch {', '.join(s['torch_versions'])}): "
             f"{s['checkpoints_complete']} of {s['checkpoints_planned']} checkpoints complete, "
             f"{s['configs_done']} of {s['configs_planned']} configurations; base test accuracy mean "
             f"{s['base_accuracy_mean']}% (min {s['base_accuracy_min']}%).", ""]
    tr = s.get("training")
    if tr and tr["checkpoints_with_meta"]:
        per = ", ".join(f"{a} {v['mean']}% (min {v['min']}%, n={v['n']})"
                        for a, v in tr["base_accuracy_by_arch"].items())
        lines += [f"Training budget: {'/'.join(map(str, tr['epochs']))} epochs per checkpoint, "
                  f"{tr['train_seconds_total']:.0f} s of training in all (one thread per checkpoint); base accuracy "
                  f"by arch: {per}.", ""]
    if len(s["code_versions"]) > 1:
        lines += [f"Note: results come from {len(s['code_versions'])} code versions {s['code_versions']} "
                  "(rerun with --recompute-stale to make them uniform).", ""]
    if s["configs_done"] < s["configs_planned"]:
        lines += [f"**PARTIAL**: {s['configs_planned'] - s['configs_done']} configurations missing.", ""]
    cell = {(t["method"], t["ratio"], t["repair"]): t for t in s["table"]}
    lines += ["Mean test accuracy (%) on digits, per method × ratio × repair:", "",
              "| method | repair | " + " | ".join(f"r={r}" for r in plan.ratios) + " |",
              "|---|---|" + "---:|" * len(plan.ratios)]
    for rep in plan.repairs:
        for m in plan.methods:
            vals = [cell[(m, r, rep)]["mean_accuracy"] for r in plan.ratios]
            lines.append(f"| {m} | {rep} | " + " | ".join("–" if v is None else f"{v:.1f}" for v in vals) + " |")
    lines += ["", "Fold vs mag1, paired per checkpoint (Δ = fold − mag1, points; share = fold strictly better):", "",
              "| repair | " + " | ".join(f"r={r}" for r in plan.ratios) + " |", "|---|" + "---|" * len(plan.ratios)]
    w = {(x["ratio"], x["repair"]): x for x in s["fold_vs_mag1"]}
    for rep in plan.repairs:
        cells = []
        for r in plan.ratios:
            x = w.get((r, rep))
            cells.append("–" if not x else f"Δ {x['mean_delta']:+.1f} ± {x['sem_delta']:.1f}, "
                                            f"{100 * x['win_share']:.0f}% ({x['fold_wins']}/{x['n']})")
        lines.append(f"| {rep} | " + " | ".join(cells) + " |")
    arches = sorted({x["arch"] for x in s["fold_vs_mag1_by_arch"]})
    if arches:
        lines += ["", "Δ (fold − mag1) by architecture, with repair:", "",
                  "| arch | " + " | ".join(f"r={r}" for r in plan.ratios) + " |", "|---|" + "---:|" * len(plan.ratios)]
        ba = {(x["arch"], x["ratio"], x["repair"]): x for x in s["fold_vs_mag1_by_arch"]}
        for a in arches:
            vals = [ba.get((a, r, "repair")) for r in plan.ratios]
            lines.append(f"| {a} | " + " | ".join("–" if v is None else
                                                 f"{v['mean_delta']:+.1f} ({100 * v['win_share']:.0f}%)"
                                                 for v in vals) + " |")
    bf = [x for x in s.get("fold_vs_mag1_by_factor", []) if x["ratio"] == 0.5]
    if bf:
        lines += ["", "Δ (fold − mag1) at r=0.5 with repair, by training hyperparameter:", "",
                  "| factor | level | n | mean Δ | fold wins |", "|---|---|---:|---:|---:|"]
        lines += [f"| {x['factor']} | {x['level']} | {x['n']} | {x['mean_delta']:+.1f} | {100 * x['win_share']:.0f}% |"
                  for x in bf]
    th = s["theorem"]
    if th["groups"]:
        lines += ["", f"Theorem check: fold(k+1) ≤ prune(k) (L1 and L2 prunes) on {th['fold_k1_le_prune_k']} of "
                      f"{th['groups']} coupled groups ({100 * th['fold_k1_le_prune_k'] / th['groups']:.2f}%), over "
                      f"{th['records']} (checkpoint, ratio) models; edgefold's k-means fold at k ≤ best prune at k−1 "
                      f"on {th['kmeans_k_le_prune_km1']} of {th['kmeans_groups']} groups with k ≥ 2."]
    sp = {(x["arch"], x["method"]): x for x in s["compress_seconds"] if x["ratio"] == 0.5}
    if sp:
        lines += ["", "Compression time at r=0.5 (repair none; mean seconds per model, one thread, on the machine that "
                      "ran the sweep): " + "; ".join(
                          f"{a}: " + ", ".join(f"{m} {sp[(a, m)]['mean_seconds']:.3f}" for m in plan.methods
                                               if (a, m) in sp)
                          for a in sorted({a for a, _ in sp}))]
    lines += ["", "Goals:", ""]
    names = {"delta_fold_mag1_r05_repair": "fold − mag1 at r=0.5 with repair (points)",
             "win_share_r_ge_03_repair": "fold beats mag1, share of checkpoints at r ≥ 0.3 with repair",
             "fold_ar_minus_repair_r05": "fold: data-free ar − data repair at r=0.5 (points)"}
    for k, g in s["goals"].items():
        lines.append(f"- {names[k]}: measured {g['measured']} (goal {g['goal']}, n={g['n']}): "
                     f"{'met' if g['met'] else 'MISSED'}")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, ROW_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def plots(rows: list[dict[str, Any]], plan: Plan, out: Path, prefix: str) -> list[Path]:
    """Seeds' Fig. 1 style: fold vs mag1 scatter per checkpoint (colour = ratio, diagonal), and Δ bars vs ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = paired(rows)
    colours = dict(zip(plan.ratios, plt.cm.viridis([i / max(1, len(plan.ratios) - 1) for i in
                                                    range(len(plan.ratios))]), strict=True))
    reps = list(plan.repairs)
    fig, axes = plt.subplots(1, len(reps), figsize=(4.2 * len(reps), 4.6), squeeze=False, layout="constrained")
    for ax, rep in zip(axes[0], reps, strict=True):
        for ratio in plan.ratios:
            ps = pairs.get((ratio, rep), [])
            ax.scatter([p[3] for p in ps], [p[2] for p in ps], s=10, alpha=0.7, color=colours[ratio],
                       label=f"r={ratio}")
        ax.plot([0, 100], [0, 100], "k--", lw=0.8)
        ax.set(xlim=(0, 101), ylim=(0, 101), xlabel="mag1 accuracy (%)", ylabel="fold accuracy (%)",
               title=f"repair: {rep}")
        ax.set_aspect("equal")
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle("Fold vs L1 pruning, per checkpoint (digits test accuracy)")
    paths = [out / f"{prefix}_fold_vs_mag1_scatter.png", out / f"{prefix}_fold_minus_mag1_bars.png"]
    _save(fig, paths[0])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(reps)
    for i, rep in enumerate(reps):
        xs, ys, es = [], [], []
        for j, ratio in enumerate(plan.ratios):
            d = [p[2] - p[3] for p in pairs.get((ratio, rep), [])]
            if d:
                xs.append(j + (i - (len(reps) - 1) / 2) * width)
                ys.append(mean(d))
                es.append(_sem(d))
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=f"repair: {rep}")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(plan.ratios)), [str(r) for r in plan.ratios])
    ax.set(xlabel="ratio (fraction of channels removed per group)", ylabel="Δ accuracy, fold − mag1 (points)",
           title="Mean Δ over checkpoints (± s.e.m.)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, paths[1])
    plt.close(fig)
    return paths


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)


def training_budget(plan: Plan, cache: Cache) -> dict[str, Any]:
    """What the checkpoints cost to train (from the checkpoint metadata the sweep kept)."""
    import json

    metas = []
    for ck in plan.checkpoints:
        p = cache.checkpoint_path(ck.key()).with_suffix(".json")
        if p.is_file():
            metas.append(json.loads(p.read_text()))
    by_arch: dict[str, list[float]] = defaultdict(list)
    for m in metas:
        by_arch[m["checkpoint"]["arch"]].append(m["accuracy"])
    return {"checkpoints_with_meta": len(metas), "epochs": sorted({c.epochs for c in plan.checkpoints}),
            "train_seconds_total": round(sum(m["train_seconds"] for m in metas), 1),
            "base_accuracy_by_arch": {a: {"n": len(v), "mean": round(mean(v), 2), "min": round(min(v), 2)}
                                      for a, v in sorted(by_arch.items())}}


def write_report(plan: Plan, cache: Cache, out: str | Path, with_plots: bool = True) -> dict[str, Any]:
    """Write {plan}_sweep.csv, {plan}_summary.json, {plan}_sweep.md and the plots into `out`; returns the summary."""
    out = ensure_dir(out)
    rows, theorems = collect(plan, cache)
    s = summarise(plan, rows, theorems)
    s["training"] = training_budget(plan, cache)
    write_csv(rows, out / f"{plan.name}_sweep.csv")
    write_json(out / f"{plan.name}_summary.json", s)
    md = markdown(s, plan)
    write_text(out / f"{plan.name}_sweep.md", md)
    s["markdown"] = md
    if with_plots and rows:
        s["plots"] = [str(p) for p in plots(rows, plan, out, plan.name)]
    return s
