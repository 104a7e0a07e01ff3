"""Checkpoint sweep: train many models on digits, compress each with fold / mag1 / mag2 at several ratios and
repairs, and record accuracy. Every result is cached by a content hash of its configuration, so an
interrupted sweep resumes where it stopped, locally (process pool) or on a Ray cluster.

Modules: `plan` (what to run, keys), `cache` (one JSON per result), `sam` (SAM training), `work` (train one
checkpoint, evaluate one configuration), `runner` (local pool and Ray), `report` (tables, plots, theorem check).

Research code, not part of the installed edgefold: `benchmarks/sweep.py` imports it as `sweeplib` (the script's
folder is on sys.path), tests/benchmarks/conftest.py puts benchmarks/ on sys.path for the tests.
"""
