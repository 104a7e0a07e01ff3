"""What a sweep runs: checkpoint configurations (training hyperparameters) × compression configurations.

Each configuration has a key, the content hash of its canonical JSON, so a result is found again by what was
run rather than by when or where it ran.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from edgefold.core.vocab import METHODS
from edgefold.core.vocab import REPAIRS as ALL_REPAIRS

# Part of every key: bump when the meaning of a cached record changes (evaluation protocol, record fields).
SWEEP_VERSION = 1
# BN repair calibration: a fixed sample of training images (data.calibration_batch).
CALIB_N = 128
CALIB_SEED = 0

RATIOS = (0.1, 0.3, 0.5, 0.7)
REPAIRS = tuple(r for r in ALL_REPAIRS if r != "dir")  # dir is too slow for a sweep of thousands
ARCHS = ("resnet8", "resnet18_narrow")
LRS = {"adam": (1e-3, 3e-3, 1e-2), "sgd": (0.01, 0.03, 0.1)}
WEIGHT_DECAYS = (0.0, 5e-4)
SAM_RHOS = (0.0, 0.05)


def content_key(obj: Any) -> str:
    """Hash of the canonical JSON of `obj` (sorted keys, no whitespace): 20 hex digits."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


@dataclass(frozen=True)
class CheckpointConfig:
    """How one checkpoint is trained on digits."""

    arch: str
    optimizer: str  # adam | sgd (TrainConfig.optimizer); with sam_rho > 0 it is SAM's base optimizer
    lr: float
    weight_decay: float
    augment: bool
    sam_rho: float  # 0: plain optimizer
    seed: int
    epochs: int
    batch_size: int = 64

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckpointConfig:
        return cls(**d)

    def key(self) -> str:
        return content_key({"v": SWEEP_VERSION, "checkpoint": self.to_dict()})

    @property
    def label(self) -> str:
        opt = f"sam({self.optimizer})" if self.sam_rho > 0 else self.optimizer
        return (f"{self.arch} {opt} lr={self.lr:g} wd={self.weight_decay:g} aug={int(self.augment)} "
                f"seed={self.seed} ep={self.epochs}")


@dataclass(frozen=True)
class EvalConfig:
    """One compression of one checkpoint."""

    checkpoint: CheckpointConfig
    method: str
    ratio: float
    repair: str

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint.to_dict(), "method": self.method, "ratio": self.ratio,
                "repair": self.repair, "calib_n": CALIB_N, "calib_seed": CALIB_SEED}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalConfig:
        return cls(CheckpointConfig.from_dict(d["checkpoint"]), d["method"], float(d["ratio"]), d["repair"])

    def key(self) -> str:
        return content_key({"v": SWEEP_VERSION, "eval": self.to_dict()})


@dataclass
class Plan:
    checkpoints: list[CheckpointConfig]
    methods: tuple[str, ...] = METHODS
    ratios: tuple[float, ...] = RATIOS
    repairs: tuple[str, ...] = REPAIRS
    name: str = "full"
    meta: dict[str, Any] = field(default_factory=dict)

    def evals_for(self, ckpt: CheckpointConfig) -> list[EvalConfig]:
        return [EvalConfig(ckpt, m, r, rep) for r in self.ratios for m in self.methods for rep in self.repairs]

    def evals(self) -> list[EvalConfig]:
        return [e for c in self.checkpoints for e in self.evals_for(c)]


def checkpoint_grid(epochs: int, seeds: int = 2) -> list[CheckpointConfig]:
    """Full factorial grid (arch × optimizer × lr × weight decay × augment × SAM × seed) in run order.

    Seed 0 of every combination comes first, archs interleaved; later seeds follow in a fixed shuffled order,
    so taking the first N gives every hyperparameter combination before any repeat.
    """
    out: list[CheckpointConfig] = []
    for seed in range(seeds):
        block = [
            CheckpointConfig(arch, opt, lr, wd, aug, rho, seed, epochs)
            for opt, wd, aug, rho in itertools.product(LRS, WEIGHT_DECAYS, (False, True), SAM_RHOS)
            for lr in LRS[opt]
            for arch in ARCHS
        ]
        if seed > 0:
            random.Random(seed).shuffle(block)
        out += block
    return out


def full_plan(checkpoints: int = 120, epochs: int = 6) -> Plan:
    """`checkpoints` models from the grid, each × fold/mag1/mag2 × ratios 0.1..0.7 × repair none/repair/ar."""
    seeds = max(1, -(-checkpoints // (len(checkpoint_grid(epochs, 1)))))
    grid = checkpoint_grid(epochs, seeds)[:checkpoints]
    return Plan(grid, name="full", meta={"checkpoints": checkpoints, "epochs": epochs})


def quick_plan() -> Plan:
    """CI size: 4 checkpoints of 1 epoch (batch 32: enough steps for ~85-95% on digits), both archs, both
    optimizers, one with SAM; ratios 0.3 and 0.5; every method and repair."""
    ck = [
        CheckpointConfig("resnet8", "adam", 3e-3, 5e-4, False, 0.0, 0, 1, 32),
        CheckpointConfig("resnet8", "sgd", 0.03, 5e-4, True, 0.05, 1, 1, 32),
        CheckpointConfig("resnet18_narrow", "adam", 3e-3, 0.0, True, 0.0, 2, 1, 32),
        CheckpointConfig("resnet18_narrow", "sgd", 0.03, 5e-4, False, 0.0, 3, 1, 32),
    ]
    return Plan(ck, ratios=(0.3, 0.5), name="quick", meta={"checkpoints": 4, "epochs": 1})
