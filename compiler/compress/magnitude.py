"""MAG1 / MAG2: group-aware magnitude pruning.

A channel's importance is the L1 (mag1) or L2 (mag2) norm of its whole coupled feature row — every weight slice
that would be deleted with it (producers, BatchNorm affine, consumer input slices) — and the k most important
channels of each group are kept.
"""

from __future__ import annotations

import torch


def keep_top(w: torch.Tensor, k: int, p: int) -> torch.Tensor:
    """Indices (ascending) of the k rows of w with the largest Lp norm; ties go to the lower index."""
    imp = (w.abs().sum(1) if p == 1 else w.pow(2).sum(1)).double()
    order = torch.argsort(-imp, stable=True)
    return order[:k].sort().values


def prune_error_of(row_sq: torch.Tensor, keep: torch.Tensor) -> float:
    """‖W − W_prune‖_F when only the rows `keep` survive (from the rows' squared norms)."""
    mask = torch.ones(row_sq.shape[0], dtype=torch.bool)
    mask[keep] = False
    return float(row_sq[mask].sum().sqrt())
