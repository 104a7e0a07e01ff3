"""Run a sweep plan: on local cores (a process pool, one checkpoint per job) or on a Ray cluster (one task per
training and one per (checkpoint, method, ratio, repair)). Either way every finished result lands in the same
cache at once, so stopping at any moment loses at most the configurations in flight.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeplib.cache import Cache
from sweeplib.plan import CheckpointConfig, EvalConfig, Plan

Notify = Callable[[str], None]

# This library sits beside benchmarks/sweep.py, outside the installed edgefold: Ray ships it to the workers.
# Ray accepts a local folder only for the whole job (ray.init), not per task.
RAY_RUNTIME_ENV = {"py_modules": [str(Path(__file__).resolve().parent)]}


@dataclass
class Stats:
    total: int = 0  # configurations in the plan
    cached: int = 0  # already in the cache when the run started
    evaluated: int = 0  # computed by this run
    trained: int = 0  # checkpoints trained by this run
    failed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "errors"} | {"errors": self.errors[:20]}


def pending(plan: Plan, cache: Cache, recompute_stale: bool = False) -> list[tuple[CheckpointConfig, list[EvalConfig]]]:
    """Checkpoints that still have uncached configurations, with those configurations.

    With `recompute_stale`, results computed by other code (see work.code_fingerprint) count as missing.
    """
    if recompute_stale:
        from sweeplib.work import code_fingerprint

        code = code_fingerprint()

        def missing(e: EvalConfig) -> bool:
            rec = cache.get(e.key())
            return rec is None or rec.get("code") != code
    else:
        def missing(e: EvalConfig) -> bool:
            return not cache.has(e.key())
    out = []
    for ck in plan.checkpoints:
        todo = [e for e in plan.evals_for(ck) if missing(e)]
        if todo:
            out.append((ck, todo))
    return out


def _safe_eval(ev: EvalConfig, state: Any, meta: dict[str, Any]) -> tuple[str, Any]:
    """("ok", record) or ("error", message): one broken configuration must not stop the sweep."""
    from sweeplib.work import evaluate

    try:
        return "ok", evaluate(ev, state, meta)
    except Exception as e:  # reported in Stats.errors and by the CLI, never cached (a rerun retries it)
        return "error", f"{ev.checkpoint.label} {ev.method} r={ev.ratio} {ev.repair}: {type(e).__name__}: {e}"


# --- local process pool -------------------------------------------------------------------------------------

_events: Any = None  # the worker's queue back to the parent (progress)


def _init_worker(events: Any) -> None:
    global _events
    _events = events
    from sweeplib.work import single_thread

    single_thread()
    # Ctrl-C goes to the parent, which stops the pool (SIGTERM). Cache writes hold SIGTERM until they are
    # complete, so ending at once (no atexit handlers, no tracebacks) never leaves a half-written file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))


def _emit(kind: str) -> None:
    if _events is not None:
        _events.put(kind)


def checkpoint_job(ckpt: dict[str, Any], evals: list[dict[str, Any]], root: str) -> dict[str, Any]:
    """Train (or load) one checkpoint and evaluate its missing configurations, caching each result."""
    from sweeplib.work import train_checkpoint

    cache = Cache(root)
    cfg = CheckpointConfig.from_dict(ckpt)
    todo = [EvalConfig.from_dict(e) for e in evals]
    out: dict[str, Any] = {"trained": 0, "evaluated": 0, "failed": 0, "errors": []}
    if not todo:
        return out
    got = cache.load_checkpoint(cfg.key())
    if got is None:
        try:
            state, meta = train_checkpoint(cfg)
        except Exception as e:  # its configurations stay missing; a rerun retries
            out["failed"] += len(todo)
            out["errors"].append(f"training {cfg.label}: {type(e).__name__}: {e}")
            for _ in todo:
                _emit("fail")
            return out
        cache.save_checkpoint(cfg.key(), state, meta)
        out["trained"] = 1
        _emit("train")
    else:
        state, meta = got
    for ev in todo:
        status, val = _safe_eval(ev, state, meta)
        if status == "ok":
            cache.put(ev.key(), val)
            out["evaluated"] += 1
            _emit("eval")
        else:
            out["failed"] += 1
            out["errors"].append(val)
            _emit("fail")
    return out


def run_local(plan: Plan, cache: Cache, jobs: int | None = None, notify: Notify | None = None,
              on_start: Callable[[Stats, int], None] | None = None, recompute_stale: bool = False) -> Stats:
    """Run the plan's missing configurations on `jobs` local processes (default: all cores).

    `notify(kind)` is called in this process for every 'train', 'eval' and 'fail' event (progress display);
    `on_start(stats, n_checkpoints_to_train)` once the work is known.
    """
    t0 = time.perf_counter()
    stats = Stats(total=len(plan.evals()))
    work = pending(plan, cache, recompute_stale)
    stats.cached = stats.total - sum(len(e) for _, e in work)
    if on_start:
        on_start(stats, sum(1 for c, _ in work if not cache.has_checkpoint(c.key())))
    if not work:
        stats.seconds = time.perf_counter() - t0
        return stats
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(work)))
    ctx = mp.get_context("spawn")  # no fork of a process that already imported torch
    events = ctx.Queue()

    def drain() -> None:
        while True:
            try:
                kind = events.get_nowait()
            except queue.Empty:
                return
            if notify:
                notify(kind)

    pool = ctx.Pool(jobs, initializer=_init_worker, initargs=(events,))
    try:
        results = [pool.apply_async(checkpoint_job, (c.to_dict(), [e.to_dict() for e in evs], str(cache.root)))
                   for c, evs in work]
        while results:
            time.sleep(0.2)
            drain()
            for r in [r for r in results if r.ready()]:
                results.remove(r)
                res = r.get()
                stats.trained += res["trained"]
                stats.evaluated += res["evaluated"]
                stats.failed += res["failed"]
                stats.errors += res["errors"]
        pool.close()
        pool.join()
        drain()
    except KeyboardInterrupt:
        stats.interrupted = True
        pool.terminate()
        pool.join()
        # count what the killed jobs had finished: they report per checkpoint, the cache per result
        stats.evaluated = sum(1 for e in plan.evals() if cache.has(e.key())) - stats.cached
    stats.seconds = time.perf_counter() - t0
    return stats


# --- Ray ------------------------------------------------------------------------------------------------------


def _ray_train(ckpt: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    from sweeplib.work import single_thread, train_checkpoint

    single_thread()
    return train_checkpoint(CheckpointConfig.from_dict(ckpt))


def _ray_eval(ev: dict[str, Any], trained: tuple[dict[str, Any], dict[str, Any]]) -> tuple[str, Any]:
    from sweeplib.work import single_thread

    single_thread()
    state, meta = trained
    return _safe_eval(EvalConfig.from_dict(ev), state, meta)


def run_ray(plan: Plan, cache: Cache, address: str | None = "auto", notify: Notify | None = None,
            on_start: Callable[[Stats, int], None] | None = None, recompute_stale: bool = False) -> Stats:
    """Run the plan's missing configurations as Ray tasks; results are gathered here, into `cache`.

    Connects to `address` ("auto": the cluster this machine belongs to, "local": start a private local
    instance, or host:port / ray://host:port) unless Ray is already initialised in this process. Each
    checkpoint is trained once by one task; its weights travel to the evaluation tasks through Ray's object
    store, so nodes need no shared file system. Nodes need edgefold installed; this library travels with the job
    (RAY_RUNTIME_ENV, which a caller that starts Ray itself passes to `ray.init`).
    """
    import ray

    t0 = time.perf_counter()
    if not ray.is_initialized():
        try:
            ray.init(address=None if address in (None, "local") else address, include_dashboard=False,
                     log_to_driver=False, runtime_env=RAY_RUNTIME_ENV)
        except (ConnectionError, ValueError) as e:
            from edgefold.core.errors import EdgefoldError

            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise EdgefoldError(f"cannot reach a Ray cluster at {address!r} ({first}); start one with "
                                "`ray start --head` or pass --ray local") from None
    train_task = ray.remote(num_cpus=1, max_retries=2)(_ray_train)
    eval_task = ray.remote(num_cpus=1, max_retries=2)(_ray_eval)
    stats = Stats(total=len(plan.evals()))
    work = pending(plan, cache, recompute_stale)
    stats.cached = stats.total - sum(len(e) for _, e in work)
    trains: dict[Any, CheckpointConfig] = {}
    evals: dict[Any, EvalConfig] = {}
    for ck, evs in work:
        got = cache.load_checkpoint(ck.key())
        if got is None:
            ref = train_task.remote(ck.to_dict())
            trains[ref] = ck
        else:
            ref = ray.put(got)
        for ev in evs:
            evals[eval_task.remote(ev.to_dict(), ref)] = ev
    if on_start:
        on_start(stats, len(trains))
    waiting = list(trains) + list(evals)
    try:
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1, timeout=1.0)
            for ref in done:
                if ref in trains:
                    state, meta = ray.get(ref)
                    cache.save_checkpoint(trains[ref].key(), state, meta)  # a resumed run need not retrain
                    stats.trained += 1
                    kind = "train"
                else:
                    try:
                        status, val = ray.get(ref)
                    except ray.exceptions.RayError as e:  # worker died, task failed after retries
                        status, val = "error", f"{evals[ref].checkpoint.label}: {type(e).__name__}: {e}"
                    if status == "ok":
                        cache.put(evals[ref].key(), val)
                        stats.evaluated += 1
                        kind = "eval"
                    else:
                        stats.failed += 1
                        stats.errors.append(val)
                        kind = "fail"
                if notify:
                    notify(kind)
    except KeyboardInterrupt:
        stats.interrupted = True
        for ref in waiting:
            ray.cancel(ref, force=True)
    stats.seconds = time.perf_counter() - t0
    return stats
