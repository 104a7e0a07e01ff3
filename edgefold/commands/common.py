"""What several sub-commands share: argument groups, the progress display, and the console they print to."""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from rich.console import Console

from edgefold.core.errors import EdgefoldError
from edgefold.core.vocab import BACKENDS, METHODS, REPAIRS, check_choice

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from edgefold.api import ModelRequest

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def choice(what: str, allowed: tuple[str, ...]) -> Callable[[str], str]:
    """An argparse `type` that accepts one word of the vocabulary; anything else is the vocabulary's one-line error."""

    def parse(text: str) -> str:
        try:
            return check_choice(what, text, allowed)
        except EdgefoldError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = what
    return parse


def ratio(text: str) -> float:
    """argparse `type` of --ratio: a bad ratio is a usage error like any other (one line, exit 2, before any work)."""
    try:
        r = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got '{text}'") from None
    if not math.isfinite(r) or not 0 <= r < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1) (fraction of channels removed), got {text}")
    return r


# --------------------------------------------------------------------------------------------------- groups


def add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="zoo model name (see `edgefold zoo`)")
    g.add_argument("--factory", metavar="MODULE:CALLABLE",
                   help="your own model: a callable returning an nn.Module, e.g. mypkg.nets:build")
    g.add_argument("--weights", metavar="FILE",
                   help="checkpoint: an edgefold checkpoint or a plain state_dict (loaded with weights_only=True)")
    g.add_argument("--input-shape", metavar="N,C,H,W", help="input shape (required with --factory)")
    g.add_argument("--trust-checkpoint", action="store_true",
                   help="allow checkpoints that need unpickling code (runs code from the file: only if you trust it)")


def model_request(args: argparse.Namespace) -> ModelRequest:
    from edgefold.api import ModelRequest

    return ModelRequest(args.model, args.factory, args.weights, args.input_shape, args.trust_checkpoint)


def add_compress_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("compression")
    g.add_argument("--method", type=choice("method", METHODS), default="fold",
                   help="fold (k-means channel merging) or mag1/mag2 (L1/L2 magnitude pruning); default fold")
    g.add_argument("--ratio", type=ratio, default=0.5,
                   help="fraction of channels removed from every coupled group, in [0, 1): a group of n keeps "
                        "k = n - round(ratio*n) >= 1; default 0.5")
    g.add_argument("--repair", type=choice("repair", REPAIRS), default="ar",
                   help="BatchNorm repair after compression: none, repair (needs data), ar or dir (data-free); "
                        "default ar")
    g.add_argument("--seed", type=int, default=0, help="seed of the k-means restarts (results are deterministic)")


def add_data_args(p: argparse.ArgumentParser, help: str, metavar: str = "FILE.npz") -> None:
    g = p.add_argument_group("data")
    g.add_argument("--calib", metavar=metavar, help=help)


def add_device_args(p: argparse.ArgumentParser, backend: bool = False) -> None:
    g = p.add_argument_group("device")
    if backend:
        g.add_argument("--backend", type=choice("backend", BACKENDS),
                       help="inference engine. MCUs: edgefold (ahead-of-time C runtime, default) or tflm (TensorFlow "
                            "Lite Micro); Jetson: onnxruntime (default) or tensorrt (trtexec --fp16)")
    g.add_argument("--port", help="serial port (MCU boards; found by USB VID:PID when omitted)")
    g.add_argument("--runs", type=int, default=10, help="timed inferences on the device")
    g.add_argument("--warmup", type=int, default=2, help="warm-up inferences before timing")
    g.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the device's report")
    g.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="target option, e.g. host=jetson.local, user=ubuntu, cpi=1.2 (repeatable)")


def parse_options(items: list[str]) -> dict[str, object]:
    """--option KEY=VALUE items as target keyword arguments (dashes in keys become underscores)."""
    opts: dict[str, object] = {}
    for it in items:
        if "=" not in it:
            raise EdgefoldError(f"--option must be KEY=VALUE, got '{it}'")
        k, v = it.split("=", 1)
        opts[k.strip().replace("-", "_")] = v
    return opts


# --------------------------------------------------------------------------------------------------- progress


class Status:
    """The line a long command shows while it works: call it with what is happening now; `advance` moves the bar
    of a command that knows how many steps it has."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress, self._task = progress, task

    def __call__(self, text: str) -> None:
        self._progress.update(self._task, description=text)

    def advance(self, text: str, steps: int = 1) -> None:
        self._progress.update(self._task, description=text, advance=steps)


@contextlib.contextmanager
def progress(text: str, total: int | None = None) -> Iterator[Status]:
    """A transient rich progress line (spinner, text, elapsed time; a bar when `total` steps are known)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as prog:
        yield Status(prog, prog.add_task(text, total=total))
