"""The fold-vs-prune sweep script: quick size end to end, resume after a real interruption, and the Ray path.

The quick sweep runs once per session (a subprocess, interrupted by SIGINT part way, then resumed); the Ray test
reuses its cache to check that a Ray run computes the very same records.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeplib.cache import Cache
from sweeplib.plan import Plan, quick_plan

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "sweep.py"


def _cmd(cache: Path, out: Path, stats: Path) -> list[str]:
    return [sys.executable, str(SCRIPT), "--quick", "--jobs", "2", "--cache", str(cache), "--out", str(out),
            "--stats-json", str(stats)]


def _workers(pid: int) -> list[int]:
    """The pool's worker processes (spawned: their command line runs multiprocessing's spawn_main)."""
    import psutil

    out = []
    for c in psutil.Process(pid).children(recursive=True):
        try:
            if "spawn_main" in " ".join(c.cmdline()):
                out.append(c.pid)
        except psutil.Error:
            pass
    return out


def _sigterm_pending_or_gone(pid: int) -> bool:
    """SIGTERM sent and not yet acted on (the worker holds it while it waits to write), or the worker is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if fields.get("State", "").strip().startswith("Z"):
        return True
    pending = int(fields.get("ShdPnd", "0").strip(), 16) | int(fields.get("SigPnd", "0").strip(), 16)
    return bool(pending & (1 << (signal.SIGTERM - 1)))


@pytest.fixture(scope="session")
def quick_sweep(tmp_path_factory):
    """Run the quick sweep, interrupt it once some results are cached, then resume it to the end.

    Deterministic on a loaded machine: the test freezes the cache (writers wait) once it holds >= 8 results, so the
    sweep cannot finish; it sends SIGINT and waits until the sweep has told every worker to stop (SIGTERM pending
    in a worker waiting to write, or the worker gone) before it lets the waiting writes complete."""
    tmp = tmp_path_factory.mktemp("sweep")
    cache, out = tmp / "cache", tmp / "out"
    plan = quick_plan()
    total = len(plan.evals())
    # SIGINT back to its default: a background job of a shell without job control starts with it ignored
    p = subprocess.Popen(_cmd(cache, out, tmp / "s1.json"), cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    c = Cache(cache)
    frozen = None
    try:
        while frozen is None:
            assert p.poll() is None, f"sweep ended before it could be interrupted:\n{p.communicate()[0]}"
            lock = c.frozen()
            lock.__enter__()
            if c.count() >= 8:
                frozen = lock
            else:
                lock.__exit__(None, None, None)
                time.sleep(0.05)
        held = c.count()
        assert held < total - 2, f"{held} of {total} results before the interrupt: the plan is too small to test it"
        p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 900  # a hang guard only
        while not all(_sigterm_pending_or_gone(w) for w in _workers(p.pid)):
            assert p.poll() is None or p.returncode == 130, p.communicate()[0]
            assert time.monotonic() < deadline, "the sweep did not stop its workers after SIGINT"
            time.sleep(0.05)
    finally:
        if frozen is not None:
            frozen.__exit__(None, None, None)
        if p.poll() is None and frozen is None:
            p.kill()
    out1 = p.communicate(timeout=900)[0]  # hang guards only: a loaded 2-core host takes minutes
    first = json.loads((tmp / "s1.json").read_text())
    after_first = Cache(cache).count()
    ckpts_first = len(list((cache / "checkpoints").glob("*.json")))
    r2 = subprocess.run(_cmd(cache, out, tmp / "s2.json"), cwd=ROOT, capture_output=True, text=True, timeout=1800)
    second = json.loads((tmp / "s2.json").read_text())
    return {"plan": plan, "total": total, "cache": cache, "out": out, "rc1": p.returncode, "out1": out1,
            "first": first, "after_first": after_first, "ckpts_first": ckpts_first, "r2": r2, "second": second,
            "held": held}


def test_interrupted_sweep_keeps_finished_results(quick_sweep):
    q = quick_sweep
    assert q["rc1"] == 130, q["out1"]
    assert "resume with" in q["out1"]
    assert q["first"]["interrupted"] is True
    # only the writes that were waiting when the sweep stopped its workers (at most one per worker) complete
    assert 8 <= q["held"] <= q["after_first"] <= q["held"] + 2 < q["total"]
    # what the first run reports as done is exactly what the cache holds, and no temp file is left behind
    assert q["first"]["evaluated"] == q["after_first"]
    assert not list(q["cache"].rglob("*.tmp"))
    for f in q["cache"].rglob("*.json"):
        json.loads(f.read_text())


def test_resume_reuses_cached_results(quick_sweep):
    q = quick_sweep
    assert q["r2"].returncode == 0, q["r2"].stdout + q["r2"].stderr
    s = q["second"]
    assert s["cached"] == q["after_first"]
    assert s["evaluated"] == q["total"] - q["after_first"]
    assert s["trained"] == len(q["plan"].checkpoints) - q["ckpts_first"]
    assert s["failed"] == 0 and not s["interrupted"]
    assert Cache(q["cache"]).count() == q["total"]


def test_quick_sweep_outputs(quick_sweep):
    q = quick_sweep
    summary = json.loads((q["out"] / "quick_summary.json").read_text())
    assert summary["configs_done"] == q["total"]
    assert summary["checkpoints_complete"] == len(q["plan"].checkpoints)
    cells = {(t["method"], t["ratio"], t["repair"]): t for t in summary["table"]}
    assert all(c["n"] == len(q["plan"].checkpoints) for c in cells.values())
    assert all(0 <= c["mean_accuracy"] <= 100 for c in cells.values())
    wins = {(w["ratio"], w["repair"]) for w in summary["fold_vs_mag1"]}
    assert wins == {(r, rep) for r in q["plan"].ratios for rep in q["plan"].repairs}
    th = summary["theorem"]
    assert th["groups"] > 0 and th["fold_k1_le_prune_k"] == th["groups"]  # the theorem: must be 100%
    rows = (q["out"] / "quick_sweep.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + q["total"]
    for png in ("quick_fold_vs_mag1_scatter.png", "quick_fold_minus_mag1_bars.png"):
        assert (q["out"] / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (q["out"] / "quick_sweep.md").read_text()
    assert "| fold | repair |" in md and "Theorem check" in md
    # compressed models really are smaller
    rec = Cache(q["cache"]).get(q["plan"].evals_for(q["plan"].checkpoints[0])[0].key())
    assert rec["params_after"] < rec["params_before"]


def test_ray_sweep_matches_local(quick_sweep, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is the optional extra edgefold[ray]")
    from sweeplib.runner import RAY_RUNTIME_ENV, run_ray

    q = quick_sweep
    ck = q["plan"].checkpoints[0]
    plan = Plan([ck], methods=("fold", "mag1"), ratios=(0.5,), repairs=("none", "repair"), name="raytest")
    cache = Cache(tmp_path / "cache")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, address="local", runtime_env=RAY_RUNTIME_ENV)
    try:
        s = run_ray(plan, cache)  # trains the checkpoint in a task, one task per configuration
        again = run_ray(plan, cache)
    finally:
        ray.shutdown()
    assert (s.trained, s.evaluated, s.failed, s.cached) == (1, 4, 0, 0), s.errors
    assert (again.trained, again.evaluated, again.cached) == (0, 0, 4)
    local = Cache(q["cache"])
    for ev in plan.evals():
        a, b = cache.get(ev.key()), local.get(ev.key())
        assert a["accuracy"] == b["accuracy"] and a["params_after"] == b["params_after"], ev
