"""Task weights wᵢ for the outer loss when tasks are imbalanced.

- ``uniform``: every task counts the same.
- ``difficulty``: tasks with a larger current query loss count more (wᵢ ∝ Lᵢ, detached,
  normalised to mean 1 and clipped to [0.1, 10]), so hard tasks are not drowned out.
- a list of numbers: user-given weights, one per training task.
"""

from __future__ import annotations

from typing import Sequence

import torch

SCHEMES = ("uniform", "difficulty")


def validate_weights(spec: str | Sequence[float], n_tasks: int) -> None:
    if isinstance(spec, str):
        if spec not in SCHEMES:
            raise ValueError(f"task_weights must be one of {SCHEMES} or a list of numbers, got {spec!r}")
        return
    if len(spec) != n_tasks:
        raise ValueError(f"task_weights lists {len(spec)} weights for {n_tasks} training tasks")
    if any(not w >= 0 for w in spec) or sum(spec) <= 0:
        raise ValueError("task_weights must be non-negative numbers with a positive sum")


def task_weights(spec: str | Sequence[float], per_task_loss: torch.Tensor | None, n_tasks: int,
                 device: torch.device) -> torch.Tensor:
    """Weights ``[task]`` with mean 1."""
    if isinstance(spec, str):
        if spec == "uniform" or per_task_loss is None:
            return torch.ones(n_tasks, device=device)
        w = per_task_loss.detach().clamp_min(1e-8)
    else:
        w = torch.as_tensor(list(spec), dtype=torch.float32, device=device)
    w = w / w.mean()
    return w.clamp(0.1, 10.0) if isinstance(spec, str) else w
