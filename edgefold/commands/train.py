"""`edgefold train`: train a zoo model on the built-in digits data and save a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefold.commands.common import console, progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a zoo model on the digits, or your model on your data",
                       description="Train a zoo model on scikit-learn's digits (resized to the model's input), or "
                                   "your own model (--factory) on your labelled data (--data train.npz with x and "
                                   "y), and write an edgefold checkpoint (state_dict + metadata).")
    p.add_argument("--model", help="zoo model name (see `edgefold zoo`)")
    p.add_argument("--factory", metavar="MODULE:CALLABLE", help="your model: a callable returning an nn.Module")
    p.add_argument("--input-shape", metavar="N,C,H,W", help="input shape (with --factory)")
    p.add_argument("--data", metavar="FILE.npz", help="training data for --factory: float 'x' and integer labels 'y'")
    p.add_argument("--eval-data", metavar="FILE.npz", help="held-out x, y for the reported accuracy")
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
                       args.augment, args.seed, args.factory, args.input_shape, args.data, args.eval_data)
    req.validate()
    name = args.model or args.factory
    with progress(f"training {name}", total=max(1, args.epochs)) as status:
        res = train(req, on_epoch=lambda e, a: status.advance(f"epoch {e + 1}: {a:.1f}%"))
    where = "digits test" if args.factory is None else (args.eval_data or f"{args.data} (training data)")
    console.print(f"{name}: accuracy [bold]{res.accuracy:.2f}%[/] on {where} ({res.seconds:.1f} s) "
                  f"-> {res.checkpoint}")
    return 0
