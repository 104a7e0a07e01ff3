"""Typed results of a compression run (JSON-serialisable through `to_dict`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class GroupRecord:
    """One coupled channel group: n channels before, k after.

    members[c] lists the ORIGINAL channel indices merged into kept channel c (in the compressed model's order; a
    single index for magnitude pruning). rho[c] is the mean pairwise cosine similarity of those members' producer
    weights (1.0 for singletons), the correlation estimate of the data-free repair. norm_layers are the
    BatchNorm/LayerNorm modules (names valid in the compressed model) whose channels belong to the group, norm_index
    where in them (a layer may also hold other groups' channels, e.g. DenseNet's concatenations).
    proj_error = ‖W − W_approx‖_F on the group feature matrix for the method used; prune_error is the best
    magnitude prune at the same k (keep the k largest-L2 rows), fold_error the k-means fold (fold only).
    """

    name: str
    n: int
    k: int
    members: list[list[int]]
    rho: list[float]
    norm_layers: list[str]
    proj_error: float
    prune_error: float | None = None
    fold_error: float | None = None
    kind: str = "channels"  # "channels" or "heads" (whole attention heads)
    feature_dim: int = 0
    # per norm layer, the positions of kept channel c in the compressed layer (a layer may hold several groups)
    norm_index: dict[str, list[list[int]]] = field(default_factory=dict)
    ops: list[str] = field(default_factory=list)  # weightless ops on the channels' path (AddBackward0: a residual)
    ar_skip: str = ""  # why the data-free variance correction `ar` does not apply to this group ("" if it does)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CompressReport:
    method: str
    ratio: float
    repair: str
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    seconds: float
    groups: list[GroupRecord] = field(default_factory=list)
    skipped_groups: list[str] = field(default_factory=list)  # root layers of groups with unsupported layers
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    ratios: dict[str, float] = field(default_factory=dict)  # per-group ratios that override `ratio`
    notices: list[str] = field(default_factory=list)  # what was left uncompressed and why, one line each

    @property
    def param_ratio(self) -> float:
        return self.params_after / max(self.params_before, 1)

    @property
    def mac_ratio(self) -> float:
        return self.macs_after / max(self.macs_before, 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["groups"] = [g.to_dict() for g in self.groups]
        d["param_ratio"] = self.param_ratio
        d["mac_ratio"] = self.mac_ratio
        return d
