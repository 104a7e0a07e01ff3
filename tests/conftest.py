"""Shared fixtures. Trained checkpoints are trained once per session (a few seconds each on digits)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# under pytest-xdist (`make test`), the cores are shared among the workers
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // WORKERS)))
# rich wraps the CLI's output at the terminal width (80 without a terminal); tests read that output, which must not
# depend on where a long temp path happens to break a line (pytest-xdist's are longer)
os.environ["COLUMNS"] = "250"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """trained(name, epochs=3) -> path of an edgefold checkpoint trained on digits, cached for the session."""
    from edgefold.compiler import zoo
    from edgefold.compiler.checkpoint import ModelSpec, save_model
    from edgefold.compiler.train import TrainConfig, train

    cache: dict[tuple[str, int], Path] = {}
    root = tmp_path_factory.mktemp("ckpt")

    def get(name: str, epochs: int = 3) -> Path:
        key = (name, epochs)
        if key not in cache:
            spec = ModelSpec(name=name, input_shape=zoo.input_shape(name))
            model = zoo.build(name)
            acc = train(model, spec.input_shape, TrainConfig(epochs=epochs))
            path = root / f"{name}-{epochs}.pt"
            save_model(path, model, spec, {"model": name, "input_shape": list(spec.input_shape), "accuracy": acc})
            cache[key] = path
        return cache[key]

    return get


@pytest.fixture(scope="session")
def edge_int8():
    """edge_int8(name) -> the edge-zoo model's full-integer int8 .tflite (seeded weights, 64 digits calibrate it),
    exported once per session: tests/compiler checks the export, tests/firmware runs it. An export that fails
    fails each test that asks for it, with the same error, without being repeated."""
    from edgefold.compiler import data, zoo
    from edgefold.compiler.export.tflite import export_tflite_int8

    cache: dict[str, bytes | Exception] = {}

    def get(name: str) -> bytes:
        if name not in cache:
            shape = zoo.input_shape(name)
            calib = data.calibration_batch(shape, 64)
            try:
                cache[name] = export_tflite_int8(zoo.build(name).eval(), calib[:1].contiguous(), calib)
            except Exception as e:  # noqa: BLE001 - re-raised to every test that asks for this model
                cache[name] = e
        got = cache[name]
        if isinstance(got, Exception):
            raise got
        return got

    return get


@pytest.fixture
def cli(capsys):
    """Run the edgefold CLI in-process: cli(*args) -> (exit_code, stdout, stderr)."""
    from edgefold.cli import main

    def run(*args: str):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse errors
            rc = e.code if isinstance(e.code, int) else 1
        out = capsys.readouterr()
        return rc, out.out, out.err

    return run
