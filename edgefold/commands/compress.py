"""`edgefold compress`: fold or prune a model, repair its normalisation statistics, write the smaller model."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefold.commands.common import (
    add_compress_args,
    add_data_args,
    add_fit_args,
    add_keep_failed,
    add_model_args,
    console,
    data_request,
    fit_request,
    keep_failed,
    model_request,
    progress,
    recover_request,
)

DESCRIPTION = """\
Make a model smaller by removing a fraction of the channels of every coupled channel group (found from the
model graph: residual adds, depthwise convs, attention heads...), then repair its BatchNorm statistics.

methods:
  fold    cluster each group's channels by k-means and merge every cluster into one channel (producers take the
          cluster mean, consumers the sum), then remove the merged-away channels
  mag1    keep the channels with the largest L1 norm of their coupled weights, remove the rest
  mag2    the same with the L2 norm

repair (after the structural step):
  none    nothing
  repair  reset BatchNorm running statistics and re-estimate them on calibration data (--calib, or the built-in
          digits when the input shape allows it)
  ar      data-free approximate repair: shrink the running variance of each merged channel by
          (1 + (n-1)·rho)/n, the variance of a mean of n channels with correlation rho (identity for mag1/mag2)
  dir     data-free: synthesise a small batch by deep inversion of the uncompressed model (match its BatchNorm
          statistics), then re-estimate on that batch
  LayerNorm models (vit_tiny) have no running statistics: repair leaves LayerNorm as it is.

fit and recover:
  --fit    choose one ratio per coupled group so the model meets a budget (--target's Flash/RAM after its
           firmware, default nano33ble-qemu, and any --max-* limit): each group's sensitivity is measured, the cuts
           go where they cost least per byte or instruction saved; --keep LAYER protects layers, --ratios FILE
           replays the chosen ratios exactly (they are in compress.json)
  --recover  distil the compressed model from the uncompressed one on the --data inputs (unlabelled is enough),
           or on deep-inversion inputs with --data-free; the best held-out epoch is kept

outputs in --out DIR:
  model.pt        the compressed model (original spec + structural plan + state_dict + metadata; loads with
                  weights_only=True and rebuilds without unpickling code)
  compress.json   method, ratio, repair, params/MACs before and after, seconds, accuracy before/after on
                  --eval-data (or the digits test split for zoo models; null otherwise), per-group n -> k,
                  and in extra: the per-group ratios, the fit (budget, predicted footprint, sensitivities) and
                  the recovery history
Both files appear only when everything succeeded; on error nothing in DIR is touched.

example:
  edgefold compress --model resnet8 --weights runs/resnet8.pt --method fold --ratio 0.5 --repair ar --out runs/demo
  edgefold compress --model resnet8 --weights runs/resnet8.pt --fit --max-instructions 13e6 --recover --out runs/fit
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="fold or prune a model and repair its BatchNorm statistics",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    add_compress_args(p)
    add_data_args(p, "older name of --data")
    add_fit_args(p)
    p.add_argument("--target", help="--fit: the device whose budget and cost model apply (default nano33ble-qemu)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    add_keep_failed(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from edgefold.api import CompressRequest, compress_to_dir

    req = CompressRequest(model_request(args), Path(args.out), args.method, args.ratio, args.repair, args.seed,
                          data=data_request(args), fit=fit_request(args), recover=recover_request(args),
                          target=args.target, keep_failed=keep_failed(args))
    req.validate()
    with progress(f"compress: {args.method}, ratio {args.ratio}, repair {args.repair}", eta=True) as status:
        s = compress_to_dir(req, status, on_epoch=status.epochs).summary
    how = "per-group ratios (--fit)" if s.extra.get("fit") else \
        "per-group ratios (--ratios)" if args.ratios else f"ratio {s.ratio}"
    t = Table(title=f"{s.label}: {s.method}, {how}, repair {s.repair}")
    t.add_column("")
    t.add_column("before", justify="right")
    t.add_column("after", justify="right")
    t.add_column("after/before", justify="right")
    t.add_row("parameters", f"{s.params_before:,}", f"{s.params_after:,}", f"{s.param_ratio:.3f}")
    t.add_row("MACs", f"{s.macs_before:,}", f"{s.macs_after:,}", f"{s.mac_ratio:.3f}")
    if s.accuracy_before is not None and s.accuracy_after is not None:
        t.add_row(f"accuracy ({s.accuracy_data})", f"{s.accuracy_before:.2f}%", f"{s.accuracy_after:.2f}%", "")
    fit = s.extra.get("fit")
    if fit:
        pb, pa = fit["before"], fit["predicted"]
        t.add_row("Flash (predicted)", f"{pb['flash']:,} B", f"{pa['flash']:,} B", f"{pa['flash'] / pb['flash']:.3f}")
        t.add_row("RAM (predicted)", f"{pb['ram']:,} B", f"{pa['ram']:,} B", f"{pa['ram'] / pb['ram']:.3f}")
        t.add_row("instructions (predicted)", f"{pb['instructions']:,.0f}", f"{pa['instructions']:,.0f}",
                  f"{pa['instructions'] / pb['instructions']:.3f}")
    for note in s.extra.get("notes", []):
        console.print(f"note: {note}")
    t.add_row("channel groups", f"{sum(g['n'] for g in s.groups):,} ch in {len(s.groups)}",
              f"{sum(g['k'] for g in s.groups):,} ch", "")
    console.print(t)
    out = Path(args.out)
    console.print(f"compressed in {s.seconds:.2f} s -> {out / 'model.pt'}, {out / s.FILE}")
    return 0
