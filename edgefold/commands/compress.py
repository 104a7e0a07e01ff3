"""`edgefold compress`: fold or prune a model, repair its normalisation statistics, write the smaller model."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgefold.commands.common import add_compress_args, add_data_args, add_model_args, console, model_request, progress

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

outputs in --out DIR:
  model.pt        the compressed model (original spec + structural plan + state_dict + metadata; loads with
                  weights_only=True and rebuilds without unpickling code)
  compress.json   method, ratio, repair, params/MACs before and after, seconds, accuracy before/after on the
                  digits test split (null when the model does not take image input), per-group n -> k
Both files appear only when everything succeeded; on error nothing in DIR is touched.

example:
  edgefold compress --model resnet8 --weights runs/resnet8.pt --method fold --ratio 0.5 --repair ar --out runs/demo
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="fold or prune a model and repair its BatchNorm statistics",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    add_compress_args(p)
    add_data_args(p, "calibration inputs for --repair repair: a .npz with a float array 'x' of shape N,C,H,W "
                     "matching the model input (default: built-in digits, when the input shape allows)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from edgefold.api import CompressRequest, compress_to_dir

    req = CompressRequest(model_request(args), Path(args.out), args.method, args.ratio, args.repair, args.seed,
                          args.calib)
    with progress(f"compress: {args.method}, ratio {args.ratio}, repair {args.repair}") as status:
        s = compress_to_dir(req, status).summary
    t = Table(title=f"{s.label}: {s.method}, ratio {s.ratio}, repair {s.repair}")
    t.add_column("")
    t.add_column("before", justify="right")
    t.add_column("after", justify="right")
    t.add_column("after/before", justify="right")
    t.add_row("parameters", f"{s.params_before:,}", f"{s.params_after:,}", f"{s.param_ratio:.3f}")
    t.add_row("MACs", f"{s.macs_before:,}", f"{s.macs_after:,}", f"{s.mac_ratio:.3f}")
    if s.accuracy_before is not None and s.accuracy_after is not None:
        t.add_row("accuracy (digits test)", f"{s.accuracy_before:.2f}%", f"{s.accuracy_after:.2f}%", "")
    t.add_row("channel groups", f"{sum(g['n'] for g in s.groups):,} ch in {len(s.groups)}",
              f"{sum(g['k'] for g in s.groups):,} ch", "")
    console.print(t)
    out = Path(args.out)
    console.print(f"compressed in {s.seconds:.2f} s -> {out / 'model.pt'}, {out / s.FILE}")
    return 0
