"""`edgefold report`: tables (Markdown + HTML) and plots from deploy / hil results."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefold.commands.common import console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="device tables (Markdown, HTML) and plots from deploy/hil results",
                       description="Collect result.json files (from `edgefold deploy`) and hil.json (from "
                                   "`edgefold hil`) and write the devices x sparsity x runtime/RAM/Flash table as "
                                   "report.md and a self-contained report.html, plus PNG plots; for hil runs also "
                                   "the gate verdicts, deltas against the baseline, and trends over the runs "
                                   "recorded in history.jsonl.")
    p.add_argument("inputs", nargs="+", metavar="DIR", help="hil or deploy output folders (or their JSON files)")
    p.add_argument("--out", metavar="DIR", help="where to write the report (default: FIRST_DIR/report)")
    p.add_argument("--title", default="edgefold device report")
    p.add_argument("--history", action="append", default=[], metavar="JSONL",
                   help="history file(s) written by `edgefold hil --history` to draw trends from (each hil "
                        "folder's own history.jsonl is read anyway)")
    p.add_argument("--baseline", metavar="JSON",
                   help="baseline to show deltas against (default: the one the hil run was given)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefold.report import make_report

    first = Path(args.inputs[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent) / "report"
    paths = make_report(args.inputs, out, args.title, history=args.history, baseline=args.baseline)
    console.print(f"report: {paths['markdown']}, {paths['html']} and "
                  f"{sum(str(p).endswith('.png') for p in paths.values())} plots in {out}", markup=False)
    return 0
