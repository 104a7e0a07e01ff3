"""The sweep's two units of work: train one checkpoint, and compress + evaluate one configuration of it.

Both are plain functions of plain data (config dicts, state_dicts), so the local process pool and Ray tasks
call the very same code.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from typing import Any

import torch
from edgefold.compiler import data, zoo
from edgefold.compiler.train import TrainConfig, train
from torch import nn

from sweeplib import theorem
from sweeplib.plan import CALIB_N, CALIB_SEED, CheckpointConfig, EvalConfig


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of the source that decides a result (compressor, training, data, zoo, this module).

    Stored in every record, not in its key: a resumed sweep keeps its results when an unrelated line changes,
    and the report says when results from different code versions are mixed (`--recompute-stale` redoes them).
    """
    import hashlib
    from pathlib import Path

    import edgefold.compiler as comp

    base = Path(comp.__file__).parent
    files = sorted((base / "compress").glob("*.py")) + [base / "train.py", base / "data.py", base / "zoo.py",
                                                       Path(__file__), Path(__file__).with_name("sam.py")]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def single_thread() -> None:
    """One intra-op thread per worker: parallelism comes from running many workers."""
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def train_checkpoint(cfg: CheckpointConfig) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Train `cfg` on digits; returns (state_dict, meta with test accuracy and seconds)."""
    shape = zoo.input_shape(cfg.arch)
    torch.manual_seed(cfg.seed)
    model = zoo.build(cfg.arch)
    tc = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, optimizer=cfg.optimizer, weight_decay=cfg.weight_decay,
                     augment=cfg.augment, batch_size=cfg.batch_size, seed=cfg.seed)
    t0 = time.perf_counter()
    if cfg.sam_rho > 0:
        from sweeplib.sam import train_sam

        acc = train_sam(model, shape, tc, cfg.sam_rho)
    else:
        acc = train(model, shape, tc)
    meta = {"checkpoint": cfg.to_dict(), "key": cfg.key(), "accuracy": acc,
            "train_seconds": round(time.perf_counter() - t0, 3), "params": sum(p.numel() for p in model.parameters())}
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, meta


def build(cfg: CheckpointConfig, state: dict[str, torch.Tensor]) -> nn.Module:
    model = zoo.build(cfg.arch)
    model.load_state_dict(state)
    return model.eval()


@functools.lru_cache(maxsize=4)
def _test_split(shape: tuple[int, ...]) -> data.Split:
    return data.load(shape, "test")


@functools.lru_cache(maxsize=4)
def _calib(shape: tuple[int, ...]) -> torch.Tensor:
    return data.calibration_batch(shape, n=CALIB_N, seed=CALIB_SEED)


def evaluate(ev: EvalConfig, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Compress the checkpoint as `ev` says and measure test accuracy; returns the record to cache.

    The theorem check (fold(k+1) vs prune(k) on every coupled group) rides along with the fold/none
    configuration, once per checkpoint and ratio: it depends only on the uncompressed weights and k.
    """
    from edgefold.compiler.compress import compress

    cfg = ev.checkpoint
    shape = zoo.input_shape(cfg.arch)
    model = build(cfg, state)
    calib = _calib(shape)
    example = calib[:1].contiguous()
    t0 = time.perf_counter()
    small, rep = compress(copy.deepcopy(model), example, method=ev.method, ratio=ev.ratio, repair=ev.repair,
                          calib_data=calib if ev.repair == "repair" else None, seed=0)
    t1 = time.perf_counter()
    acc = data.accuracy(small, _test_split(shape))
    rec: dict[str, Any] = {
        "config": ev.to_dict(),
        "key": ev.key(),
        "checkpoint_key": cfg.key(),
        "base_accuracy": meta["accuracy"],
        "accuracy": acc,
        "params_before": int(rep.params_before),
        "params_after": int(rep.params_after),
        "macs_before": int(rep.macs_before),
        "macs_after": int(rep.macs_after),
        "compress_seconds": round(t1 - t0, 4),
        "eval_seconds": round(time.perf_counter() - t1, 4),
        "groups": len(rep.groups),
        "code": code_fingerprint(),
        "torch": torch.__version__,
        # Frobenius distance of all group feature matrices together: sqrt(sum of squared per-group errors)
        "proj_error": math.sqrt(sum(g.proj_error ** 2 for g in rep.groups)),
        "timings": getattr(rep, "timings", {}),
    }
    if ev.method == "fold" and ev.repair == "none":
        fold_errors = {g.name: g.fold_error for g in rep.groups if g.fold_error is not None}
        rec["theorem"] = theorem.check_model(model, example, ev.ratio, fold_errors)
    return rec
