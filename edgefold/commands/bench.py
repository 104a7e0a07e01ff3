"""`edgefold bench`: re-measure an earlier deploy on a device."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefold.commands.common import add_device_args, add_keep_failed, keep_failed, parse_options, progress
from edgefold.commands.deploy import print_result


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="re-measure an earlier deploy on a device",
                       description="Rebuild, flash and re-run the benchmark for the model in an earlier deploy "
                                   "folder; rewrites DIR/result.json (the old record goes to DIR/history.jsonl).")
    p.add_argument("--target", required=True, help="device or twin (see `edgefold targets`)")
    p.add_argument("--from", dest="from_dir", required=True, metavar="DIR", help="folder written by edgefold deploy")
    add_device_args(p)
    add_keep_failed(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefold.api import bench

    with progress("bench") as status:
        result = bench(args.target, Path(args.from_dir), runs=args.runs, warmup=args.warmup, port=args.port,
                       timeout_s=args.timeout, target_options=parse_options(args.option), progress=status,
                       keep_failed=keep_failed(args), profile=args.profile)
    print_result(result, Path(args.from_dir) / result.FILE)
    return 0
