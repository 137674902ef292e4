"""Reptile: move the meta-parameters toward each task's adapted parameters.

θ ← θ + β · mean_i wᵢ (θ'ᵢ − θ), where θ'ᵢ comes from k first-order inner steps. The
direction is handed to the outer optimizer as a gradient (θ − θ̄'), so Adam at β applies it.
"""

from __future__ import annotations

import torch

from ..nets import Params


def reptile_direction(params: Params, adapted: Params, weights: torch.Tensor | None = None) -> Params:
    """θ − weighted mean of θ'ᵢ (a descent direction: subtracting it moves θ toward the θ'ᵢ)."""
    out = {}
    for k, p in params.items():
        a = adapted[k].detach()  # [task, ...]
        if weights is None:
            mean = a.mean(0)
        else:
            w = (weights / weights.sum()).view(-1, *([1] * (a.dim() - 1)))
            mean = (w * a).sum(0)
        out[k] = p.detach() - mean
    return out
