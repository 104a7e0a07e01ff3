"""What several sub-commands share: argument groups, the progress display, and the console they print to."""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from edgefold.core.errors import EdgefoldError
from edgefold.core.vocab import BACKENDS, METHODS, REPAIRS, check_choice

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from edgefold.api import ModelRequest
    from edgefold.fitting import DataRequest, FitRequest, RecoverRequest

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


def add_data_args(p: argparse.ArgumentParser, help: str, metavar: str = "FILE.npz", data_free: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="FILE|digits",
                   help="the model's inputs for calibration, BatchNorm repair, fitting and recovery: a .npz with a "
                        "float array 'x' (N x input shape, optional integer labels 'y') or a .npy of inputs; "
                        "'digits' for the built-in digits. Default: the digits for zoo models, nothing for yours")
    g.add_argument("--eval-data", metavar="FILE.npz",
                   help="labelled data for accuracy: a .npz with 'x' and 'y' (the model's own classes). Default: "
                        "the digits test split for zoo models; a user model is scored only on its own labels")
    g.add_argument("--calib", metavar=metavar, help=help)
    if data_free:
        g.add_argument("--data-free", action="store_true",
                       help="touch no data: repair, fit, recover and calibrate on inputs synthesised by deep "
                            "inversion of the uncompressed model")


def data_request(args: argparse.Namespace) -> DataRequest:
    from edgefold.fitting import DataRequest

    if getattr(args, "calib", None) and args.data:
        raise EdgefoldError("pass either --calib or --data, not both")
    return DataRequest(args.data or getattr(args, "calib", None), args.eval_data, getattr(args, "data_free", False))


def positive(text: str) -> float:
    """An argparse `type` for a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got '{text}'") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def add_fit_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fit to a budget (per-group ratios chosen by measured sensitivity)")
    g.add_argument("--fit", action="store_true",
                   help="choose a ratio per coupled channel group so the model meets the budget: the target's Flash "
                        "and RAM after its own firmware, and the --max-* limits below; replaces --ratio")
    g.add_argument("--max-flash", type=positive, metavar="KB", help="Flash for the whole firmware, KB")
    g.add_argument("--max-ram", type=positive, metavar="KB", help="RAM: arena + statics + stack, KB")
    g.add_argument("--max-latency", type=positive, metavar="MS",
                   help="latency per inference, ms, estimated from the target's instruction model")
    g.add_argument("--max-instructions", type=positive, metavar="N", help="instructions per inference (twins)")
    g.add_argument("--max-macs", type=positive, metavar="N", help="multiply-accumulates per inference")
    g.add_argument("--max-params", type=positive, metavar="N", help="parameters")
    g.add_argument("--keep", action="append", default=[], metavar="LAYER",
                   help="never compress the channel groups that touch LAYER (repeatable), e.g. --keep stem.0")
    g.add_argument("--ratios", metavar="FILE.json",
                   help="replay per-group ratios exactly: a compress.json (its extra.ratios) or {\"ratios\": {...}}")
    r = p.add_argument_group("recovery (distillation from the uncompressed model)")
    r.add_argument("--recover", action="store_true",
                   help="after compression, distil from the uncompressed model on the --data inputs (or the "
                        "synthetic ones with --data-free); the best held-out epoch is kept")
    r.add_argument("--recover-time", type=positive, metavar="S", help="time budget for --recover, seconds")
    r.add_argument("--recover-epochs", type=int, default=12, metavar="N", help="epochs of --recover (default 12)")


def fit_request(args: argparse.Namespace) -> FitRequest:
    from edgefold.fitting import FitRequest

    ratios = args.ratios
    return FitRequest(args.fit, args.max_flash, args.max_ram, args.max_latency, args.max_instructions, args.max_macs,
                      args.max_params, list(args.keep), ratios)


def recover_request(args: argparse.Namespace) -> RecoverRequest:
    from edgefold.fitting import RecoverRequest

    return RecoverRequest(args.recover, args.recover_time, args.recover_epochs)


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
    g.add_argument("--profile", action="store_true",
                   help="also time every kernel call of the model: one more inference with a timer stamp after each "
                        "call (instructions on the QEMU twins, the board's timer unit on boards); MCU targets, "
                        "edgefold backend")


def add_keep_failed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-failed", metavar="DIR",
                   help="when the command fails, keep what it had staged under DIR/<name>-<time> (by default a "
                        "failed command leaves nothing behind and its output folder as it was)")


def add_deploy_args(p: argparse.ArgumentParser, target_help: str, out_help: str) -> None:
    """The flags `deploy` and `build` share: target, model, compression, data, fit, device, --out, --keep-failed."""
    p.add_argument("--target", required=True, help=target_help)
    add_model_args(p)
    add_compress_args(p)
    add_data_args(p, "older name of --data")
    add_fit_args(p)
    add_device_args(p, backend=True)
    p.add_argument("--out", required=True, metavar="DIR", help=out_help)
    add_keep_failed(p)


def keep_failed(args: argparse.Namespace) -> Path | None:
    return Path(args.keep_failed) if getattr(args, "keep_failed", None) else None


def parse_options(items: list[str]) -> dict[str, object]:
    """--option KEY=VALUE items as target keyword arguments (dashes in keys become underscores)."""
    opts: dict[str, object] = {}
    for it in items:
        if "=" not in it:
            raise EdgefoldError(f"--option must be KEY=VALUE, got '{it}'")
        k, v = it.split("=", 1)
        if not k.strip():
            raise EdgefoldError(f"--option must be KEY=VALUE, got '{it}'")
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

    def epochs(self, epoch: int, total: int, row: dict) -> None:
        """Recovery's per-epoch callback: the bar (and its ETA) follow the epochs."""
        acc = row.get("eval_accuracy")
        what = f"accuracy {acc:.1f}%" if acc is not None else f"held-out agreement {row['heldout_agreement']:.1f}%"
        self._progress.update(self._task, total=total, completed=epoch, description=f"recover: epoch {epoch}, {what}")


@contextlib.contextmanager
def progress(text: str, total: int | None = None, eta: bool = False) -> Iterator[Status]:
    """A transient rich progress line (spinner, text, elapsed time; a bar when `total` steps are known, or with
    `eta` a bar and the time remaining once a stage reports its steps, e.g. recovery epochs)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None or eta:
        columns += [BarColumn(), MofNCompleteColumn()]
    if eta:
        columns += [TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as prog:
        yield Status(prog, prog.add_task(text, total=total))
