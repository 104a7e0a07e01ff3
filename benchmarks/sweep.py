"""Fold vs prune checkpoint sweep (issue 7): train many digits models, compress each with fold / mag1 / mag2 at
several ratios and repairs, report accuracy tables, win shares, the theorem check and Fig. 1-style plots.

    .venv/bin/python benchmarks/sweep.py --quick                 # CI size, < 3 min on 2 cores
    nice -n 19 .venv/bin/python benchmarks/sweep.py              # full: 120 checkpoints x 36 configurations
    .venv/bin/python benchmarks/sweep.py --ray auto              # same sweep on a Ray cluster
    .venv/bin/python benchmarks/sweep.py --report-only           # tables and plots from what is cached

Every result is cached under --cache by a hash of its configuration; rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgefold.core.errors import EdgefoldError
from sweeplib import report, runner
from sweeplib.cache import Cache
from sweeplib.plan import full_plan, quick_plan

ROOT = Path(__file__).resolve().parent.parent
console = Console(highlight=False)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI size: 4 checkpoints x 1 epoch, ratios 0.3 and 0.5")
    p.add_argument("--checkpoints", type=int, default=120, help="full plan: number of checkpoints (default 120)")
    p.add_argument("--epochs", type=int, default=6, help="full plan: training epochs per checkpoint (default 6)")
    p.add_argument("--jobs", type=int, default=None, help="local worker processes (default: all cores)")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run on Ray: 'auto' (this machine's cluster), 'local' (start one here) or host:port")
    p.add_argument("--cache", default=str(ROOT / ".cache" / "sweep"), help="result cache folder")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="where tables/plots go")
    p.add_argument("--report-only", action="store_true", help="do not compute; report what the cache holds")
    p.add_argument("--recompute-stale", action="store_true",
                   help="recompute cached results that were made by a different version of the code")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--stats-json", metavar="FILE", help="also write the run's counts (trained/evaluated/...) here")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    if args.checkpoints < 1 or args.epochs < 1:
        raise EdgefoldError("--checkpoints and --epochs must be at least 1")
    plan = quick_plan() if args.quick else full_plan(args.checkpoints, args.epochs)
    cache = Cache(args.cache)
    stats = None
    if not args.report_only:
        with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=console, transient=False) as prog:
            tasks: dict[str, int] = {}

            def on_start(st: runner.Stats, to_train: int) -> None:
                console.print(f"plan {plan.name}: {len(plan.checkpoints)} checkpoints, {st.total} configurations, "
                              f"{st.cached} cached, {to_train} checkpoints to train")
                tasks["train"] = prog.add_task("train", total=to_train)
                tasks["eval"] = prog.add_task("evaluate", total=st.total - st.cached)

            def notify(kind: str) -> None:
                prog.advance(tasks["train" if kind == "train" else "eval"])

            if args.ray:
                try:
                    import ray  # noqa: F401
                except ImportError:
                    raise EdgefoldError("--ray needs Ray: pip install 'edgefold[ray]'") from None
                stats = runner.run_ray(plan, cache, args.ray, notify, on_start, args.recompute_stale)
            else:
                stats = runner.run_local(plan, cache, args.jobs, notify, on_start, args.recompute_stale)
        console.print(f"trained {stats.trained}, evaluated {stats.evaluated}, cached before {stats.cached}, "
                      f"failed {stats.failed}, {stats.seconds:.1f} s")
        for e in stats.errors[:10]:
            console.print(f"[red]failed[/red] {e}")
        if args.stats_json:
            Path(args.stats_json).write_text(json.dumps(stats.as_dict(), indent=2))
    s = report.write_report(plan, cache, args.out, with_plots=not args.no_plots)
    console.print(s["markdown"])
    console.print(f"wrote {args.out}/{plan.name}_sweep.md, _summary.json, _sweep.csv" +
                  (", plots" if s.get("plots") else ""))
    if stats is not None and stats.interrupted:
        cmd = " ".join([os.path.relpath(sys.argv[0]) if sys.argv else "benchmarks/sweep.py", *sys.argv[1:]])
        console.print(f"[yellow]interrupted[/yellow]: {stats.cached + stats.evaluated} of {stats.total} "
                      f"configurations cached; resume with: {cmd}")
        return 130
    return 1 if stats is not None and stats.failed else 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse(argv))
    except EdgefoldError as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("sweep: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
