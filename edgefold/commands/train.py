"""`edgefold train`: train a zoo model on the built-in digits data and save a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefold.commands.common import console, progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a zoo model on the built-in digits data",
                       description="Train a zoo model on scikit-learn's digits (resized to the model's input) "
                                   "and write an edgefold checkpoint (state_dict + metadata).")
    p.add_argument("--model", required=True, help="zoo model name (see `edgefold zoo`)")
    p.add_argument("--out", required=True, metavar="FILE", help="checkpoint to write (.pt)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--augment", action="store_true", help="random 2-pixel shifts")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefold.api import TrainRequest, train

    req = TrainRequest(args.model, Path(args.out), args.epochs, args.lr, args.optimizer, args.weight_decay,
                       args.augment, args.seed)
    with progress(f"training {args.model}", total=max(1, args.epochs)) as status:
        res = train(req, on_epoch=lambda e, a: status.advance(f"epoch {e + 1}: {a:.1f}%"))
    console.print(f"{args.model}: test accuracy [bold]{res.accuracy:.2f}%[/] on digits ({res.seconds:.1f} s) "
                  f"-> {res.checkpoint}")
    return 0
