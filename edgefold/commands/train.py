"""`edgefold train`: train a zoo model on the built-in digits data and save a checkpoint."""

from __future__ import annotations

import argparse
import time

from edgefold.commands.common import console


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
    from pathlib import Path

    from rich.progress import Progress

    from edgefold.compiler import zoo
    from edgefold.compiler.checkpoint import ModelSpec, save_model
    from edgefold.compiler.train import TrainConfig, train
    from edgefold.core.errors import EdgefoldError
    from edgefold.core.fsutil import ensure_dir

    if args.epochs < 1:
        raise EdgefoldError("--epochs must be at least 1")
    spec = ModelSpec(name=args.model, input_shape=zoo.input_shape(args.model))
    model = zoo.build(args.model)
    ensure_dir(Path(args.out).resolve().parent)
    cfg = TrainConfig(args.epochs, args.lr, args.optimizer, args.weight_decay, args.augment, seed=args.seed)
    t0 = time.perf_counter()
    with Progress(console=console, transient=True) as prog:
        task = prog.add_task(f"training {args.model}", total=args.epochs)
        acc = train(model, spec.input_shape, cfg,
                    on_epoch=lambda e, a: prog.update(task, advance=1, description=f"epoch {e + 1}: {a:.1f}%"))
    secs = time.perf_counter() - t0
    meta = {"model": args.model, "input_shape": list(spec.input_shape), "classes": 10, "accuracy": acc,
            "train": vars(cfg), "train_seconds": secs}
    save_model(args.out, model, spec, meta)
    console.print(f"{args.model}: test accuracy [bold]{acc:.2f}%[/] on digits ({secs:.1f} s) -> {args.out}")
    return 0
