"""`edgefold hil`: run a hardware-in-the-loop matrix (see edgefold/hil/) and gate the results."""

from __future__ import annotations

import argparse
import signal

from edgefold.commands.common import console, err_console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hil", help="deploy a matrix of models to attached boards / twins and gate the results",
                       description="Deploy every cell of a TOML matrix (model x method x ratio x repair x target x "
                                   "backend) with `edgefold deploy`, one device lane in sequence, lanes in parallel; "
                                   "gate agreement/accuracy, latency against a baseline and RAM/Flash budgets; write "
                                   "JUnit XML, hil.json and a Markdown summary. Re-running with the same --out "
                                   "resumes: finished cells are not deployed again.")
    p.add_argument("--matrix", required=True, metavar="TOML", help="matrix file (see examples/ci/hil.toml)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (also the resume state)")
    p.add_argument("--baseline", metavar="JSON",
                   help="baseline measurements for the latency regression gate (without one the gate is OFF, and "
                        "the outputs say so); make it with --update-baseline")
    p.add_argument("--update-baseline", action="store_true",
                   help="write this run's measurements to --baseline (default DIR/baseline.json); the latency gate "
                        "is not applied in this run")
    p.add_argument("--junit", metavar="XML", help="JUnit XML path (default DIR/junit.xml)")
    p.add_argument("--history", metavar="JSONL",
                   help="append this run's summary to this file (default DIR/history.jsonl); keep one file across "
                        "runs (e.g. a CI cache) and `edgefold report --history` draws the trends")
    p.add_argument("--jobs", type=int, metavar="N", help="at most N device lanes at once (default: all)")
    p.add_argument("--fresh", action="store_true", help="forget finished cells in DIR and deploy everything again")
    p.add_argument("--retry-errors", action="store_true", help="when resuming, deploy cells that errored again")
    p.add_argument("--fail-on-skip", action="store_true", help="exit non-zero when a cell was skipped (absent device)")
    p.add_argument("--dry-run", action="store_true", help="list the cells and the devices found, deploy nothing")
    p.set_defaults(func=run)


def _raise_interrupt(signum, frame):  # CI cancels with SIGTERM: stop like Ctrl-C, keep what is finished
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from edgefold import hil
    from edgefold.core.errors import EdgefoldError
    from edgefold.targets import usb

    if args.jobs is not None and args.jobs < 1:
        raise EdgefoldError("--jobs must be at least 1")
    matrix = hil.load_matrix(args.matrix)
    for note in matrix.notices:
        err_console.print(f"hil: {note}", markup=False, soft_wrap=True)
    if args.dry_run:
        ports = usb.list_devices() if any(d.kind == "serial" for d in matrix.devices.values()) else []
        lanes = {n: hil.resolve_lane(d, ports) for n, d in matrix.devices.items()}
        console.print(f"{len(matrix.cells)} cells in {matrix.path}:", markup=False)
        for c in matrix.cells:  # plain lines, not a table: CI logs must not wrap or truncate cell ids
            lane = lanes[c.target]
            console.print(f"  {c.id}  on {lane.name}: " + (f"skip ({lane.absent})" if lane.absent else "will run"),
                          soft_wrap=True, markup=False)
        return 0
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = hil.run_matrix(matrix, args.out, baseline=args.baseline, update_baseline=args.update_baseline,
                                jobs=args.jobs, retry_errors=args.retry_errors, fresh=args.fresh,
                                console=err_console, junit=args.junit, history=args.history)
    finally:
        signal.signal(signal.SIGTERM, old)
    c = result.counts()
    colour = "green" if result.ok else "red"
    console.print(f"[{colour}]hil: {c['passed']} passed, {c['failed']} failed, {c['error']} errors, "
                  f"{c['skipped']} skipped[/] ({result.wall_seconds:.1f} s) -> {result.out_dir}")
    for line in hil.gates_off(result):
        console.print(f"  [yellow]{escape(line)}[/]", soft_wrap=True)
    for o in result.outcomes:
        if o.status in ("failed", "error"):
            console.print(f"  [red]{o.status}[/] {o.cell.id}: {escape(o.reason)}")
    if not result.ok:
        return 1
    if c["skipped"] and c["skipped"] == len(result.outcomes):  # no board answered: a green build would be a lie
        err_console.print("hil: every cell was skipped: nothing was tested", markup=False)
        return 1
    return 1 if args.fail_on_skip and c["skipped"] else 0
