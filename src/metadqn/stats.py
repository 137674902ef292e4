"""Normalized return and confidence intervals: the one definition every report uses."""

from __future__ import annotations

import numpy as np


def normalized(returns: np.ndarray, rand: np.ndarray, oracle: np.ndarray) -> np.ndarray:
    """NR = (R − R_random) / (R_oracle − R_random), per task (rows of ``returns``)."""
    returns, rand, oracle = (np.asarray(x, dtype=float) for x in (returns, rand, oracle))
    gap = oracle - rand
    if np.any(gap <= 1e-8):
        bad = int(np.argmin(gap))
        raise ValueError(f"task {bad}: oracle return {oracle[bad]:.4g} is not above the random return "
                         f"{rand[bad]:.4g}; normalized return is undefined (where the oracle is a per-task "
                         "DQN, train it longer with --oracle-steps; or lengthen the family's episodes)")
    return (returns - rand[:, None]) / gap[:, None]


def interval(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean of ``scores [task, seed]`` with a 95% percentile-bootstrap confidence interval
    that resamples both levels: tasks with replacement, then seeds within each drawn task
    (so the interval covers task-to-task and seed-to-seed variation)."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(f"scores must be a non-empty [task, seed] array, got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf")
    n_tasks, n_seeds = scores.shape
    rng = np.random.default_rng(seed)
    tasks = rng.integers(0, n_tasks, size=(reps, n_tasks))
    seeds = rng.integers(0, n_seeds, size=(reps, n_tasks, n_seeds))
    means = scores[tasks[..., None], seeds].mean(axis=(1, 2))
    mean = float(scores.mean())
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": mean, "ci_low": float(min(lo, mean)), "ci_high": float(max(hi, mean))}


__all__ = ["interval", "normalized"]
