"""`edgefold finetune --from DIR`: recover the accuracy of a compressed model by distilling it from the uncompressed
model it came from (no labels needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefold.commands.common import (
    add_data_args,
    add_keep_failed,
    console,
    data_request,
    keep_failed,
    positive,
    progress,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="recover a compressed model by distillation from the uncompressed one",
                       description="Distil DIR/model.pt (written by edgefold compress) from the uncompressed model "
                                   "recorded in DIR/compress.json, on the --data inputs (labels optional), the "
                                   "digits for zoo models, or deep-inversion inputs with --data-free. The epoch "
                                   "with the best held-out agreement (or accuracy, when the inputs carry labels) "
                                   "is kept; OUT gets model.pt and compress.json (with the recovery history).")
    p.add_argument("--from", dest="from_dir", required=True, metavar="DIR", help="a folder from edgefold compress")
    p.add_argument("--weights", metavar="FILE", help="the uncompressed model's checkpoint (default: as recorded)")
    add_data_args(p, argparse.SUPPRESS)
    p.add_argument("--recover-time", type=positive, metavar="S", help="time budget, seconds")
    p.add_argument("--recover-epochs", type=int, default=12, metavar="N", help="epochs (default 12)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    add_keep_failed(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgefold.api import FinetuneRequest, finetune_dir
    from edgefold.fitting import RecoverRequest

    req = FinetuneRequest(Path(args.from_dir), Path(args.out), args.weights, data_request(args),
                          RecoverRequest(True, args.recover_time, args.recover_epochs), args.seed,
                          keep_failed(args))
    req.validate()
    with progress("finetune", eta=True) as status:
        res = finetune_dir(req, status, status.epochs)
    s = res.summary
    rec = s.extra.get("recover", {})
    before, after = s.extra.get("accuracy_after_compress"), s.accuracy_after
    if before is not None and after is not None:
        console.print(f"accuracy ({s.accuracy_data}): {before:.2f} % -> {after:.2f} % "
                      f"(best epoch {rec.get('best_epoch')} of {rec.get('epochs_run')}, {rec.get('seconds', 0):.1f} s)")
    else:
        best = rec.get("history", [{}])[rec.get("best_epoch", 0)] if rec.get("history") else {}
        console.print(f"held-out agreement with the uncompressed model: {best.get('heldout_agreement')} % "
                      "(no labelled data to score accuracy)")
    console.print(f"-> {Path(args.out) / 'model.pt'}, {Path(args.out) / s.FILE}")
    return 0
