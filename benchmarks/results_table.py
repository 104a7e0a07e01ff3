"""A benchmark's rows as a rich table on the console, and as a markdown table appended to RESULTS.md."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "RESULTS.md"


def show(console: Console, title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*r)
    console.print(table)


def append(script: str, columns: list[str], rows: list[list[str]]) -> None:
    """Append the command (this process's arguments) and the rows to RESULTS.md."""
    md = ["", f"`{' '.join(['.venv/bin/python', f'benchmarks/{script}', *sys.argv[1:]])}`", "",
          "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
    with open(RESULTS, "a") as f:
        f.write("\n".join(md) + "\n")
