"""Flags shared by several sub-commands, and the console they print to."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from rich.console import Console

from edgefold.core.errors import EdgefoldError
from edgefold.core.vocab import check_choice

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


def add_model_args(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="zoo model name (see `edgefold zoo`)")
    g.add_argument("--factory", metavar="MODULE:CALLABLE",
                   help="your own model: a callable returning an nn.Module, e.g. mypkg.nets:build")
    g.add_argument("--weights", metavar="FILE",
                   help="checkpoint: an edgefold checkpoint or a plain state_dict (loaded with weights_only=True)")
    g.add_argument("--input-shape", metavar="N,C,H,W", help="input shape (required with --factory)")
    g.add_argument("--trust-checkpoint", action="store_true",
                   help="allow checkpoints that need unpickling code (runs code from the file: only if you trust it)")


def resolve_model(args: argparse.Namespace):
    from edgefold.compiler.checkpoint import resolve

    return resolve(args.model, args.factory, args.weights, args.input_shape, args.trust_checkpoint)
