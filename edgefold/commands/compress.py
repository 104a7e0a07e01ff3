"""`edgefold compress`: fold or prune a model, repair its normalisation statistics, write the smaller model."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from edgefold.commands.common import add_model_args, choice, console, resolve_model
from edgefold.core.vocab import METHODS, REPAIRS

CALIB_SAMPLES = 128

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


def _ratio(text: str) -> float:
    # A bad ratio is a usage error like any other: argparse prints one line and exits 2 before any work.
    try:
        r = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got '{text}'") from None
    if not math.isfinite(r) or not 0 <= r < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1) (fraction of channels removed), got {text}")
    return r


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="fold or prune a model and repair its BatchNorm statistics",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    g = p.add_argument_group("compression")
    g.add_argument("--method", type=choice("method", METHODS), default="fold",
                   help="fold (k-means channel merging) or mag1/mag2 (L1/L2 magnitude pruning); default fold")
    g.add_argument("--ratio", type=_ratio, default=0.5,
                   help="fraction of channels removed from every coupled group, in [0, 1): a group of n keeps "
                        "k = n - round(ratio*n) >= 1; default 0.5")
    g.add_argument("--repair", type=choice("repair", REPAIRS), default="ar",
                   help="BatchNorm repair after compression: none, repair (needs data), ar or dir (data-free); "
                        "default ar")
    g.add_argument("--calib", metavar="FILE.npz",
                   help="calibration inputs for --repair repair: a .npz with a float array 'x' of shape N,C,H,W "
                        "matching the model input (default: built-in digits, when the input shape allows)")
    g.add_argument("--seed", type=int, default=0, help="seed of the k-means restarts (results are deterministic)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.set_defaults(func=run)


def load_calibration(path: str, input_shape: tuple[int, ...]):
    """Inputs from a user .npz (array 'x'), checked against the model's input shape; every failure is one line."""
    import zipfile

    import numpy as np
    import torch

    from edgefold.core.errors import EdgefoldError

    p = Path(path)
    if not p.is_file():
        raise EdgefoldError(f"calibration file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise EdgefoldError(f"calibration file {p} must be a .npz with an array 'x', not a bare .npy")
            if "x" not in z.files:
                raise EdgefoldError(f"calibration file {p} has no array 'x' (found: {', '.join(z.files) or 'none'})")
            x = z["x"]
    except EdgefoldError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EdgefoldError(f"calibration file {p} is not a readable .npz: {first[:200]}") from None
    want = ",".join(str(v) for v in input_shape[1:])
    if not np.issubdtype(x.dtype, np.floating):
        raise EdgefoldError(f"calibration array 'x' in {p} must be floating point, got {x.dtype}")
    if x.ndim != len(input_shape) or tuple(x.shape[1:]) != tuple(input_shape[1:]):
        raise EdgefoldError(f"calibration array 'x' in {p} has shape {','.join(map(str, x.shape))}; "
                            f"the model needs N,{want}")
    if x.shape[0] < 2:
        raise EdgefoldError(f"calibration array 'x' in {p} needs at least 2 samples, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise EdgefoldError(f"calibration array 'x' in {p} contains NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _digits_fit(model, input_shape: tuple[int, ...]) -> bool:
    """Whether the built-in digits apply: image-shaped input and 10 logits out."""
    import torch

    if len(input_shape) != 4:
        return False
    with torch.no_grad():
        out = model.eval()(torch.zeros((1, *input_shape[1:])))
    return isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[1] == 10


def _group_summary(groups) -> list[dict[str, Any]]:
    return [{"name": g.name, "kind": g.kind, "n": g.n, "k": g.k, "merged": sum(len(m) > 1 for m in g.members),
             "proj_error": g.proj_error, "prune_error": g.prune_error, "fold_error": g.fold_error}
            for g in groups]


def _plain(obj: Any) -> Any:
    """JSON-safe copy (numpy scalars and tuples become plain Python), also safe for weights_only loading."""
    import json

    from edgefold.core.fsutil import _json_default

    return json.loads(json.dumps(obj, default=_json_default))


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.table import Table

    from edgefold.compiler import data
    from edgefold.compiler.checkpoint import save_model
    from edgefold.compiler.compress import compress
    from edgefold.core.errors import EdgefoldError
    from edgefold.core.fsutil import staged_dir, write_json

    # Everything is checked before any work, and nothing is written until everything succeeded.
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise EdgefoldError(f"--out {out} exists and is not a folder")
    loaded = resolve_model(args)
    spec, model = loaded.spec, loaded.model
    if spec.name is None and spec.factory is None:
        raise EdgefoldError("a compressed model is saved as spec + weights: say which architecture with --model "
                            "or --factory (a pickled module cannot be rebuilt without its code)")
    shape = tuple(spec.input_shape)
    digits = _digits_fit(model, shape)
    calib, calib_label = None, None
    if args.calib:
        calib, calib_label = load_calibration(args.calib, shape), f"{args.calib}"
    elif digits:
        calib, calib_label = data.calibration_batch(shape, CALIB_SAMPLES, seed=args.seed), \
            f"digits train ({CALIB_SAMPLES} images)"
    if args.repair == "repair" and calib is None:
        raise EdgefoldError("--repair repair needs calibration data: pass --calib FILE.npz (array 'x', shape "
                            f"N,{','.join(map(str, shape[1:]))}), or use the data-free --repair ar / dir")
    if args.repair != "repair":
        calib_label = None  # only REPAIR looks at data; ar and dir are data-free
    test = data.load(shape, "test") if digits else None

    acc_before = data.accuracy(model, test) if test is not None else None
    example = torch.zeros((1, *shape[1:]))
    with console.status(f"compressing {spec.label}: {args.method}, ratio {args.ratio}, repair {args.repair}"):
        compressed, report = compress(model, example, args.method, args.ratio, args.repair,
                                      calib_data=calib if args.repair == "repair" else None, seed=args.seed)
    acc_after = data.accuracy(compressed, test) if test is not None else None

    summary = {
        "method": report.method, "ratio": report.ratio, "repair": report.repair, "seed": args.seed,
        "params_before": report.params_before, "params_after": report.params_after,
        "macs_before": report.macs_before, "macs_after": report.macs_after,
        "param_ratio": report.param_ratio, "mac_ratio": report.mac_ratio,
        "seconds": report.seconds, "timings": dict(report.timings),
        "accuracy_before": acc_before, "accuracy_after": acc_after,
        "accuracy_data": f"digits test ({len(test)} images)" if test is not None else None,
        "calibration": calib_label,
        "model": spec.to_dict(), "weights": str(args.weights) if args.weights else None,
        "groups": _group_summary(report.groups), "skipped_groups": list(report.skipped_groups),
        "files": {"model": "model.pt", "report": "compress.json"},
    }
    summary = _plain(summary)
    meta = _plain({**{k: v for k, v in loaded.meta.items() if k != "compress"},
                   "model": spec.label, "input_shape": list(shape), "classes": spec.num_classes,
                   "accuracy": acc_after,
                   "compress": {k: v for k, v in summary.items() if k not in ("groups", "files")}})
    with staged_dir(out) as stage:
        save_model(stage / "model.pt", compressed, spec, meta)
        write_json(stage / "compress.json", summary)

    t = Table(title=f"{spec.label}: {args.method}, ratio {args.ratio}, repair {args.repair}")
    t.add_column("")
    t.add_column("before", justify="right")
    t.add_column("after", justify="right")
    t.add_column("after/before", justify="right")
    t.add_row("parameters", f"{report.params_before:,}", f"{report.params_after:,}", f"{report.param_ratio:.3f}")
    t.add_row("MACs", f"{report.macs_before:,}", f"{report.macs_after:,}", f"{report.mac_ratio:.3f}")
    if acc_before is not None:
        t.add_row("accuracy (digits test)", f"{acc_before:.2f}%", f"{acc_after:.2f}%", "")
    groups = report.groups
    t.add_row("channel groups", f"{sum(g.n for g in groups):,} ch in {len(groups)}",
              f"{sum(g.k for g in groups):,} ch", "")
    console.print(t)
    console.print(f"compressed in {report.seconds:.2f} s -> {out / 'model.pt'}, {out / 'compress.json'}")
    return 0
