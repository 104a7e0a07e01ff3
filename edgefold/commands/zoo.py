"""`edgefold zoo`: list the reference models."""

from __future__ import annotations

import argparse

from edgefold.commands.common import console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="list the built-in reference models")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from edgefold.compiler import zoo

    t = Table(title="edgefold zoo")
    for c in ("model", "input", "params"):
        t.add_column(c, justify="right" if c == "params" else "left")
    for name in zoo.names():
        m = zoo.build(name)
        t.add_row(name, "x".join(map(str, zoo.input_shape(name))), f"{sum(p.numel() for p in m.parameters()):,}")
    console.print(t)
    return 0
